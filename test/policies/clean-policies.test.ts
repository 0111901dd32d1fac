// The correct built-in policies survive long random runs: no legitimate DMA faults, no guest
// error, and the tables never reach a forbidden state (DOMAIN.md invariants, checked here
// directly on the world rather than through the oracles).

import { describe, expect, it } from 'vitest';
import type { View } from '../../src/api.ts';
import type { Op } from '../../src/ops/types.ts';
import { SZ_2M, SZ_4K, makeConfig, makeWorld } from '../helpers/world.ts';
import { randomOps } from './random-ops.ts';

const DEVICES = [
  { id: 0, trusted: true, iommu: 's2' },
  { id: 1, trusted: false, iommu: 's2' },
  { id: 2, trusted: true, iommu: 'nested' },
  { id: 3, trusted: false, iommu: 'nested' },
];

/** Every S2 leaf a trusted device in RUN reaches, rounded to {4K, 2M}, equals the RMP entry below. */
function s2RmpMismatches(view: View): string[] {
  const out: string[] = [];
  for (const device of view.devices) {
    if (!device.trusted || device.tdi !== 'run') continue;
    for (const leaf of device.s2.leaves()) {
      if (leaf.iova >= view.vtom) continue;
      const checked = leaf.size >= SZ_2M ? SZ_2M : SZ_4K;
      for (let offset = 0; offset < leaf.size; offset += checked) {
        const entry = view.rmp.entry((leaf.pa + offset) / SZ_4K);
        if (!entry.assigned || entry.asid !== view.asid || entry.gpa !== leaf.iova + offset || entry.size !== (checked === SZ_2M ? '2M' : '4K')) {
          out.push(`dev ${device.id} S2 leaf ${leaf.size} at 0x${(leaf.iova + offset).toString(16)} over RMP ${entry.assigned ? entry.size : 'unassigned'}`);
          break;
        }
      }
    }
  }
  return out;
}

/** For every shared GPA an S2 maps, the S2 and the host's backing (the NPT's frame) agree; no IOTLB entry outlives its S2 leaf. */
function staleMappings(view: View): string[] {
  const out: string[] = [];
  for (const device of view.devices) {
    for (const leaf of device.s2.leaves()) {
      for (let offset = 0; offset < leaf.size; offset += SZ_4K) {
        const backing = view.host.backing(leaf.iova + offset);
        if (backing?.shared && backing.hpa !== leaf.pa + offset) out.push(`dev ${device.id} S2 stale at 0x${(leaf.iova + offset).toString(16)}`);
      }
    }
    for (const entry of device.iotlb.entries()) {
      if (device.s2.iovaToPhys(entry.addr) !== entry.hpa) out.push(`dev ${device.id} IOTLB stale at 0x${entry.addr.toString(16)}`);
    }
  }
  return out;
}

/** No private NPT leaf is larger than the RMP entry below it. */
function nptOverRmp(view: View): string[] {
  const out: string[] = [];
  for (const leaf of view.npt.leaves()) {
    if (leaf.size < SZ_2M) continue;
    const entry = view.rmp.entry(leaf.pa / SZ_4K);
    if (entry.assigned && entry.size === '4K') out.push(`NPT 2M over RMP 4K at 0x${leaf.iova.toString(16)}`);
  }
  return out;
}

function longRun(hostPolicy: string, guestPolicy: string, seed: string, count: number) {
  const world = makeWorld({ hostPolicy, guestPolicy, devices: DEVICES }, {}, seed);
  const ops = randomOps(makeConfig({ devices: DEVICES }), seed, count);
  const problems: string[] = [];
  let legit = 0;
  let pscs = 0;
  for (let i = 0; i < ops.length; i++) {
    const op: Op = { ...ops[i]! };
    // Most DMAs target a buffer or mapping through the device that owns it.
    if (op.op === 'dma' && i % 5 !== 0) {
      const n = op.buf !== undefined ? world.guest.buffers.length : world.guest.mappings.length;
      const target = op.buf !== undefined ? world.guest.buffers[op.buf % Math.max(1, n)] : world.guest.mappings[(op.map ?? 0) % Math.max(1, n)];
      if (target) op.dev = target.dev;
    }
    const step = world.apply(op, i);
    for (const error of step.guestErrors ?? []) problems.push(`step ${i} ${op.op}: ${error}`);
    for (const dma of step.dmas) {
      if (!dma.legit) continue;
      legit++;
      if (!dma.result.ok) problems.push(`step ${i}: legit DMA failed: ${dma.result.faults[0]?.reason ?? '?'}`);
    }
    pscs += step.guestEvents.filter((e) => e.kind === 'psc').length;
    if (i % 250 === 0) problems.push(...s2RmpMismatches(world), ...nptOverRmp(world));
    if (op.op === 'host_sync') problems.push(...staleMappings(world));
    if (problems.length > 5) break;
  }
  problems.push(...s2RmpMismatches(world), ...nptOverRmp(world), ...staleMappings(world));
  return { problems, legit, pscs, counters: world.counters };
}

