// Cutting an IO page table down the path to an address (iommupt's cut_mapping(), research/iommupt.md
// section 6): one level at a time, so that only the region holding the address changes size. A
// leaf above 2M first becomes 2M leaves (AMD's engine swaps one 2M IOPDE for a 4K table), then the
// 2M leaf holding the address becomes leaves of the size asked for; the other regions keep leaves
// checked at 2M over their 2M RMP entries. One rule for the firmware's atomic smash
// (Machine.fwSmash) and the host helpers that split with io_split calls (follow-rmp.ts
// cutIoLeaves, Iommu.cut): each passes how it splits.

import type { Leaf, PageTableView } from '../api.ts';
import { SZ_2M } from './size.ts';

/** The leaf a walk reads (reused: the splits never cut down a path again while one runs). */
const leaf: Leaf = { iova: 0, pa: 0, size: 0 };

/**
 * Splits the leaf holding `at` down the path until it is at most `size` (with `toBoundary`: until
 * `at` starts a leaf, where a cut at `at` needs nothing smaller), calling `split(iova, size)` for
 * each split, the 2M step first where a leaf is above 2M and the table has 2M leaves. The leaf is
 * read again after each split, so a split that did not happen is not built upon.
 */
export function cutDownPath(s2: PageTableView, at: number, size: number, split: (iova: number, size: number) => void, toBoundary = false): void {
  if (done(s2, at, size, toBoundary)) return;
  if (leaf.size > SZ_2M && size < SZ_2M && s2.pgsizes.includes(SZ_2M)) {
    split(leaf.iova, SZ_2M);
    if (done(s2, at, size, toBoundary)) return;
  }
  split(leaf.iova, size);
}

/** Reads the leaf holding `at` into `leaf`: true when there is nothing (more) to split. */
function done(s2: PageTableView, at: number, size: number, toBoundary: boolean): boolean {
  return !s2.leafInto(at, leaf) || leaf.size <= size || (toBoundary && leaf.iova === at);
}
