import { describe, expect, it } from 'vitest';
import { runCase } from '../../src/engine/run.ts';
import { MetricsTotal } from '../../src/engine/metrics.ts';
import { defaultConfig } from '../../src/ops/config.ts';
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

describe('efficiency metrics', () => {
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
