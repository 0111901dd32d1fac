// Property: each oracle's incremental check agrees with its full sweep. Random cases, under
// correct and broken policies (with the adversary's raw hardware ops in half of them), run past
// their first violation, give every oracle the same first failing step whether oracles check only
// what each step touched or sweep the whole world after every step; hence the same verdict, first
// step and oracles at that step.

import { afterAll, describe, expect, it } from 'vitest';
import type { GuestPolicy, HostPolicy } from '../../src/policies/types.ts';
import { generateCase } from '../../src/ops/generate.ts';
import brokenForgetsPsc from '../../corpus/policies/broken-forgets-psc.ts';
import brokenKvmMaxLevel from '../../corpus/policies/broken-kvm-max-level.ts';
import brokenLeakyFree from '../../corpus/policies/broken-leaky-free.ts';
import brokenSkipInvalidate from '../../corpus/policies/broken-skip-invalidate.ts';
import { builtinOracles, caseOf, firstSteps, runSpec, verdictOf } from './cases.ts';

/** DMA-heavy cases: buffers, mappings, conversions and flush points, where IOTLB and bounce bugs live. */
const DMA_HEAVY = { dma: 40, alloc_coherent: 10, free_coherent: 8, map_single: 12, unmap_single: 8, sync: 4, host_sync: 8, share: 4, unshare: 4 };

/** The adversary's RMP instructions against memory the guest is accepting. */
const RMP_HEAVY = { accept: 20, hw_rmpupdate: 20, hw_psmash: 10, touch: 10 };

const pairs: [string | HostPolicy, string | GuestPolicy][] = [
  ['cut-on-convert', 'linux-2m-pool'],
  ['cut-on-convert', 'linux'],
  ['kvm-iommu-4k', 'linux'],
  ['vfio-static', 'linux'],
  ['kvm-4k', 'double-validate'],
  [brokenKvmMaxLevel, 'linux-2m-pool'],
  [brokenSkipInvalidate, brokenLeakyFree],
  ['cut-on-convert', brokenForgetsPsc],
];

const nameOf = (policy: string | { name: string }): string => (typeof policy === 'string' ? policy : policy.name);

describe('incremental checks agree with full sweeps', () => {
  const cases: { host: string | HostPolicy; guest: string | GuestPolicy; adversary: boolean; title: string; weights?: Record<string, number> }[] = [
    ...pairs.flatMap(([host, guest]) =>
      [false, true].map((adversary) => ({ host, guest, adversary, title: `${nameOf(host)} + ${nameOf(guest)}${adversary ? ' + adversary' : ''}` })),
    ),
    { host: brokenSkipInvalidate, guest: 'linux', adversary: false, title: 'broken-skip-invalidate + linux, DMA-heavy', weights: DMA_HEAVY },
    { host: 'vfio-static', guest: 'linux', adversary: false, title: 'vfio-static + linux, DMA-heavy', weights: DMA_HEAVY },
    { host: 'cut-on-convert', guest: 'linux-2m-pool', adversary: true, title: 'cut-on-convert + linux-2m-pool, RMP-heavy adversary', weights: RMP_HEAVY },
    { host: 'kvm-iommu-4k', guest: 'linux', adversary: true, title: 'kvm-iommu-4k + linux, RMP-heavy adversary', weights: RMP_HEAVY },
    // Interleaved DMAs and touches inside ops (the other cases pin during=0, as generated before it).
    { host: 'cut-on-convert', guest: 'linux-2m-pool', adversary: false, title: 'cut-on-convert + linux-2m-pool, interleaved', weights: { during: 60 } },
    { host: 'quiesce-dma', guest: 'linux', adversary: true, title: 'quiesce-dma + linux + adversary, interleaved', weights: { during: 60 } },
  ];
  const fired = new Set<string>();

  it.each(cases)('$title', ({ host, guest, adversary, title, weights }) => {
    const template = caseOf({ host, guest, ops: [], adversary });
    // Weighted cases try a few seeds: swarm still switches some unpinned kinds off per case.
    for (const seed of weights ? [0, 1, 2] : [0]) {
      const { ops } = generateCase(template.config, `incremental/${title}${seed ? `/${seed}` : ''}`, { steps: 100, fullLength: true, weights: { during: 0, ...weights } });
      const spec = { host, guest, ops, adversary };
      const incremental = runSpec(spec, builtinOracles, { allViolations: true });
      const full = runSpec(spec, builtinOracles, { allViolations: true, fullCheck: true });
      expect(incremental.oracleErrors).toEqual([]);
      expect(full.oracleErrors).toEqual([]);
      expect(verdictOf(incremental)).toBe(verdictOf(full));
      expect(firstSteps(incremental)).toEqual(firstSteps(full));
      for (const name of Object.keys(firstSteps(full))) fired.add(name);
    }
  });

  // Not vacuous: the broken policies and the adversary make most oracles fire somewhere.
  afterAll(() => {
    expect([...fired].sort().length, [...fired].sort().join(', ')).toBeGreaterThanOrEqual(10);
  });
});
