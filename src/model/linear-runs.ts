// A map from integer indices to numbers stored as runs on which the value is linear: run [start,
// end) holds value + (i - start) * step at index i. For per-slot state that Linux writes a
// stretch at a time with one value or a value counting up or down (swiotlb: a mapping's slots get
// `list` 0, alloc_size counting down by IO_TLB_SIZE, orig_addr counting up by it; a free run's
// `list` counts down to its segment end), so a stretch costs a run, not a number per slot: a
// 1 TiB guest's 1G pool kept ~1.3 MiB of per-slot arrays per world for about a hundred live
// mappings, which are 413 runs. The same goes for memory tokens (a write's tokens count up), the
// guest's page flags and busy pages, the host's backing, pins and frames, the RMP's stretches of
// 2M entries (rmp.ts), and the oracles' per-frame indexes
// (step 0: one value over a stretch; step 1 or 4K: frames or GFNs that follow each other): a 1G
// pool shared at boot is one run of each. Indices no run covers read `undefined`: the owner gives
// them their default (a slot nobody wrote). Values are plain numbers, exact below 2^53 (addresses
// reach 2^52). Exported to user oracles by cocofuzz/api (API 5).
//
// The runs sit in one sorted array: a look-up is a binary search (or none, along a walk), and a
// write that does not just grow the last written run shifts the runs after it. That is cheap for
// the hundreds of runs a world holds (a pool with ~100 live mappings: ~400 runs over its seven
// fields), and it grows with them: a review measured 200k swiotlb finds and releases with ~5,000
// live mappings (27k runs) at 4.7x the per-slot arrays' time (~100 live: 1.3x); the host backing
// (host/backing.ts) with 20,000 scattered 4K pages shared at once took 333 ms to share, read and
// unshare them against 35 ms per 2M region (2,000 pages: 9.0 against 8.2 ms). A world that keeps
// thousands of scattered stretches would want the runs in blocks.

/** Numbers per run in `runs`: start, end, value at start, step. */
const WIDTH = 4;
const START = 0;
const END = 1;
const VALUE = 2;
const STEP = 3;

/** The runs of a map nothing was written to: empty, shared (a write allocates its own first). */
const NO_RUNS = new Float64Array(0);

export class LinearRuns {
  /**
   * The runs, ascending and disjoint, WIDTH numbers each; `count` of them are in use. Made on the
   * first write: a world holds ~20 of these maps and a case writes few of them, and a Float64Array
   * has a backing store of its own (allocated per map per case, 2% of a bench case). Room for 16
   * runs at first: with 4, a bench pass of 200 cases grew arrays 5,373 times, with 16 3,491 (most
   * of them first writes); 512 bytes a map.
   */
  private runs = NO_RUNS;
  private count = 0;
  /** The run the last look-up found: look-ups walk a stretch of indices, mostly inside one run or on into the next. */
  private hint = 0;
  /**
   * The run the last write made or grew, apart from `hint`: a copy reads its source and writes its
   * destination chunk by chunk, and with one hint for both every write searched and shifted the
   * runs after it (a 1 GiB copy with 10,000 other runs took 3.2 s, against 20-35 ms before runs).
   */
  private writeHint = 0;

  /** How many runs are stored (tests, and what a world weighs). */
  get size(): number {
    return this.count;
  }

  /** The value at index i, or undefined where no run covers it. */
  get(i: number): number | undefined {
    const k = this.runIndexAt(i);
    if (k < 0) return undefined;
    const at = k * WIDTH;
    return this.runs[at + VALUE]! + (i - this.runs[at + START]!) * this.runs[at + STEP]!;
  }

  /** How many indices the runs cover. */
  coveredCount(): number {
    let n = 0;
    for (let k = 0; k < this.count; k++) n += this.runs[k * WIDTH + END]! - this.runs[k * WIDTH + START]!;
    return n;
  }

  /** The start of the first run that starts after index i, or Infinity. */
  nextStart(i: number): number {
    const k = this.lastStartingAtOrBefore(i) + 1;
    return k < this.count ? this.runs[k * WIDTH + START]! : Infinity;
  }

