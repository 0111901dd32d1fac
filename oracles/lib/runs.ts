// Touched frames as runs. The recorder reports what a step touched as sorted, merged half-open
// ranges (Step.frameRanges, Step.gfnRanges); a step that converts a 2M range touches one. Oracles
// copy them into reused buffers and ask run questions (binary search) so that a check works per
// run or per 2M region, never per frame. The buffers are reused: a check allocates nothing once
// they have grown.

import { FRAMES_PER_2M, type FrameRange } from 'cocofuzz/api';

/** Half-open runs of frame numbers, [start[i], end[i]) for i < count, ascending and disjoint. */
export class Runs {
  readonly start: number[] = [];
  readonly end: number[] = [];
  count = 0;

  /** Whether `frame` lies in one of the runs (binary search: runs are ascending). */
  has(frame: number): boolean {
    return this.overlaps(frame, frame + 1);
  }

  /** Whether any run meets [from, to). */
  overlaps(from: number, to: number): boolean {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.end[mid]! <= from) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.count && this.start[lo]! < to;
  }

  /** Whether any run meets the 2M region `region` (frame / 512). */
  touchesRegion(region: number): boolean {
    return this.overlaps(region * FRAMES_PER_2M, (region + 1) * FRAMES_PER_2M);
  }
}

/** Fill `into` with `ranges` (Step.frameRanges / gfnRanges: sorted, merged, half-open). */
export function runsOf(ranges: readonly FrameRange[], into: Runs): Runs {
  const count = ranges.length;
  for (let i = 0; i < count; i++) {
    const range = ranges[i]!;
    into.start[i] = range.start;
    into.end[i] = range.end;
  }
  into.count = count;
  return into;
}
