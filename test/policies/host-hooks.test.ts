// The granular KVM and IOMMU helpers serve the host bugs a kernel engineer would write: each policy
// file in test/fixtures/policies/ uses only the public entry points; a short case shows the oracle
// that catches it, and the same case under a correct policy stays clean.

import { describe, expect, it } from 'vitest';
import { builtinOracles } from '../../oracles/index.ts';
import type { Op } from '../../src/ops/types.ts';
import { defineHostPolicy, type HostPolicy } from '../../src/policies/types.ts';
import splitKeepsNpt from '../fixtures/policies/split-keeps-npt.ts';
import syncDropsLastRange from '../fixtures/policies/sync-drops-last-range.ts';
import { makeWorld } from '../helpers/world.ts';
import { runSpec } from '../oracles/cases.ts';

const MB = 1024 * 1024;

/** The same gathering host with a sync that invalidates every gathered range. */
const gatheringHost = defineHostPolicy({
  ...syncDropsLastRange,
  name: 'gathering',
  description: 'unmaps gathered until host_sync, whose flush invalidates all of them',
  flush(ctx) {
    for (const { id } of ctx.iommu.devices()) ctx.iommu.flush(id, { ranges: ctx.iommu.pending(id) });
  },
});

interface BugCase {
  policy: HostPolicy;
  correct: string | HostPolicy;
  ops: Op[];
  oracle: string;
  step: number;
  message: RegExp;
}

const bugs: BugCase[] = [
  {
    policy: splitKeepsNpt,
    correct: 'kvm-iommu-4k',
    ops: [
      { op: 'accept', gpa: 4 * MB, size: '2M' },
      { op: 'touch', gpa: 4 * MB, write: true },
      { op: 'host_split', gpa: 4 * MB },
    ],
    oracle: 'npt-rmp-size',
    step: 2,
    message: /NPT\[2M\] --> RMP\[4K\]/,
  },
  {
    policy: syncDropsLastRange,
    correct: gatheringHost,
    ops: [
      { op: 'alloc_coherent', dev: 1, bytes: 4096 },
      { op: 'dma', dev: 1, buf: 0, len: 4096, write: true },
      { op: 'free_coherent', buf: 0 },
      { op: 'host_sync' },
    ],
    oracle: 'iotlb-stale',
    step: 3,
    message: /.*/,
  },
];

describe('host helpers express real host bugs', () => {
  for (const bug of bugs) {
    it(`${bug.policy.name}: ${bug.oracle} fires; a correct policy stays clean on the same case`, () => {
      const broken = runSpec({ host: bug.policy, guest: 'linux', ops: bug.ops }, builtinOracles);
      expect(broken.violations[0]).toMatchObject({ oracle: bug.oracle, step: bug.step });
      expect(broken.violations[0]?.message).toMatch(bug.message);
      const correct = runSpec({ host: bug.correct, guest: 'linux', ops: bug.ops }, builtinOracles);
      expect(correct.violations).toEqual([]);
    });
  }
});

describe('the gather is visible and partial', () => {
  it('pending() lists what unmaps gathered; flush({ ranges }) invalidates those, empties the gather and records what it dropped', () => {
    let seen: readonly { iova: number; len: number }[] = [];
    const host = defineHostPolicy({
      ...syncDropsLastRange,
      name: 'peeking',
      flush(ctx) {
        seen = ctx.iommu.pending(1);
        syncDropsLastRange.flush?.(ctx);
      },
    });
    const world = makeWorld({}, { host });
    world.apply({ op: 'alloc_coherent', dev: 1, bytes: 8192 }, 0);
    world.apply({ op: 'free_coherent', buf: 0 }, 1);
    const step = world.apply({ op: 'host_sync' }, 2);
    expect(seen.length).toBeGreaterThan(0);
    const flush = step.calls.find((c) => c.prim === 'iommu_flush' && c.args.dev === 1);
    expect(flush?.args).toMatchObject({ ranges: seen.length - 1, gathered: seen.length });
  });
});