  /**
   * The end of the stretch from index i over which the map stays on one line: the end of the run
   * holding i, else (i not covered) the start of the next run, or Infinity. With runIndexAt() for
   * the value, the way to walk a range stretch by stretch: `k = runIndexAt(at); stop =
   * Math.min(end, stretchEnd(at))`, the second look-up answered by the first one's hint.
   */
  stretchEnd(i: number): number {
    const k = this.runIndexAt(i);
    if (k >= 0) return this.runs[k * WIDTH + END]!;
    // A miss leaves the hint on the last run starting before i, when one does (runIndexAt()).
    const next = this.count === 0 || this.runs[START]! > i ? 0 : this.hint + 1;
    return next < this.count ? this.runs[next * WIDTH + START]! : Infinity;
  }

  /** Sets [from, to) to value, value + step, ...: one run, joined to a neighbour it continues. */
  set(from: number, to: number, value: number, step: number): void {
    this.replace(from, to, true, value, step);
  }

  /** The number of the run the last set() wrote or grew (it holds all of that set's range), for runStart() and the rest. */
  lastSetRun(): number {
    return this.writeHint;
  }

  /** Forgets [from, to): those indices read undefined again. */
  clear(from: number, to: number): void {
    this.replace(from, to, false, 0, 0);
  }

  /** Calls visit(start, end) for each run, ascending (sweeps and tests, not hot paths). */
  forEachRun(visit: (start: number, end: number) => void): void {
    for (let k = 0; k < this.count; k++) visit(this.runs[k * WIDTH + START]!, this.runs[k * WIDTH + END]!);
  }

  /** The number of the run holding index i (for runStart() and the rest), or -1 where none does. */
  runIndexAt(i: number): number {
    const runs = this.runs;
    const hint = this.hint;
    // The last run found, then the one after it: a walk up a stretch searches nothing.
    if (hint < this.count && runs[hint * WIDTH + START]! <= i) {
      if (i < runs[hint * WIDTH + END]!) return hint;
      const next = hint + 1;
      if (next < this.count && runs[next * WIDTH + START]! <= i && i < runs[next * WIDTH + END]!) return (this.hint = next);
    }
    const k = this.lastStartingAtOrBefore(i);
    if (k < 0) return -1;
    // Hit or miss, the hint is the last run starting at or before i (stretchEnd() reads it).
    this.hint = k;
    return i < runs[k * WIDTH + END]! ? k : -1;
  }
  runStart(k: number): number {
    return this.runs[k * WIDTH + START]!;
  }
  runEnd(k: number): number {
    return this.runs[k * WIDTH + END]!;
  }
  runValue(k: number): number {
    return this.runs[k * WIDTH + VALUE]!;
  }
  runStep(k: number): number {
    return this.runs[k * WIDTH + STEP]!;
  }

  /** The last run whose start is at or before i, or -1. */
  private lastStartingAtOrBefore(i: number): number {
    const runs = this.runs;
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (runs[mid * WIDTH + START]! <= i) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }

  /**
   * Replaces whatever covers [from, to) by one run (withRun) or by nothing: the runs overlapping
   * it are cut to what lies outside, the new run is joined to a neighbour it continues.
   */
  private replace(from: number, to: number, withRun: boolean, value: number, step: number): void {
    if (!(from < to)) return;
    if (withRun && (this.extendsHint(from, to, value, step) || this.holds(from, to, value, step))) return;
    // Runs [lo, hi) overlap [from, to).
    let lo = this.lastStartingAtOrBefore(from);
    if (lo < 0 || this.runs[lo * WIDTH + END]! <= from) lo++;
    let hi = lo;
    while (hi < this.count && this.runs[hi * WIDTH + START]! < to) hi++;
    // Nothing to forget: the runs and the hints stay as they are.
    if (!withRun && lo === hi) return;
    const runs = this.runs;
    const keepLeft = lo < hi && runs[lo * WIDTH + START]! < from;
    const keepRight = lo < hi && runs[(hi - 1) * WIDTH + END]! > to;
    // The right piece, read before anything moves: [to, end) of the last overlapping run.
    const rightAt = (hi - 1) * WIDTH;
    const rightEnd = keepRight ? runs[rightAt + END]! : 0;
    const rightValue = keepRight ? runs[rightAt + VALUE]! + (to - runs[rightAt + START]!) * runs[rightAt + STEP]! : 0;
    const rightStep = keepRight ? runs[rightAt + STEP]! : 0;
    // The left piece stays where it is (only its end changes): the new run and the right piece go after it.
    const firstNew = keepLeft ? lo + 1 : lo;
    this.resize(firstNew, hi - firstNew, (withRun ? 1 : 0) + (keepRight ? 1 : 0));
    if (keepLeft) this.runs[lo * WIDTH + END] = from;
    if (withRun) this.write(firstNew, from, to, value, step);
    if (keepRight) this.write(withRun ? firstNew + 1 : firstNew, to, rightEnd, rightValue, rightStep);
    this.hint = 0;
    this.writeHint = 0;
    if (withRun) {
      // Join with the run after, then with the one before (the order keeps `firstNew` valid).
      if (firstNew + 1 < this.count) this.join(firstNew);
      this.writeHint = firstNew > 0 && this.join(firstNew - 1) ? firstNew - 1 : firstNew;
    }
  }

