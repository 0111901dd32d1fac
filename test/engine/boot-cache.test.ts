import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Oracle } from '../../src/api.ts';
import { BOOT_CACHE_MIN_CALLS, bootCacheSettings, bootCacheStats, bootsPerCase, clearBootCache } from '../../src/engine/boot-cache.ts';
import { type Policies, type RunOptions, runCase } from '../../src/engine/run.ts';
import { resolveOracles } from '../../src/engine/select.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import { generateCase } from '../../src/ops/generate.ts';
import type { Case, Config, Op } from '../../src/ops/types.ts';
import { type World, createWorld, restoreWorld } from '../../src/engine/world.ts';
import { guestPolicies, hostPolicies } from '../../src/policies/index.ts';
import { type HostPolicy, defineHostPolicy } from '../../src/policies/types.ts';

// Issue 15: boot once per (config, policies) and restore per case. A restored world must be
// what a fresh boot gives, whatever ran before it in the process: every comparison runs the same
// case with the cache and without it (bootCache: false boots per case, as before).

let oracles: Oracle[];
beforeAll(async () => {
  oracles = await resolveOracles();
  // Every pair is copied here, cheap boots included (in use, a boot of fewer calls runs fresh).
  bootCacheSettings.minCalls = 0;
});
afterAll(() => {
  bootCacheSettings.minCalls = BOOT_CACHE_MIN_CALLS;
});
afterEach(() => clearBootCache());

/** Everything a run tells: the result, and every step as oracles and `replay --trace` see it. */
function observe(testCase: Case, policies: Policies, bootCache: boolean, options: Partial<RunOptions> = {}): string {
  const steps: unknown[] = [];
  let start: unknown;
  const result = runCase(testCase, policies, {
    oracles,
    allViolations: true,
    bootCache,
    ...options,
    onStart: (view) => {
      start = { boot: (view as World).boot, counters: { ...view.counters } };
      options.onStart?.(view);
    },
    onStep: (step, view, violations) => steps.push({ step, frames: step.frames, gfns: step.gfns, counters: { ...view.counters }, violations }),
  });
  return JSON.stringify({ result, start, steps });
}

/** Two runs told the same (a boolean: runs are megabytes of JSON, too long for a diff). */
function expectSame(actual: string, expected: string, label = 'cached vs fresh'): void {
  expect(actual === expected, label).toBe(true);
}

interface Pairing {
  label: string;
  config: Config;
  policies: Policies;
}

const pairing = (host: string, guest: string, extra: Record<string, unknown> = {}): Pairing => ({
  label: `${host} + ${guest}${Object.keys(extra).length > 0 ? ` ${JSON.stringify(extra)}` : ''}`,
  config: defaultConfig({ hostPolicy: host, guestPolicy: guest, ...extra }),
  policies: { host: hostPolicies[host]!, guest: guestPolicies[guest]! },
});

/** Runs each pairing's cases fresh, then restored (interleaved, twice): the same runs, byte for byte. */
function expectCachedLikeFresh(pairings: Pairing[]): void {
  const perPairing = 6;
  const cases = pairings.map((p) => Array.from({ length: perPairing }, (_, i) => generateCase(p.config, `boot-cache/${p.label}/${i}`, { steps: 48, weights: { during: 30 } })));
  const fresh = pairings.map((p, k) => cases[k]!.map((c) => observe(c, p.policies, false)));
  clearBootCache();
  const before = { ...bootCacheStats };
  // Round-robin over the pairings, and each case twice (the second after others of its pair
  // ran): a copy that shared anything with the template or another copy would show here.
  for (const round of [0, 1]) {
    for (let i = 0; i < perPairing; i++) {
      for (const [k, p] of pairings.entries()) {
        const index = round === 0 ? i : perPairing - 1 - i;
        expectSame(observe(cases[k]![index]!, p.policies, true), fresh[k]![index]!, `${p.label}, case ${index}, round ${round}`);
      }
    }
  }
  for (const p of pairings) expect(bootsPerCase(p.config, p.policies), p.label).toBeUndefined();
  expect(bootCacheStats.booted - before.booted).toBe(pairings.length);
  expect(bootCacheStats.restored - before.restored).toBe(2 * perPairing * pairings.length);
  // Some cases must find something, or the comparison would say little about the oracles.
  expect(fresh.flat().filter((run) => (JSON.parse(run) as { result: { verdict: string } }).result.verdict === 'violation').length).toBeGreaterThan(0);
}

