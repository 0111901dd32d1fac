// Sparse per-2M-region state (RMP entries, guest page flags, memory tokens): the state of each 2M
// region something wrote, by region index (address / 2M), never removed. Look-ups go through a
// one-entry cache (consecutive look-ups mostly stay in one 2M region), and the indices are kept
// in ascending order, for iteration in address order and for run queries that jump over the
// untouched regions between them.

export class RegionMap<T> {
  private readonly map = new Map<number, T>();
  private readonly sorted: number[] = [];
  private lastKey = -1;
  private lastValue: T | undefined;

  /** Regions held (grows with what is touched, not with memory). */
  get size(): number {
    return this.map.size;
  }

  get(key: number): T | undefined {
    if (key === this.lastKey) return this.lastValue;
    const value = this.map.get(key);
    if (value !== undefined) {
      this.lastKey = key;
      this.lastValue = value;
    }
    return value;
  }

  /** Hold `value` for region `key`, which has none yet. */
  add(key: number, value: T): T {
    this.map.set(key, value);
    this.sorted.splice(this.firstIndexAtOrAfter(key), 0, key);
    this.lastKey = key;
    this.lastValue = value;
    return value;
  }

  /** The first region index at or after `key` that is held, or undefined. */
  nextKey(key: number): number | undefined {
    return this.sorted[this.firstIndexAtOrAfter(key)];
  }

  /** Region indices held, ascending. */
  keys(): readonly number[] {
    return this.sorted;
  }

  values(): Iterable<T> {
    return this.map.values();
  }

  private firstIndexAtOrAfter(key: number): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.sorted[mid] ?? 0) < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
