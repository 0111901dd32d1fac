// A set of frames (GFNs or pfns) kept as ascending, disjoint, non-adjacent half-open ranges: "the
// pages this check has looked at already", asked and extended per range. A check reaches pages
// in a few runs, mostly in ascending order, so adding appends to or extends the last range. The
// arrays only grow and `count` says how much of them is in use: clear() for the next check is
// one store, and nothing is allocated once they have grown (truncating an array's length is a
// runtime call in V8, paid on every step).

import { firstEndAbove } from './runs.ts';

export class RangeSet {
  private readonly start: number[] = [];
  private readonly end: number[] = [];
  private count = 0;

  clear(): void {
    this.count = 0;
  }

  /** The index of the first range that ends after `frame` (binary search). */
  private firstEndingAfter(frame: number): number {
    return firstEndAbove(this.end, this.count, frame);
  }

  has(frame: number): boolean {
    const i = this.firstEndingAfter(frame);
    return i < this.count && this.start[i]! <= frame;
  }

  /** The first frame of [from, to) outside the set, or `to`. */
  firstOutside(from: number, to: number): number {
    const i = this.firstEndingAfter(from);
    return i < this.count && this.start[i]! <= from ? Math.min(to, this.end[i]!) : from;
  }

  /** The end (at most `to`) of the stretch from `from` that the set does not meet. */
  outsideEnd(from: number, to: number): number {
    const i = this.firstEndingAfter(from);
    return i < this.count ? Math.min(to, Math.max(from, this.start[i]!)) : to;
  }

  /** Add [from, to), merging with the ranges it meets or touches. */
  add(from: number, to: number): void {
    if (from >= to) return;
    const start = this.start;
    const end = this.end;
    const n = this.count;
    // The usual case: at or after the end of the last range.
    if (n === 0 || from > end[n - 1]!) {
      start[n] = from;
      end[n] = to;
      this.count = n + 1;
      return;
    }
    if (from >= start[n - 1]!) {
      end[n - 1] = Math.max(end[n - 1]!, to);
      return;
    }
    // The ranges [first, last) that [from, to) meets or touches become one, in place (splice()
    // would allocate the array of removed elements).
    const first = this.firstEndingAfter(from - 1);
    let last = first;
    while (last < n && start[last]! <= to) last++;
    if (first === last) {
      for (let k = n; k > first; k--) {
        start[k] = start[k - 1]!;
        end[k] = end[k - 1]!;
      }
      start[first] = from;
      end[first] = to;
      this.count = n + 1;
      return;
    }
    start[first] = Math.min(from, start[first]!);
    end[first] = Math.max(to, end[last - 1]!);
    const removed = last - first - 1;
    for (let k = first + 1; k + removed < n; k++) {
      start[k] = start[k + removed]!;
      end[k] = end[k + removed]!;
    }
    this.count = n - removed;
  }
}