describe('boot cache', () => {
  it('gives every case the events, verdict and metrics of a fresh boot, cases of several pairings interleaved', () => {
    expectCachedLikeFresh([
      pairing('kvm-4k', 'linux'),
      pairing('kvm-iommu-4k', 'linux'),
      pairing('cut-on-convert', 'linux-2m-pool'),
      pairing('quiesce-dma', 'linux'),
      pairing('quiesce-dma', 'linux-2m-pool'),
      pairing('kvm-iommu-4k', 'linux', { adversary: 'host' }),
      // A 1G swiotlb pool: 512 RMP regions shared copy-on-write with the template, one run in each run map.
      pairing('quiesce-dma', 'linux-2m-pool', { guestMemory: '1T' }),
    ]);
  });

  it('does the same for the other host policies and the discard modes (at most 8 pairs: the cache holds 8)', () => {
    expectCachedLikeFresh([
      pairing('split-then-smash', 'double-validate'),
      pairing('fw-atomic-smash', 'linux-2m-pool', { discard: 'in-place' }),
      pairing('vfio-static', 'linux', { discard: 'none', hugeBacking: false }),
    ]);
  });

  it('meters a restored case with its own call budget and watch, never the template\'s', () => {
    const p = pairing('kvm-4k', 'linux');
    const ops: Op[] = [
      { op: 'share', gpa: 0x800000, pages: 64 },
      { op: 'unshare', gpa: 0x800000, pages: 64 },
    ];
    const testCase: Case = { config: p.config, seed: 'budget', ops };
    const watched = (bootCache: boolean): { run: string; calls: number[] } => {
      const calls: number[] = [];
      const run = observe(testCase, p.policies, bootCache, { callBudget: { case: 300 }, callWatch: { calls: (n) => calls.push(n) } });
      return { run, calls };
    };
    const fresh = watched(false);
    expect(fresh.run).toContain('call budget exceeded');
    for (let i = 0; i < 2; i++) {
      const cached = watched(true);
      expectSame(cached.run, fresh.run);
      expect(cached.calls).toEqual(fresh.calls);
    }
  });

  it('boots per case a pair whose boot draws randomness, and gives each seed its own draws', () => {
    const seen: unknown[] = [];
    const host = defineHostPolicy({
      name: 'draws-at-start',
      description: 'draws at boot',
      start: (ctx) => {
        ctx.state.drawn = ctx.random();
      },
      convert: (ctx, request) => {
        seen.push(ctx.state.drawn);
        ctx.kvm.defaultConvert(request);
      },
    });
    const config = defaultConfig({ hostPolicy: 'draws-at-start', guestPolicy: 'linux' });
    const policies = { host, guest: guestPolicies.linux! };
    const ops: Op[] = [{ op: 'share', gpa: 0x800000, pages: 1 }];
    // What the hooks saw after boot (the template's boot runs them too).
    const run = (seed: string, bootCache: boolean): { run: string; seen: unknown[] } => {
      const out = observe({ config, seed, ops }, policies, bootCache, { onStart: () => (seen.length = 0) });
      return { run: out, seen: [...seen] };
    };
    const a = run('a', true);
    const b = run('b', true);
    expect(bootsPerCase(config, policies)).toMatch(/drew randomness/);
    for (const [seed, cached] of [['a', a], ['b', b]] as const) {
      const fresh = run(seed, false);
      expectSame(cached.run, fresh.run);
      expect(cached.seen).toEqual(fresh.seen);
    }
    expect(a.seen.length).toBeGreaterThan(0);
    expect(a.seen[0]).not.toBe(b.seen[0]);
  });

  it('gives each case the post-boot state of a policy that keeps ctx.state at boot and per case', () => {
    const seen: string[] = [];
    class Tally {
      count = 0;
      bump(): number {
        return ++this.count;
      }
    }
    const host: HostPolicy = defineHostPolicy({
      name: 'keeps-state',
      description: 'counts conversions in ctx.state from boot on',
      start: (ctx) => {
        ctx.state.converts = 0;
        ctx.state.gpas = [];
        ctx.state.tally = new Tally();
        ctx.state.first = ctx.random === undefined ? 'none' : 'a stream';
      },
      convert: (ctx, request) => {
        (ctx.state.gpas as number[]).push(request.gpa);
        ctx.state.converts = (ctx.state.converts as number) + 1;
        (ctx.state.tally as Tally).bump();
        seen.push(JSON.stringify(ctx.state));
        ctx.kvm.defaultConvert(request);
      },
    });
    const config = defaultConfig({ hostPolicy: 'keeps-state', guestPolicy: 'linux' });
    const policies = { host, guest: guestPolicies.linux! };
    const ops: Op[] = [
      { op: 'share', gpa: 0x800000, pages: 2 },
      { op: 'unshare', gpa: 0x800000, pages: 2 },
    ];
    // What the hooks saw after boot (the template's boot runs them too).
    const run = (seed: string, bootCache: boolean): string[] => {
      observe({ config, seed, ops }, policies, bootCache, { onStart: () => (seen.length = 0) });
      return [...seen];
    };
    const fresh = run('x', false);
    // Boot's own conversions (the pools made shared) counted before the case's first.
    const first = JSON.parse(fresh[0]!) as { converts: number };
    expect(first.converts).toBeGreaterThan(1);
    for (const seed of ['x', 'y', 'x']) expect(run(seed, true)).toEqual(fresh);
    expect(bootsPerCase(config, policies)).toBeUndefined();
  });

  it('boots per case a pair whose boot state holds a function, with the same result', () => {
    const host = defineHostPolicy({
      name: 'keeps-a-closure',
      description: 'x',
      start: (ctx) => {
        ctx.state.pick = () => 'closure';
      },
    });
    const config = defaultConfig({ hostPolicy: 'keeps-a-closure', guestPolicy: 'linux' });
    const policies = { host, guest: guestPolicies.linux! };
    const testCase = generateCase(config, 'closure', { steps: 16 });
    const fresh = observe(testCase, policies, false);
    expectSame(observe(testCase, policies, true), fresh);
    expect(bootsPerCase(config, policies)).toMatch(/cannot be copied: .*\.state\.pick: cannot copy a function/);
    expectSame(observe(testCase, policies, true), fresh);
  });

  it('boots per case a pair whose boot failed, and reports the failure at the first op as before', () => {
    const host = defineHostPolicy({
      name: 'fails-at-start',
      description: 'x',
      start: () => {
        throw new Error('no start');
      },
    });
    const config = defaultConfig({ hostPolicy: 'fails-at-start', guestPolicy: 'linux' });
    const policies = { host, guest: guestPolicies.linux! };
    const testCase: Case = { config, seed: 's', ops: [{ op: 'host_sync' }] };
    const fresh = observe(testCase, policies, false);
    expect(fresh).toContain('no start');
    expectSame(observe(testCase, policies, true), fresh);
    expectSame(observe(testCase, policies, true), fresh);
    expect(bootsPerCase(config, policies)).toMatch(/boot failed/);
  });

  it('gives every world a read-only boot record: an oracle that writes to it fails alike with the cache and without', () => {
    const p = pairing('kvm-iommu-4k', 'linux');
    const writer: Oracle = {
      name: 'writes-boot',
      description: 'x',
      severity: 'correctness',
      boot: (view) => {
        ((view as World).boot.calls as unknown[]).length = 0;
      },
      check: () => [],
    };
    const testCase = generateCase(p.config, 'frozen', { steps: 4 });
    const run = (bootCache: boolean) => runCase(testCase, p.policies, { oracles: [writer], bootCache }).oracleErrors;
    const fresh = run(false);
    expect(fresh).toEqual([{ oracle: 'writes-boot', step: 0, message: expect.stringMatching(/read.only|Cannot assign/) as unknown }]);
    expect(run(true)).toEqual(fresh);
    expect(run(true)).toEqual(fresh);
  });

  it('never changes the template: copies share its 2M regions and copy one before writing it', () => {
    // Region maps (model/regions.ts) are copied on write: a path that changed a region it took
    // with get() instead of writable() would change the template under every later case.
    // Every built-in host policy with each built-in guest policy, and the config fields that pick
    // other model paths (QEMU's discard modes, 4K backing, nested IO, the adversary's raw ops).
    const pairings = [
      ...Object.keys(hostPolicies).flatMap((host) => Object.keys(guestPolicies).map((guest) => pairing(host, guest))),
      pairing('quiesce-dma', 'linux-2m-pool', { guestMemory: '1T' }),
      pairing('kvm-iommu-4k', 'linux', { discard: 'in-place' }),
      pairing('cut-on-convert', 'linux-2m-pool', { discard: 'none' }),
      pairing('split-then-smash', 'linux', { hugeBacking: false }),
      pairing('quiesce-dma', 'linux', { devices: [{ id: 0, trusted: true, iommu: 'nested' }, { id: 1, trusted: false, iommu: 's2' }] }),
      pairing('kvm-iommu-4k', 'linux-2m-pool', { adversary: 'host' }),
    ];
    for (const p of pairings) {
      const template = createWorld(p.config, p.policies, 'template');
      restoreWorld(template, p.config, p.policies, 'first copy');
      const before = snapshot(template);
      for (let i = 0; i < 8; i++) {
        const testCase = generateCase(p.config, `template/${p.label}/${i}`, { steps: 64, weights: { during: 30 } });
        const world = restoreWorld(template, p.config, p.policies, testCase.seed);
        testCase.ops.forEach((op, index) => {
          try {
            world.apply(op, index);
          } catch {
            // A policy error ends the case; the template is what is checked.
          }
        });
      }
      expect(snapshot(template) === before, p.label).toBe(true);
    }
  });

  it('never changes a template that holds private memory from boot (a host that pre-faults, as KVM_PRE_FAULT_MEMORY does)', () => {
    // The built-in boots leave only shared pools in a template; this one leaves 2M RMP entries
    // assigned to the guest, so the cases' PVALIDATEs and PSMASHes change regions the template holds.
    const host: HostPolicy = defineHostPolicy({
      name: 'prefaults',
      description: 'pre-faults the first 8 MiB of guest memory at start',
      start: (ctx) => {
        for (let gpa = 0; gpa < 0x800000; gpa += 0x200000) ctx.kvm.defaultPrivateFault({ gpa, write: true, kind: 'not-present', reason: 'pre-fault', maxLevel: '2M' });
      },
    });
    const config = defaultConfig({ hostPolicy: 'prefaults', guestPolicy: 'linux-2m-pool', adversary: 'host' });
    const policies = { host, guest: guestPolicies['linux-2m-pool']! };
    const template = createWorld(config, policies, 'template');
    expect(template.rmp.entry(template.host.backingHpa(0x200000) / 0x1000)).toMatchObject({ assigned: true, size: '2M' });
    restoreWorld(template, config, policies, 'first copy');
    const before = snapshot(template);
    const ops: Op[] = [
      // The raw PSMASH of a region nothing in the case touched before.
      { op: 'hw_psmash', hpa: template.host.backingHpa(0x600000) },
      { op: 'accept', gpa: 0x200000, size: '2M' },
      { op: 'accept', gpa: 0x401000, size: '4K' },
      { op: 'share', gpa: 0x600000, pages: 3 },
      { op: 'touch', gpa: 0x0, write: true },
      // A 2M chunk of the shared pool made private again: the backing of a region boot shared.
      { op: 'unshare', gpa: template.guest.swiotlb.base, pages: 512 },
    ];
    for (const seed of ['a', 'b']) {
      const world = restoreWorld(template, config, policies, seed);
      ops.forEach((op, index) => world.apply(op, index));
      expect(world.counters.psmash, 'a 4K accept in a pre-faulted 2M region smashes it').toBeGreaterThan(0);
    }
    expect(snapshot(template) === before).toBe(true);
  });

  it('is off with COCOFUZZ_BOOT_CACHE=off', () => {
    const p = pairing('kvm-iommu-4k', 'linux');
    const testCase = generateCase(p.config, 'env', { steps: 8 });
    const before = { ...bootCacheStats };
    process.env.COCOFUZZ_BOOT_CACHE = 'off';
    try {
      runCase(testCase, p.policies, { oracles });
    } finally {
      delete process.env.COCOFUZZ_BOOT_CACHE;
    }
    expect(bootCacheStats).toEqual(before);
    runCase(testCase, p.policies, { oracles });
    expect(bootCacheStats.restored).toBe(before.restored + 1);
  });

  it('by default boots per case a pair whose boot makes fewer calls than a copy costs, and copies one that makes more', () => {
    bootCacheSettings.minCalls = BOOT_CACHE_MIN_CALLS;
    try {
      const cheap = pairing('quiesce-dma', 'linux-2m-pool');
      const costly = pairing('kvm-iommu-4k', 'linux');
      for (const p of [cheap, costly]) for (const seed of ['a', 'b']) runCase(generateCase(p.config, seed, { steps: 4 }), p.policies, { oracles });
      expect(bootsPerCase(cheap.config, cheap.policies)).toMatch(/^its boot is cheaper than a copy \(\d+ primitive calls\)$/);
      expect(bootsPerCase(costly.config, costly.policies)).toBeUndefined();
    } finally {
      bootCacheSettings.minCalls = 0;
    }
  });
});