describe('cut-on-convert + linux-2m-pool', () => {
  for (const seed of ['clean-1', 'clean-2']) {
    it(`keeps every invariant over 2500 random ops (${seed})`, () => {
      const result = longRun('cut-on-convert', 'linux-2m-pool', seed, 2500);
      expect(result.problems).toEqual([]);
      expect(result.legit).toBeGreaterThan(200);
      expect(result.pscs).toBeGreaterThan(100);
      expect(result.counters.ioSplits).toBeGreaterThan(0);
    });
  }
});

describe('other correct pairings', () => {
  it('cut-on-convert + linux keeps every invariant', () => {
    expect(longRun('cut-on-convert', 'linux', 'clean-3', 1500).problems).toEqual([]);
  });

  it('kvm-4k + linux keeps every invariant', () => {
    expect(longRun('kvm-4k', 'linux', 'clean-4', 1000).problems).toEqual([]);
  });

  it('kvm-iommu-4k + linux does not (trusted DMA over 2M RMP entries)', () => {
    const result = longRun('kvm-iommu-4k', 'linux', 'clean-5', 1000);
    expect(result.problems.join('\n')).toMatch(/S2 leaf 4096 .* over RMP 2M|size mismatch/);
  });
});

describe('the hitless pairings under interleaved DMAs and touches', () => {
  it.each([
    ['quiesce-dma', 'linux-2m-pool'],
    ['fw-atomic-smash', 'linux-2m-pool'],
    ['quiesce-dma', 'linux'],
    ['fw-atomic-smash', 'linux'],
  ])('%s + %s: generated cases with during on every other op stay clean under every oracle', async (host, guest) => {
    const { generateCase } = await import('../../src/ops/generate.ts');
    const { runCase } = await import('../../src/engine/run.ts');
    const { resolveOracles, resolvePolicies } = await import('../../src/engine/select.ts');
    const oracles = await resolveOracles();
    const policies = await resolvePolicies(host, guest);
    const config = makeConfig({ hostPolicy: host, guestPolicy: guest });
    let interleaved = 0;
    for (let i = 0; i < 25; i++) {
      const testCase = generateCase(config, `hitless/${host}/${guest}/${i}`, { steps: 64, fullLength: true, weights: { during: 50 } });
      const result = runCase(testCase, policies, { oracles });
      expect(result.violations.map((v) => `${v.oracle}: ${v.message}`)).toEqual([]);
      interleaved += testCase.ops.filter((op) => op.during !== undefined).length;
    }
    expect(interleaved).toBeGreaterThan(100);
  });

  it('the same cases under cut-on-convert lose the race somewhere', async () => {
    const { generateCase } = await import('../../src/ops/generate.ts');
    const { runCase } = await import('../../src/engine/run.ts');
    const { resolveOracles, resolvePolicies } = await import('../../src/engine/select.ts');
    const oracles = await resolveOracles({ only: ['dma-liveness'] });
    const policies = await resolvePolicies('cut-on-convert', 'linux-2m-pool');
    const config = makeConfig({ hostPolicy: 'cut-on-convert', guestPolicy: 'linux-2m-pool' });
    // A lost race is rare in generated cases (about 1 in 500 with these settings; bench/race.ts
    // measures the rate): this window of seeds holds one, so the test stays cheap.
    const races = Array.from({ length: 40 }, (_, i) => runCase(generateCase(config, `race/${560 + i}`, { steps: 64, fullLength: true, weights: { during: 50 } }), policies, { oracles }))
      .flatMap((r) => r.violations)
      .filter((v) => v.details?.during !== undefined);
    expect(races.length).toBeGreaterThan(0);
  });
});