describe('RMPUPDATE FAIL_OVERLAP', () => {
  it("is retried as Linux's rmpupdate() does, and an overlap that never clears is a policy-error naming the entry", () => {
    // A host that assigns a 2M RMP entry behind KVM's bookkeeping, then lets KVM prepare 4K pages
    // of that region (4K folios): every 4K RMPUPDATE meets the assigned 2M entry.
    const behindKvm = defineHostPolicy({
      name: 'rmp-behind-kvm',
      description: 'a 2M RMP entry KVM does not know about',
      privateFault(ctx, fault) {
        const region = fault.gpa - (fault.gpa % (2 * MB));
        ctx.machine.rmpUpdate(ctx.gmemFrame(region), { assigned: true, asid: ctx.machine.asid, gpa: region, size: '2M' });
        ctx.kvm.defaultPrivateFault(fault);
      },
    });
    const ops: Op[] = [{ op: 'accept', gpa: 4 * MB, size: '4K' }];
    const result = runSpec({ host: behindKvm, guest: 'linux', ops, config: { hugeBacking: false } }, builtinOracles);
    expect(result.violations[0]).toMatchObject({ oracle: 'policy-error', step: 0 });
    expect(result.violations[0]?.message).toMatch(/rmpupdate\(hpa 0x[0-9a-f]+, 4K, assigned\) still FAIL_OVERLAP after 3 tries: .* would spin forever/);
    const world = makeWorld({ hugeBacking: false }, { host: behindKvm });
    expect(() => world.apply(ops[0]!, 0)).toThrow(/FAIL_OVERLAP/);
  });
});

describe('policy files load through the plugin loader', () => {
  it('every fixture in test/fixtures/policies/ is accepted with all its hooks (a hook missing from the loader list would refuse it)', async () => {
    const { readdirSync } = await import('node:fs');
    const { resolveGuestPolicy, resolveHostPolicy } = await import('../../src/engine/select.ts');
    const dir = 'test/fixtures/policies';
    for (const file of readdirSync(dir)) {
      const path = `${dir}/${file}`;
      const host = ['split-keeps-npt.ts', 'sync-drops-last-range.ts'].includes(file);
      const policy = host ? await resolveHostPolicy(path) : await resolveGuestPolicy(path);
      expect(policy.name.length).toBeGreaterThan(0);
    }
  });
});

describe('a conversion can leave one of its steps out', () => {
  it('skip: io-unmap keeps the private IO view of pages shared whole, and an oracle catches the stale mapping', async () => {
    const { hostPolicies } = await import('../../src/policies/index.ts');
    const base = hostPolicies['quiesce-dma']!;
    const keepsPrivateView = defineHostPolicy({
      ...base,
      name: 'keeps-private-view',
      description: 'a conversion to shared that leaves the private view mapped',
      convert: (ctx, request) => ctx.kvm.defaultConvert(request, { skip: request.to === 'shared' ? ['io-unmap'] : [] }),
    });
    const ops: Op[] = [
      { op: 'tdi_accept', dev: 0 },
      { op: 'share', gpa: 4 * MB, pages: 512 },
    ];
    const world = makeWorld({}, { host: keepsPrivateView });
    world.apply(ops[0]!, 0);
    const share = world.apply(ops[1]!, 1);
    expect(share.calls.some((c) => c.prim === 'io_unmap' && c.args.dev === 0)).toBe(false);
    const correct = makeWorld({}, { host: base });
    correct.apply(ops[0]!, 0);
    expect(correct.apply(ops[1]!, 1).calls.some((c) => c.prim === 'io_unmap' && c.args.dev === 0)).toBe(true);
    const result = runSpec({ host: keepsPrivateView, guest: 'linux', ops }, builtinOracles);
    expect(result.violations[0]?.step).toBe(1);
    expect(runSpec({ host: base, guest: 'linux', ops }, builtinOracles).violations).toEqual([]);
  });
});
