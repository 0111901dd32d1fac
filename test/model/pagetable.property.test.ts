// Random map/unmap sequences against FlatReference (a flat map from smallest page to leaf,
// no tables) and an independently written greedy layout: the table walk, contiguous
// entries, table replacement and freeing must never change what a translation returns.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createPageTable, type PageTable, type PageTableOptions } from '../../src/model/pagetable/index.ts';
import { FlatReference, G, K, M, greedyLayout, leafTotal, reclaimEmptyTables } from './pagetable-helpers.ts';

type Op =
  /** `cap`: PageTable.map()'s maxLeaf (a split, a 4K fault-in), none when undefined. */
  | { kind: 'map'; iova: number; pa: number; len: number; cap?: number }
  | { kind: 'unmap'; iova: number; len: number }
  /** Unmap an earlier successful map: all of it, its first smallest page, or from inside. */
  | { kind: 'unmapPrevious'; index: number; part: 'all' | 'head' | 'inside' }
  /** Map a whole aligned unit around an earlier map: collides, or replaces emptied tables. */
  | { kind: 'mapAround'; index: number; unit: number }
  | { kind: 'sync' };

interface Scenario {
  name: string;
  options: PageTableOptions;
  /** The window ops fall in: chosen to straddle table boundaries. */
  base: number;
  size: number;
  /** Alignments and length units ops are built from (biased to the format's sizes). */
  units: number[];
}

const SCENARIOS: Scenario[] = [
  { name: 'amdv1, 4K..4M around the 2G boundary', options: { format: 'amdv1' }, base: 2 * G - 8 * M, size: 16 * M, units: [4 * K, 8 * K, 64 * K, 2 * M, 4 * M] },
  { name: 'amdv1 restricted to 4K|64K|2M|8M', options: { format: 'amdv1', pgsizes: 4 * K + 64 * K + 2 * M + 8 * M }, base: G - 8 * M, size: 16 * M, units: [4 * K, 16 * K, 64 * K, 2 * M, 8 * M] },
  { name: 'vtdss, 4K and 2M', options: { format: 'vtdss' }, base: 512 * G - 8 * M, size: 16 * M, units: [4 * K, 8 * K, 2 * M, 4 * M] },
  // 4K leaves only: a 2M or 4M op fills whole last-level tables with one linear run, whose
  // summary (table.ts SUMMARY_LINEAR) the range queries then trust, until an op breaks it.
  { name: 'amdv1 restricted to 4K, whole tables of linear leaves', options: { format: 'amdv1', pgsizes: [4 * K] }, base: G - 4 * M, size: 8 * M, units: [4 * K, 2 * M, 4 * M] },
  { name: 'x86_64 restricted to 2M|1G, around the 512G boundary', options: { format: 'x86_64', pgsizes: [2 * M, G] }, base: 512 * G - 4 * G, size: 8 * G, units: [2 * M, 4 * M, G] },
];

function opArbitrary(s: Scenario): fc.Arbitrary<Op> {
  const smallest = Math.min(...s.units);
  const aligned = fc
    .tuple(fc.constantFrom(...s.units), fc.nat(), fc.integer({ min: 0, max: 3 }))
    .map(([unit, n, nudge]) => s.base + (n % (s.size / unit)) * unit + (nudge === 3 ? smallest : 0));
  const length = fc
    .tuple(fc.constantFrom(...s.units), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 3 }))
    .map(([unit, times, extra]) => unit * times + (extra === 3 ? smallest : 0));
  // pa congruent to iova modulo 1G (large leaves possible), or a page-aligned pa anywhere.
  const paOffset = fc.oneof(fc.constant(0), fc.constant(64 * G), fc.nat({ max: 1 << 20 }).map((n) => n * smallest));
  return fc.oneof(
    {
      weight: 5,
      arbitrary: fc
        .record({ iova: aligned, paOffset, len: length, cap: fc.option(fc.constantFrom(...s.units), { freq: 3 }) })
        .map(({ iova, paOffset: off, len, cap }) => ({ kind: 'map' as const, iova, pa: iova + off, len, ...(cap === null ? {} : { cap }) })),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('unmap' as const), iova: aligned, len: length }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('unmapPrevious' as const), index: fc.nat(), part: fc.constantFrom('all' as const, 'head' as const, 'inside' as const) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('mapAround' as const), index: fc.nat(), unit: fc.constantFrom(...s.units) }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'sync' as const }) },
  );
}

