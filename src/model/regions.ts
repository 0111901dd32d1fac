// Sparse per-2M-region state (the RMP's entries: rmp.ts; the guest's page flags, the host's
// backing and frames are runs now, linear-runs.ts): the state of each 2M region something wrote,
// by region index (address / 2M). Look-ups
// go through a two-entry cache (consecutive look-ups mostly stay in one 2M region, or alternate
// between two). RegionMap also keeps the indices and regions in ascending order, for iteration in
// address order and for run queries that walk the held regions and jump over the untouched ones
// between them; RegionStore is the same without that order.
//
// Copy-on-write (issue 15: boot cost independent of the pool size): the boot cache copies a
// booted template world per case (model/graph-copy.ts), and a 1 TiB guest's 1G swiotlb pool is
// 512 regions of the RMP. A copy of a map (COPY_SELF) therefore copies no region: it
// reads the template's regions until it writes one, and copies that one region then (writable()).
// So every code path that changes a region in place takes it from writable(), never from get().
// The map that was copied is frozen: its regions are the copies' too, so it refuses any change.

import { COPY_SELF, GraphCopy } from './graph-copy.ts';

/** Per-2M regions by index, unordered, copied copy-on-write. */
export class RegionStore<T extends object> {
  /**
   * Regions looked up or written here: this map's own, and regions of `base` read once (kept by
   * reference: writable() tells them from its own copies by identity); null: removed here.
   */
  private own = new Map<number, T | null>();
  /** The regions of the map this one is a copy of, read until written (copy-on-write). */
  private base: ReadonlyMap<number, T> | undefined = undefined;
  /** Copied from: copies read its regions, so it must not change any more. */
  private frozen = false;
  private lastKey = -1;
  private lastValue: T | undefined;
  /** `lastValue` is this map's own (writable() said so): per-page sweeps write one region 512 times. */
  private lastMine = false;
  /**
   * The entry before `last` (never the same key): a loop that reads two regions in turn (a page
   * and the frame the host allocates for it) hits one or the other.
   */
  private prevKey = -1;
  private prevValue: T | undefined;
  private prevMine = false;

  /** The region `key`, to read: it may be shared with the template this map was copied from. */
  get(key: number): T | undefined {
    if (key === this.lastKey) return this.lastValue;
    if (key === this.prevKey) {
      const value = this.prevValue;
      this.push(key, value, this.prevMine);
      return value;
    }
    // A region of the template is read from `base` itself: keeping it in `own` too cost a Map
    // insert per region per case, and a sweep of a 1 TiB guest's 1G pool reads 512 of them.
    let value = this.own.get(key);
    if (value === undefined && this.base !== undefined) value = this.base.get(key);
    // Kept in the cache found or not: a region nobody wrote is asked about again and again too
    // (a page-by-page read of unwritten memory's tokens). add() and writable() replace it.
    this.push(key, value ?? undefined, false);
    return value ?? undefined;
  }

  /** `key` becomes the cache's last entry; the last one before it, if another key, its previous. */
  private push(key: number, value: T | undefined, mine: boolean): void {
    if (key !== this.lastKey) {
      this.prevKey = this.lastKey;
      this.prevValue = this.lastValue;
      this.prevMine = this.lastMine;
    }
    this.lastKey = key;
    this.lastValue = value;
    this.lastMine = mine;
  }

  /** The region `key`, to change in place: this map's own (a shared one is copied first). */
  writable(key: number): T | undefined {
    this.assertMutable();
    if (key === this.lastKey && this.lastMine) return this.lastValue;
    const value = this.get(key);
    if (value === undefined) return undefined;
    if (this.base === undefined || this.base.get(key) !== value) {
      this.lastMine = true;
      return value;
    }
    const copy = new GraphCopy().copy(value);
    this.own.set(key, copy);
    this.remember(key, copy);
    this.copied(key, copy);
    return copy;
  }

  /** writable() replaced the shared region `key` with this map's own `copy`. */
  protected copied(_key: number, _copy: T): void {}

  /** Hold `value` for region `key`, which has none yet. */
  add(key: number, value: T): T {
    this.assertMutable();
    this.own.set(key, value);
    this.remember(key, value);
    return value;
  }

