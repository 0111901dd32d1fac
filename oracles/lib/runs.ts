// Questions about the frames a step touched. The recorder hands them over as sorted, merged,
// half-open ranges (Step.frameRanges, Step.gfnRanges); a step that converts a 2M range touches one.
// Oracles iterate the ranges directly and ask these (binary search), so a check works per range or
// per 2M region, never per frame, and allocates nothing.

import { FRAMES_PER_2M, type FrameRange } from 'cocofuzz/api';

/** The index of the first of `ranges` (ascending, disjoint) that ends after `from` (binary search). */
function firstEndingAfter(ranges: readonly FrameRange[], from: number): number {
  let lo = 0;
  let hi = ranges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ranges[mid]!.end <= from) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The same search over ranges kept as parallel arrays (RangeSet, swiotlb-shared's required runs,
 * LiveSlots' slot addresses):
 * the index of the first of the first `count` ends (ascending) that is above `from`.
 */
export function firstEndAbove(ends: readonly number[], count: number, from: number): number {
  let lo = 0;
  let hi = count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ends[mid]! <= from) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Whether any of `ranges` (ascending, disjoint) meets [from, to). */
export function overlaps(ranges: readonly FrameRange[], from: number, to: number): boolean {
  const i = firstEndingAfter(ranges, from);
  return i < ranges.length && ranges[i]!.start < to;
}

/** The one of `ranges` (ascending, disjoint) that holds `frame`, or undefined. */
export function rangeHolding(ranges: readonly FrameRange[], frame: number): FrameRange | undefined {
  const range = ranges[firstEndingAfter(ranges, frame)];
  return range !== undefined && range.start <= frame ? range : undefined;
}

/** Whether any of `ranges` meets the 2M region `region` (frame / 512). */
export function touchesRegion(ranges: readonly FrameRange[], region: number): boolean {
  return overlaps(ranges, region * FRAMES_PER_2M, (region + 1) * FRAMES_PER_2M);
}

/** The first frame of [from, to) that none of `ranges` (ascending, disjoint) holds, or `to`. */
export function firstOutside(ranges: readonly FrameRange[], from: number, to: number): number {
  let at = from;
  for (let range = rangeHolding(ranges, at); range !== undefined && at < to; range = rangeHolding(ranges, at)) at = range.end;
  return Math.min(at, to);
}

/** The end (at most `to`) of the stretch from `from` that none of `ranges` (ascending, disjoint) meets. */
export function outsideEnd(ranges: readonly FrameRange[], from: number, to: number): number {
  const next = ranges[firstEndingAfter(ranges, from)];
  return next === undefined ? to : Math.min(to, Math.max(from, next.start));
}

/** Whether one of `ranges` (ascending, disjoint) holds all of [from, to). */
export function holdsAll(ranges: readonly FrameRange[], from: number, to: number): boolean {
  const range = rangeHolding(ranges, from);
  return range !== undefined && range.end >= to;
}