  /**
   * Whether [from, to) just continues the line of the run the last write made, and the next run,
   * if it reaches into [from, to), goes on past it: then the last run grows to `to` and the next
   * loses its head, in place (joined if it continues the line), with no search and nothing moved:
   * a copy chunk by chunk over fresh or written memory, a free run renumbered slot by slot.
   */
  private extendsHint(from: number, to: number, value: number, step: number): boolean {
    const k = this.writeHint;
    if (k >= this.count) return false;
    const runs = this.runs;
    const at = k * WIDTH;
    if (runs[at + END] !== from || runs[at + STEP] !== step || runs[at + VALUE]! + (from - runs[at + START]!) * step !== value) return false;
    const next = at + WIDTH;
    if (k + 1 < this.count && runs[next + START]! < to) {
      if (runs[next + END]! <= to) return false;
      runs[next + VALUE] = runs[next + VALUE]! + (to - runs[next + START]!) * runs[next + STEP]!;
      runs[next + START] = to;
    }
    runs[at + END] = to;
    if (k + 1 < this.count && runs[next + START] === to) this.join(k);
    return true;
  }

  /**
   * Whether one run already holds [from, to) on this line: then a set changes nothing (a resync
   * writing back what is there, a page state set again), and that run is the one it wrote.
   */
  private holds(from: number, to: number, value: number, step: number): boolean {
    const k = this.runIndexAt(from);
    if (k < 0) return false;
    const at = k * WIDTH;
    const runs = this.runs;
    if (runs[at + END]! < to || runs[at + STEP] !== step || runs[at + VALUE]! + (from - runs[at + START]!) * step !== value) return false;
    this.writeHint = k;
    return true;
  }

  /** Replaces `removed` runs at k by `added` slots (their content written by the caller). */
  private resize(k: number, removed: number, added: number): void {
    const delta = added - removed;
    if (delta === 0) return;
    const needed = (this.count + delta) * WIDTH;
    if (needed > this.runs.length) {
      const grown = new Float64Array(Math.max(needed, 16 * WIDTH, this.runs.length * 2));
      grown.set(this.runs.subarray(0, this.count * WIDTH));
      this.runs = grown;
    }
    const runs = this.runs;
    const from = (k + removed) * WIDTH;
    const to = (k + added) * WIDTH;
    const end = this.count * WIDTH;
    // Most writes move a run or two (1.9 on average over the bench workload): a loop costs less
    // than the call into copyWithin(). Moving up, the numbers go last first.
    if (end - from > 64) runs.copyWithin(to, from, end);
    else if (to > from) for (let i = end - 1; i >= from; i--) runs[i + to - from] = runs[i]!;
    else for (let i = from; i < end; i++) runs[i + to - from] = runs[i]!;
    this.count += delta;
  }

  private write(k: number, start: number, end: number, value: number, step: number): void {
    const at = k * WIDTH;
    this.runs[at + START] = start;
    this.runs[at + END] = end;
    this.runs[at + VALUE] = value;
    this.runs[at + STEP] = step;
  }

  /** Joins run k and run k + 1 when they touch and k + 1 continues k's line; says whether it did. */
  private join(k: number): boolean {
    const runs = this.runs;
    const a = k * WIDTH;
    const b = a + WIDTH;
    if (runs[a + END] !== runs[b + START] || runs[a + STEP] !== runs[b + STEP]) return false;
    if (runs[a + VALUE]! + (runs[a + END]! - runs[a + START]!) * runs[a + STEP]! !== runs[b + VALUE]) return false;
    runs[a + END] = runs[b + END]!;
    this.resize(k + 1, 1, 0);
    return true;
  }
}
