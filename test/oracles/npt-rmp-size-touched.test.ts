// npt-rmp-size judges, in a step, the large NPT leaves over the GFNs the step touched and the
// large leaves it saw before over the frames the step touched. A touched range may start in
// unmapped space (a trusted device's attach touches a whole 1G swiotlb pool the NPT does not map):
// the leaves further on must still be judged, in address order, and the unmapped space must not
// cost a lookup per 2M region; frames are matched against the regions the oracle's index holds.

import { describe, expect, it } from 'vitest';
import type { Leaf, Step, View } from '../../src/api.ts';
import { Rmp } from '../../src/model/rmp.ts';
import { oracleNamed } from './cases.ts';

const SZ_4K = 4096;
const SZ_2M = 2 * 1024 * 1024;
const SZ_1G = 1024 * SZ_2M;
const ASID = 1;
const oracle = oracleNamed('npt-rmp-size');

/** A guest whose NPT maps `leaves` (and nothing else) over a real RMP; counts the NPT lookups. */
function world(leaves: Leaf[]): { view: View; rmp: Rmp; lookups: () => number } {
  let lookups = 0;
  const npt = {
    leafInto(iova: number, out: Leaf): boolean {
      lookups++;
      const leaf = leaves.find((l) => l.iova <= iova && iova < l.iova + l.size);
      if (leaf === undefined) return false;
      Object.assign(out, leaf);
      return true;
    },
    nextMapped(from: number, end: number): number {
      let next = end;
      for (const l of leaves) if (l.iova + l.size > from && l.iova < next) next = Math.max(from, l.iova);
      return next;
    },
    leafBytes: (atLeast = 0) => leaves.filter((l) => l.size >= atLeast).reduce((sum, l) => sum + l.size, 0),
  };
  const rmp = new Rmp();
  return { view: { asid: ASID, npt, rmp } as unknown as View, rmp, lookups: () => lookups };
}

/** A guest-private 2M entry: frames at `hpa` for GPA `gpa`. */
const assign2M = (rmp: Rmp, hpa: number, gpa: number): void => {
  expect(rmp.rmpUpdate(hpa, { assigned: true, asid: ASID, gpa, size: '2M' })).toBe(0);
};

const step = (ranges: Partial<Pick<Step, 'gfnRanges' | 'frameRanges'>>): Step => ({ op: { op: 'tdi_accept', dev: 0 }, gfnRanges: [], frameRanges: [], ...ranges }) as unknown as Step;

describe('npt-rmp-size over touched ranges', () => {
  it('judges the large leaves a GFN range reaches past unmapped space, with no lookup per unmapped 2M region', () => {
    // Two 2M leaves, far into a 1G range that starts unmapped, each over a 2M RMP entry: correct.
    const leaves: Leaf[] = [
      { iova: SZ_1G + 300 * SZ_2M, pa: 0x1_0000_0000, size: SZ_2M },
      { iova: SZ_1G + 700 * SZ_2M, pa: 0x1_4000_0000, size: SZ_2M },
    ];
    const { view, rmp, lookups } = world(leaves);
    for (const leaf of leaves) assign2M(rmp, leaf.pa, leaf.iova);
    expect(oracle.check(view, step({}))).toBeUndefined();
    // Both smashed: the RMP beneath each is 4K now, and only the GFN range reaches them.
    for (const leaf of leaves) expect(rmp.psmash(leaf.pa)).toBe(0);
    const before = lookups();
    const found = oracle.check(view, step({ gfnRanges: [{ start: SZ_1G / SZ_4K, end: (2 * SZ_1G) / SZ_4K }] })) ?? [];
    expect(found.map((f) => f.details?.leaf)).toEqual(leaves);
    // A lookup per leaf and a few around them, not one per 2M region of the 1G range (512).
    expect(lookups() - before).toBeLessThan(10);
  });

  it('re-judges the large leaves it saw over the frames a step touched, in address order', () => {
    const leaves: Leaf[] = [
      { iova: 40 * SZ_2M, pa: 0x2_0000_0000 + 5 * SZ_2M, size: SZ_2M },
      { iova: 10 * SZ_2M, pa: 0x2_0000_0000 + 400 * SZ_2M, size: SZ_2M },
      { iova: 20 * SZ_2M, pa: 0x3_0000_0000, size: SZ_2M },
    ];
    const { view, rmp } = world(leaves);
    for (const leaf of leaves) assign2M(rmp, leaf.pa, leaf.iova);
    // The first check sweeps: every leaf is indexed by the frames beneath it.
    expect(oracle.check(view, step({}))).toBeUndefined();
    for (const leaf of leaves) expect(rmp.psmash(leaf.pa)).toBe(0);
    // Frames of a 1G stretch holding the first two leaves' frames (not the third's): those two
    // are found, in the order of their frames, and only they.
    const first = 0x2_0000_0000 / SZ_4K;
    const found = oracle.check(view, step({ frameRanges: [{ start: first, end: first + 512 * 512 }] })) ?? [];
    expect(found.map((f) => f.details?.leaf)).toEqual([leaves[0], leaves[1]]);
    // A range of frames ending just before the first leaf's region finds nothing; one frame more, that leaf.
    expect(oracle.check(view, step({ frameRanges: [{ start: first, end: first + 5 * 512 }] })) ?? []).toEqual([]);
    const one = oracle.check(view, step({ frameRanges: [{ start: first, end: first + 5 * 512 + 1 }] })) ?? [];
    expect(one.map((f) => f.details?.leaf)).toEqual([leaves[0]]);
  });
});