/** RegionStore's look-up cache fields: reading a template fills them (its regions do not change). */
const LOOKUP_CACHE = new Set(['lastKey', 'lastValue', 'lastMine', 'prevKey', 'prevValue', 'prevMine']);

/** Every value reachable from `root` as text (region maps' look-up caches left out). */
function snapshot(root: unknown): string {
  const ids = new Map<object, number>();
  const out: string[] = [];
  const walk = (value: unknown): void => {
    if (value === null || typeof value !== 'object') {
      out.push(typeof value === 'function' ? 'fn' : String(value));
      return;
    }
    const id = ids.get(value);
    if (id !== undefined) {
      out.push(`#${id}`);
      return;
    }
    ids.set(value, ids.size);
    if (ArrayBuffer.isView(value)) out.push(`[${Array.from(value as Uint8Array).join(',')}]`);
    else if (value instanceof Map)
      for (const [k, v] of value) {
        walk(k);
        walk(v);
      }
    else if (value instanceof Set) for (const v of value) walk(v);
    else
      for (const key of Object.keys(value)) {
        if (LOOKUP_CACHE.has(key)) continue;
        out.push(key);
        walk((value as Record<string, unknown>)[key]);
      }
    out.push(';');
  };
  walk(root);
  return out.join(' ');
}
