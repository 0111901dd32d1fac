import { describe, expect, it } from 'vitest';
import { runCase } from '../../src/engine/run.ts';
import { computeMetrics, MetricsTotal } from '../../src/engine/metrics.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import { generateCase } from '../../src/ops/generate.ts';
import { pfnOf, SZ_2M, type View } from '../../src/api.ts';
import type { Op } from '../../src/ops/types.ts';
import { guestPolicies, hostPolicies } from '../../src/policies/index.ts';

const ops: Op[] = [
  { op: 'accept', gpa: 0x400000, size: '2M' },
  { op: 'accept', gpa: 0x600000, size: '2M' },
  { op: 'tdi_accept', dev: 0 },
  { op: 'share', gpa: 0x401000, pages: 1 },
];

function metricsOf(host: string) {
  const config = defaultConfig({ hostPolicy: host, guestPolicy: 'linux-2m-pool' });
  return runCase({ config, seed: 'm', ops }, { host: hostPolicies[host]!, guest: guestPolicies['linux-2m-pool']! }, { oracles: [] }).metrics;
}

/**
 * The shares by their definition: the RMP frame by frame, the tables leaf by leaf (what
 * computeMetrics reads from counters, or walks in runs).
 */
function leafShares(view: View): { rmp2M: number; npt2M: number; ioS2_2M: number } {
  let assigned = 0;
  let assigned2M = 0;
  for (const pfn of view.rmp.frames()) {
    const entry = view.rmp.entry(pfn);
    if (!entry.assigned || entry.asid !== view.asid) continue;
    assigned++;
    if (entry.size === '2M') assigned2M++;
  }
  let npt = 0;
  let npt2M = 0;
  for (const leaf of view.npt.leaves()) {
    const entry = view.rmp.entry(pfnOf(leaf.pa));
    if (!entry.assigned || entry.asid !== view.asid) continue;
    npt += leaf.size;
    if (leaf.size >= SZ_2M) npt2M += leaf.size;
  }
  let io = 0;
  let io2M = 0;
  for (const device of view.devices) {
    for (const leaf of device.s2.leaves()) {
      io += leaf.size;
      if (leaf.size >= SZ_2M) io2M += leaf.size;
    }
  }
  return { rmp2M: assigned === 0 ? 0 : assigned2M / assigned, npt2M: npt === 0 ? 0 : npt2M / npt, ioS2_2M: io === 0 ? 0 : io2M / io };
}

describe('efficiency metrics', () => {
  it('the RMP, NPT and IO S2 shares, from counters and runs, equal the frame-by-frame and leaf-by-leaf sums after every step of every host policy', () => {
    let steps = 0;
    for (const host of Object.keys(hostPolicies)) {
      for (const guest of ['linux', 'linux-2m-pool']) {
        // The adversary's raw RMPUPDATE and PSMASH reach RMP states no policy makes.
        const config = defaultConfig({ hostPolicy: host, guestPolicy: guest, ...(guest === 'linux' ? { adversary: 'host' } : {}) });
        for (const seed of ['metrics/1', 'metrics/2']) {
          const testCase = generateCase(config, seed, { steps: 40 });
          runCase(testCase, { host: hostPolicies[host]!, guest: guestPolicies[guest]! }, {
            oracles: [],
            allViolations: true,
            onStep: (_step, world) => {
              const { rmp2M, npt2M, ioS2_2M } = computeMetrics(world);
              expect({ host, guest, seed, rmp2M, npt2M, ioS2_2M }).toEqual({ host, guest, seed, ...leafShares(world) });
              steps++;
            },
          });
        }
      }
    }
    expect(steps).toBeGreaterThan(100);
  });

  it('kvm-4k keeps everything at 4K; cut-on-convert smashes only the region with a shared page', () => {
    const small = metricsOf('kvm-4k');
    expect(small).toMatchObject({ rmp2M: 0, npt2M: 0, ioS2_2M: 0, psmash: 0 });
    const large = metricsOf('cut-on-convert');
    // 512 frames under the untouched 2M entry, 511 private 4K frames beside the shared one.
    expect(large.rmp2M).toBeCloseTo(512 / 1023, 3);
    expect(large.psmash).toBe(1);
    expect(large.ioS2_2M).toBeGreaterThan(0);
  });

  it('averages over cases', () => {
    const total = new MetricsTotal();
    total.add({ rmp2M: 1, npt2M: 0, ioS2_2M: 0.5, psmash: 2, nptSplits: 0, ioSplits: 1, iotlbPerMiB: 0 });
    total.add({ rmp2M: 0, npt2M: 0, ioS2_2M: 0.5, psmash: 0, nptSplits: 0, ioSplits: 0, iotlbPerMiB: 0 });
    expect(total.mean()).toMatchObject({ rmp2M: 0.5, ioS2_2M: 0.5, psmash: 1, ioSplits: 0.5 });
  });
});
