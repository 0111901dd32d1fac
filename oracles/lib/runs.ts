// Questions about the frames a step touched. The recorder hands them over as sorted, merged,
// half-open ranges (Step.frameRanges, Step.gfnRanges); a step that converts a 2M range touches one.
// Oracles iterate the ranges directly and ask these (binary search), so a check works per range or
// per 2M region, never per frame, and allocates nothing.

import { FRAMES_PER_2M, type FrameRange } from 'cocofuzz/api';

/** Whether any of `ranges` (ascending, disjoint) meets [from, to). */
export function overlaps(ranges: readonly FrameRange[], from: number, to: number): boolean {
  let lo = 0;
  let hi = ranges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ranges[mid]!.end <= from) lo = mid + 1;
    else hi = mid;
  }
  return lo < ranges.length && ranges[lo]!.start < to;
}

/** Whether any of `ranges` meets the 2M region `region` (frame / 512). */
export function touchesRegion(ranges: readonly FrameRange[], region: number): boolean {
  return overlaps(ranges, region * FRAMES_PER_2M, (region + 1) * FRAMES_PER_2M);
}
