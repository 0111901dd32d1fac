// Sparse per-2M-region state (RMP entries, guest page flags, host backing and frames, memory
// tokens): the state of each 2M region something wrote, by region index (address / 2M). Look-ups
// go through a one-entry cache (consecutive look-ups mostly stay in one 2M region), and the
// indices are kept in ascending order, for iteration in address order and for run queries that
// jump over the untouched regions between them.
//
// Copy-on-write (issue 15: boot cost independent of the pool size): the boot cache copies a
// booted template world per case (engine/graph-copy.ts), and a 1 TiB guest's 1G swiotlb pool is
// 512 regions in each of these maps. A copy of a map (COPY_SELF) therefore copies no region: it
// reads the template's regions until it writes one, and copies that one region then (writable()).
// So every code path that changes a region in place takes it from writable(), never from get().
// The map that was copied is frozen: its regions are the copies' too, so it refuses any change.

import { COPY_SELF, GraphCopy } from '../engine/graph-copy.ts';

export class RegionMap<T extends object> {
  /** This map's own regions; null: removed here, though `base` holds one. */
  private own = new Map<number, T | null>();
  /** The regions of the map this one is a copy of, read until written (copy-on-write). */
  private base: ReadonlyMap<number, T> | undefined = undefined;
  private sorted: number[] = [];
  /** Keys in `sorted` removed since (delete() leaves them, the next read of the index drops them). */
  private stale = 0;
  /** `sorted` is shared with the map this one was copied from (or with its copies): copy before changing it. */
  private sortedShared = false;
  /** Copied from: copies read its regions, so it must not change any more. */
  private frozen = false;
  private lastKey = -1;
  private lastValue: T | undefined;

  /** Regions held (grows with what is touched, not with memory). */
  get size(): number {
    return this.sorted.length - this.stale;
  }

  /** The region `key`, to read: it may be shared with the template this map was copied from. */
  get(key: number): T | undefined {
    if (key === this.lastKey) return this.lastValue;
    const mine = this.own.get(key);
    const value = mine === undefined ? this.base?.get(key) : (mine ?? undefined);
    if (value !== undefined) {
      this.lastKey = key;
      this.lastValue = value;
    }
    return value;
  }

  /** The region `key`, to change in place: this map's own (a shared one is copied first). */
  writable(key: number): T | undefined {
    this.assertMutable();
    const mine = this.own.get(key);
    if (mine !== undefined) return mine ?? undefined;
    const shared = this.base?.get(key);
    if (shared === undefined) return undefined;
    const copy = new GraphCopy().copy(shared);
    this.own.set(key, copy);
    this.lastKey = key;
    this.lastValue = copy;
    return copy;
  }

  /** Hold `value` for region `key`, which has none yet. */
  add(key: number, value: T): T {
    this.assertMutable();
    this.own.set(key, value);
    this.compact();
    this.ownSorted().splice(this.firstIndexAtOrAfter(key), 0, key);
    this.lastKey = key;
    this.lastValue = value;
    return value;
  }

  /**
   * Region `key` goes back to untouched (no state). O(1): the index drops it when next read, so
   * that removing the 512 regions of a 1G run costs per region, not per region times the index.
   */
  delete(key: number): void {
    this.assertMutable();
    if (this.get(key) === undefined) return;
    if (this.base?.has(key) === true) this.own.set(key, null);
    else this.own.delete(key);
    this.stale++;
    this.lastKey = -1;
    this.lastValue = undefined;
  }

  /** The first region index at or after `key` that is held, or undefined. */
  nextKey(key: number): number | undefined {
    this.compact();
    return this.sorted[this.firstIndexAtOrAfter(key)];
  }

  /** Region indices held, ascending. */
  keys(): readonly number[] {
    this.compact();
    return this.sorted;
  }

  /** The regions held, in ascending order, to read. */
  *values(): Generator<T> {
    for (const key of this.keys()) yield this.get(key)!;
  }

  /**
   * graph-copy.ts: the copy of this map shares its regions (and its index list) until it writes
   * them, so copying a booted world costs the same whatever number of regions its pools span.
   * This map is frozen from now on.
   */
  [COPY_SELF](): RegionMap<T> {
    this.compact();
    this.frozen = true;
    this.sortedShared = true;
    const copy = new RegionMap<T>();
    copy.base = this.flat();
    copy.sorted = this.sorted;
    copy.sortedShared = true;
    return copy;
  }

  /** Every region held, own or shared, as one map (a copy's own changes over its base). */
  private flat(): ReadonlyMap<number, T> {
    // Without a base, `own` holds no null (removal marks are only needed over a base).
    if (this.base === undefined) return this.own as Map<number, T>;
    const merged = new Map(this.base);
    for (const [key, value] of this.own) {
      if (value === null) merged.delete(key);
      else merged.set(key, value);
    }
    return merged;
  }

  /** Drop the removed keys from the index. */
  private compact(): void {
    if (this.stale === 0) return;
    this.sorted = this.sorted.filter((key) => this.get(key) !== undefined);
    this.sortedShared = false;
    this.stale = 0;
  }

  private ownSorted(): number[] {
    if (this.sortedShared) {
      this.sorted = this.sorted.slice();
      this.sortedShared = false;
    }
    return this.sorted;
  }

  private assertMutable(): void {
    if (this.frozen) throw new Error('RegionMap: a map that was copied (a boot-cache template) changed; its copies share its regions');
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
