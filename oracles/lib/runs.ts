// Touched frames as runs. The recorder reports what a step touched as ascending 4K frame numbers
// (Step.frames, Step.gfns); a step that converts a 2M range touches 512 of them. Oracles walk them
// as half-open runs [start, end) so that a check can work per run or per 2M region instead of per
// frame, and so that reading ranges the recorder reports directly is a change here, not in every
// oracle. The buffers are reused: a check allocates nothing once they have grown.

import { FRAMES_PER_2M } from 'cocofuzz/api';

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

/** Fill `into` with the runs of `frames` (ascending, no duplicates: what the recorder reports). */
export function runsOf(frames: readonly number[], into: Runs): Runs {
  let count = 0;
  let i = 0;
  while (i < frames.length) {
    const start = frames[i]!;
    let end = start + 1;
    i++;
    while (i < frames.length && frames[i] === end) {
      end++;
      i++;
    }
    into.start[count] = start;
    into.end[count] = end;
    count++;
  }
  into.count = count;
  return into;
}
