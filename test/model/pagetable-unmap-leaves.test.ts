// PageTable.unmapLeaves(): what unmap() of each whole leaf, one after the other, does (a host
// zapping leaf by leaf, recorded as one run of calls), in one walk: the same leaves removed, the
// same ranges gathered (a range gathered before may or may not touch the first leaf), and no
// table freed, on random layouts of 4K and 2M leaves.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createPageTable, type PageTable } from '../../src/model/pagetable/index.ts';
import { K, M } from './pagetable-helpers.ts';

const BASE = 64 * M;
const SPAN = 16 * M;

/** Map [iova, iova + len) at `size` leaves (a 2M map of 4K leaves is a 2M range capped at 4K). */
function build(maps: readonly { at: number; pages: number; size: number }[], gatherAt: number | undefined): PageTable {
  const pt = createPageTable({ format: 'x86_64' });
  for (const { at, pages, size } of maps) pt.map(BASE + at * size, 0x100000000 + at * size, pages * size, size);
  pt.sync();
  // A range gathered before the unmaps (an earlier unmap of the step, not yet flushed).
  if (gatherAt !== undefined) {
    pt.map(BASE + SPAN + gatherAt * 4 * K, 0x200000000, 4 * K);
    pt.unmap(BASE + SPAN + gatherAt * 4 * K, 4 * K);
  }
  return pt;
}

describe('PageTable.unmapLeaves', () => {
  it('does what unmapping the leaves one by one does', () => {
    const map = fc.record({ at: fc.integer({ min: 0, max: 7 }), pages: fc.integer({ min: 1, max: 3 }), size: fc.constant(2 * M) });
    const small = fc.record({ at: fc.integer({ min: 0, max: 4095 }), pages: fc.integer({ min: 1, max: 700 }), size: fc.constant(4 * K) });
    fc.assert(
      fc.property(fc.array(fc.oneof(map, small), { maxLength: 6 }), fc.option(fc.integer({ min: 0, max: 1024 }), { nil: undefined }), fc.integer({ min: 0, max: 4095 }), (maps, gatherAt, from) => {
        const one = build(maps, gatherAt);
        const batched = build(maps, gatherAt);
        // The stretch of adjacent leaves of one size from the first leaf at or after `from`.
        const leaves = [...one.leaves(BASE + from * 4 * K, BASE + SPAN)];
        const first = leaves[0];
        if (first === undefined) return;
        let count = 1;
        while (leaves[count] !== undefined && leaves[count]!.size === first.size && leaves[count]!.iova === first.iova + count * first.size) count++;
        const removedOne: number[] = [];
        for (let i = 0; i < count; i++) {
          const part: number[] = [];
          expect(one.unmap(first.iova + i * first.size, first.size, part)).toEqual({ unmapped: first.size });
          removedOne.push(...part);
        }
        const removed: number[] = [];
        expect(batched.unmapLeaves(first.iova, count * first.size, first.size, removed)).toEqual({ unmapped: count * first.size });
        expect(batched.gathered()).toEqual(one.gathered());
        expect(batched.stats()).toEqual(one.stats());
        expect([...batched.leaves(BASE, BASE + 2 * SPAN)]).toEqual([...one.leaves(BASE, BASE + 2 * SPAN)]);
        // The removed leaves as runs: per leaf they come one at a time, in one walk joined.
        const join = (runs: number[]): number[] => {
          const out: number[] = [];
          for (let r = 0; r < runs.length; r += 3) {
            const n = out.length;
            if (n > 0 && out[n - 3]! + out[n - 1]! === runs[r] && out[n - 2]! + out[n - 1]! === runs[r + 1]) out[n - 1]! += runs[r + 2]!;
            else out.push(runs[r]!, runs[r + 1]!, runs[r + 2]!);
          }
          return out;
        };
        expect(join(removed)).toEqual(join(removedOne));
        expect(batched.sync()).toEqual(one.sync());
      }),
      { seed: 0x1eaf, numRuns: 300 },
    );
  });
});