  /** The cache holds `value`, this map's own, for `key`. */
  private remember(key: number, value: T): void {
    this.push(key, value, true);
  }

  /** Region `key` goes back to untouched (no state); false when it held none. */
  delete(key: number): boolean {
    this.assertMutable();
    if (this.get(key) === undefined) return false;
    if (this.base?.has(key) === true) this.own.set(key, null);
    else this.own.delete(key);
    // get() above made `key` the last entry; the previous one is another key, still valid.
    this.lastKey = -1;
    this.lastValue = undefined;
    this.lastMine = false;
    return true;
  }

  /**
   * graph-copy.ts: the copy of this map shares its regions until it writes them, so copying a
   * booted world costs the same whatever number of regions its pools span. This map is frozen
   * from now on.
   */
  [COPY_SELF](): RegionStore<T> {
    return this.shareWith(new RegionStore<T>());
  }

  protected shareWith<M extends RegionStore<T>>(copy: M): M {
    this.frozen = true;
    copy.base = this.flat();
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

  private assertMutable(): void {
    if (this.frozen) throw new Error('RegionMap: a map that was copied (a boot-cache template) changed; its copies share its regions');
  }
}

/**
 * Per-2M regions by index, with the indices held in ascending order, and the regions beside them
 * in the same order: a walk over consecutive regions (the run queries: seek(), keyAt(), valueAt())
 * reads two arrays instead of hashing each index. A 1 TiB guest's 1G swiotlb pool is 512 held
 * regions that every run query over it crosses: 90 of the 128 hashed look-ups an op made at 1T
 * with every oracle on (bench workload, 2026-11-26).
 */
export class RegionMap<T extends object> extends RegionStore<T> {
  private sorted: number[] = [];
  /** The region of each index in `sorted`, this map's own or its base's, as get() reads it. */
  private ordered: T[] = [];
  /** `sorted` and `ordered` are shared with the (frozen) map this one was copied from: copy before changing them. */
  private orderShared = false;

  /** Regions held (grows with what is touched, not with memory). */
  get size(): number {
    return this.sorted.length;
  }

  override add(key: number, value: T): T {
    super.add(key, value);
    const at = this.seek(key);
    this.ownOrder();
    this.sorted.splice(at, 0, key);
    this.ordered.splice(at, 0, value);
    return value;
  }

  override delete(key: number): boolean {
    if (!super.delete(key)) return false;
    const at = this.seek(key);
    this.ownOrder();
    this.sorted.splice(at, 1);
    this.ordered.splice(at, 1);
    return true;
  }

  protected override copied(key: number, copy: T): void {
    this.ownOrder();
    this.ordered[this.seek(key)] = copy;
  }

  /**
   * The position, in ascending order, of the first held region at or after `key` (the count of
   * held regions below it). A walk goes on with keyAt(position) and valueAt(position), and
   * position + 1 for the next held region, while it changes nothing.
   */
  seek(key: number): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.sorted[mid] ?? 0) < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The index of the held region at `position` (seek()), or undefined past the last. */
  keyAt(position: number): number | undefined {
    return this.sorted[position];
  }

  /** The region at `position` (seek()), to read, as get(keyAt(position)) returns it. */
  valueAt(position: number): T | undefined {
    return this.ordered[position];
  }

  /** Region indices held, ascending. */
  keys(): readonly number[] {
    return this.sorted;
  }

  /** The regions held, in ascending order, to read. */
  values(): readonly T[] {
    return this.ordered;
  }

  override [COPY_SELF](): RegionMap<T> {
    // This map is frozen from now on, so only the copy must copy `sorted` and `ordered` before changing them.
    const copy = this.shareWith(new RegionMap<T>());
    copy.sorted = this.sorted;
    copy.ordered = this.ordered;
    copy.orderShared = true;
    return copy;
  }

  private ownOrder(): void {
    if (this.orderShared) {
      this.sorted = this.sorted.slice();
      this.ordered = this.ordered.slice();
      this.orderShared = false;
    }
  }
}