/** Translation agrees at every smallest page of [from, to) and one byte inside each. */
function expectSameTranslation(pt: PageTable, ref: FlatReference, from: number, to: number): void {
  const step = pt.pgsizes[0]!;
  for (let va = from; va < to; va += step) {
    const probe = va + (va % 7) * 8;
    if (pt.iovaToPhys(probe) !== ref.iovaToPhys(probe)) {
      expect({ va: probe, phys: pt.iovaToPhys(probe) }).toEqual({ va: probe, phys: ref.iovaToPhys(probe) });
    }
  }
}

/**
 * The allocation-free range queries agree with their definitions over leafAt() and leaves():
 * leafInto, leafRuns (adjacent leaves with contiguous output merged), linearEnd, nextMapped.
 */
function expectRangeQueries(pt: PageTable, from: number, to: number): void {
  const leaves = [...pt.leaves(from, to)];
  const runs: number[] = [];
  for (const leaf of leaves) {
    const n = runs.length;
    if (n > 0 && runs[n - 3]! + runs[n - 1]! === leaf.iova && runs[n - 2]! + runs[n - 1]! === leaf.pa) runs[n - 1]! += leaf.size;
    else runs.push(leaf.iova, leaf.pa, leaf.size);
  }
  const out: number[] = [];
  expect(pt.leafRuns(from, to, out)).toBe(runs.length / 3);
  expect(out).toEqual(runs);
  const scratch = { iova: 0, pa: 0, size: 0 };
  const step = pt.pgsizes[0]!;
  // Every leaf's edges in a small window; a sample of them over a whole scenario window.
  const every = Math.max(1, Math.floor(leaves.length / 16));
  const probes = [from, to - step, ...leaves.filter((_, i) => i % every === 0).flatMap((leaf) => [leaf.iova, leaf.iova + leaf.size, leaf.iova + leaf.size - step])];
  for (const at of probes) {
    if (at < from || at >= to) continue;
    const leaf = pt.leafAt(at);
    expect(pt.leafInto(at, scratch)).toBe(leaf !== undefined);
    if (leaf !== undefined) expect(scratch).toEqual(leaf);
    const first = leaves.find((l) => l.iova + l.size > at);
    expect(pt.nextMapped(at, to)).toBe(first === undefined ? to : Math.max(at, first.iova));
    // linearEnd from `at`, against its own translation there and against a shifted one.
    for (const pa of leaf === undefined ? [0] : [leaf.pa + (at - leaf.iova), leaf.pa + (at - leaf.iova) + step]) {
      let end = at;
      for (let l = pt.leafAt(end); l !== undefined && end < to && l.pa + (end - l.iova) === pa + (end - at); l = pt.leafAt(end)) end = l.iova + l.size;
      expect(pt.linearEnd(at, to, pa)).toBe(Math.min(end, to));
    }
  }
}

