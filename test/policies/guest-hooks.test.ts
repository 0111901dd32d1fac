// The guest hooks serve the bugs a kernel engineer would write: each policy file in
// test/fixtures/policies/ uses only the public entry points, and a short hand-written case shows
// the oracle that catches it, while the same case under Linux's defaults stays clean.

import { describe, expect, it } from 'vitest';
import { builtinOracles } from '../../oracles/index.ts';
import type { Op } from '../../src/ops/types.ts';
import type { GuestPolicy } from '../../src/policies/types.ts';
import coherentFreeShared from '../fixtures/policies/coherent-free-shared.ts';
import sizemismatchSuccess from '../fixtures/policies/sizemismatch-success.ts';
import swiotlbPoolEnd from '../fixtures/policies/swiotlb-pool-end.ts';
import swiotlbUnaligned from '../fixtures/policies/swiotlb-unaligned.ts';
import unmapNoCopyback from '../fixtures/policies/unmap-no-copyback.ts';
import { makeWorld } from '../helpers/world.ts';
import { runSpec } from '../oracles/cases.ts';

const KB = 1024;
const MB = 1024 * KB;

interface BugCase {
  policy: GuestPolicy;
  config?: Record<string, unknown>;
  ops: Op[];
  oracle: string;
  step: number;
  message: RegExp;
}

const bugs: BugCase[] = [
  {
    policy: swiotlbUnaligned,
    config: { cpus: 1 },
    ops: [
      { op: 'map_single', dev: 1, bytes: 2 * KB, dir: 'to_device' },
      { op: 'map_single', dev: 1, bytes: 4 * KB, dir: 'to_device' },
    ],
    oracle: 'swiotlb-slots',
    step: 1,
    message: /page/,
  },
  {
    policy: swiotlbPoolEnd,
    config: { cpus: 1, swiotlb: '256K' },
    ops: [
      { op: 'map_single', dev: 1, bytes: 252 * KB, dir: 'to_device' },
      { op: 'map_single', dev: 1, bytes: 6 * KB, dir: 'to_device' },
    ],
    oracle: 'policy-error',
    step: 1,
    message: /swiotlbSlots returned slot 126: slots 126\.\.128 run past the pool's last slot 127/,
  },
  {
    policy: coherentFreeShared,
    ops: [
      { op: 'alloc_coherent', dev: 1, bytes: 4 * KB },
      { op: 'free_coherent', buf: 0 },
    ],
    oracle: 'swiotlb-shared',
    step: 1,
    message: /shared/,
  },
  {
    policy: unmapNoCopyback,
    ops: [
      { op: 'map_single', dev: 1, bytes: 4 * KB, dir: 'from_device' },
      { op: 'dma', dev: 1, map: 0, len: 4 * KB, write: true },
      { op: 'unmap_single', map: 0 },
    ],
    oracle: 'bounce-integrity',
    step: 2,
    message: /.*/,
  },
  {
    policy: sizemismatchSuccess,
    ops: [
      { op: 'host_split', gpa: 2 * MB },
      { op: 'accept', gpa: 2 * MB, size: '2M' },
      { op: 'touch', gpa: 2 * MB + 4 * KB, write: true },
    ],
    oracle: 'guest-alive',
    step: 2,
    message: /.*/,
  },
];

describe('guest hooks express real guest bugs', () => {
  for (const bug of bugs) {
    it(`${bug.policy.name}: ${bug.oracle} fires; linux stays clean on the same case`, () => {
      const broken = runSpec({ host: 'kvm-iommu-4k', guest: bug.policy, ops: bug.ops, ...(bug.config ? { config: bug.config } : {}) }, builtinOracles);
      expect(broken.violations[0]).toMatchObject({ oracle: bug.oracle, step: bug.step });
      expect(broken.violations[0]?.message).toMatch(bug.message);
      const correct = runSpec({ host: 'kvm-iommu-4k', guest: 'linux', ops: bug.ops, ...(bug.config ? { config: bug.config } : {}) }, builtinOracles);
      expect(correct.violations).toEqual([]);
    });
  }
});

describe('map_single above dma_max_mapping_size()', () => {
  // An NVMe-like device: min_align_mask 0xfff, so swiotlb_max_mapping_size() is 252K.
  const nvme: GuestPolicy = { name: 'nvme-mask', description: 'min_align_mask 0xfff', dmaAttrs: () => ({ minAlignMask: 0xfff }) };
  const over: Op = { op: 'map_single', dev: 1, bytes: 253 * KB, dir: 'to_device' };

  it('is skipped for a driver that honours the limit, with the reason', () => {
    expect(runSpec({ host: 'kvm-iommu-4k', guest: nvme, ops: [over] }, builtinOracles).verdict).toBe('clean');
    const step = makeWorld({}, { guest: nvme }).apply(over, 0);
    expect(step.skipped).toMatch(/dma_max_mapping_size\(\) = 258048 bytes \(this op maps 259072\); "overMax": true/);
    expect(step.calls).toEqual([]);
  });

  it('is served to a driver that ignores it (overMax), and swiotlb-slots reports it', () => {
    const result = runSpec({ host: 'kvm-iommu-4k', guest: nvme, ops: [{ ...over, overMax: true }] }, builtinOracles);
    expect(result.violations[0]).toMatchObject({ oracle: 'swiotlb-slots', step: 0 });
    expect(result.violations[0]?.message).toMatch(/mapped 259072 bytes, past dma_max_mapping_size\(\) = swiotlb_max_mapping_size 252K, and swiotlb served it ==> FAIL \(mapping too large\)/);
  });
});