function run(s: Scenario, ops: Op[]): void {
  const pt = createPageTable(s.options);
  const ref = new FlatReference(pt.pgsizes);
  const mapped: { iova: number; len: number }[] = [];

  const smallest = pt.pgsizes[0]!;

  const doMap = (iova: number, pa: number, len: number, cap?: number): void => {
    const got = pt.map(iova, pa, len, cap);
    expect(got).toEqual(ref.map(iova, pa, len, cap));
    if (got.error === undefined) {
      // Oracle 1 of research/iommupt.md section 7: the layout is the greedy one (under the cap).
      expect([...pt.leaves(iova, iova + len)]).toEqual(greedyLayout(iova, pa, len, pt.pgsizes.filter((size) => size <= (cap ?? Infinity))));
      mapped.push({ iova, len });
    } else if (got.mapped > 0) {
      // iommu_map() rolls back a partial map.
      expect(pt.unmap(iova, got.mapped)).toEqual(ref.unmap(iova, got.mapped));
    }
    expectSameTranslation(pt, ref, iova - smallest, iova + len + smallest);
  };

  const doUnmap = (iova: number, len: number): void => {
    // The removed leaves' runs are the runs that tiled [iova, iova + unmapped) before the unmap.
    const before: number[] = [];
    pt.leafRuns(iova, iova + len + pt.pgsizes[pt.pgsizes.length - 1]!, before);
    const removed: number[] = [9];
    const got = pt.unmap(iova, len, removed);
    expect(got).toEqual(ref.unmap(iova, len));
    const expected: number[] = [];
    for (let r = 0; r < before.length; r += 3) {
      const from = Math.max(before[r]!, iova);
      const to = Math.min(before[r]! + before[r + 2]!, iova + got.unmapped);
      if (to > from) expected.push(from, before[r + 1]! + (from - before[r]!), to - from);
    }
    expect(removed).toEqual(expected);
    // Oracle 3: a clean unmap covers at least the request, unless a hole stopped it.
    if (got.error === undefined && got.unmapped < len) expect(ref.iovaToPhys(iova + got.unmapped)).toBeUndefined();
    expectSameTranslation(pt, ref, iova - smallest, iova + Math.max(len, got.unmapped) + smallest);
  };

  for (const op of ops) {
    const previous = mapped[('index' in op ? op.index : 0) % Math.max(1, mapped.length)];
    if (op.kind === 'map') {
      doMap(op.iova, op.pa, op.len, op.cap);
    } else if (op.kind === 'unmap') {
      doUnmap(op.iova, op.len);
    } else if (op.kind === 'unmapPrevious') {
      if (previous === undefined) continue;
      if (op.part === 'all') doUnmap(previous.iova, previous.len);
      else if (op.part === 'head') doUnmap(previous.iova, smallest);
      else if (previous.len > smallest) doUnmap(previous.iova + smallest, smallest);
    } else if (op.kind === 'mapAround') {
      if (previous === undefined) continue;
      const iova = Math.floor(previous.iova / op.unit) * op.unit;
      doMap(iova, iova, op.unit);
    } else {
      pt.sync();
      expect(pt.stats().pendingFree).toBe(0);
    }
    expect(leafTotal(pt)).toBe(ref.leafByStart.size);
    if ('iova' in op) expectRangeQueries(pt, Math.max(0, op.iova - 4 * smallest), op.iova + 8 * smallest);
  }
  expectRangeQueries(pt, s.base, s.base + s.size);

  expect([...pt.leaves()]).toEqual(ref.sortedLeaves());
  expectSameTranslation(pt, ref, s.base, s.base + s.size);

  // Oracle 4: with everything unmapped and empty tables reclaimed, the table count is back
  // to the root alone.
  for (const leaf of ref.sortedLeaves()) expect(pt.unmap(leaf.iova, leaf.size)).toEqual({ unmapped: leaf.size });
  reclaimEmptyTables(pt, s.base, s.base + s.size + 5 * Math.max(...s.units));
  expect(pt.stats()).toMatchObject({ leavesBySize: {}, tables: 1, pendingFree: 0 });
}

describe('page table against a flat reference', () => {
  for (const [i, s] of SCENARIOS.entries()) {
    it(s.name, () => {
      fc.assert(
        fc.property(fc.array(opArbitrary(s), { minLength: 1, maxLength: 30, size: 'max' }), (ops) => run(s, ops)),
        { seed: 0x10de + i, numRuns: 80 },
      );
    });
  }
});
