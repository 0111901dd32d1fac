// The one page table algorithm, shared by every format (generic_pt's iommu_pt.h over
// pt_iter.h). Formats only declare geometry and leaf sizes (format.ts, formats/).
import { type PageTableFormat, checkVaBits, itemLg2, topLevelForVaBits } from './format.ts';
import { getFormat } from './formats/index.ts';
import { Gather } from './gather.ts';
import { resolvePageSizes } from './pgsizes.ts';
import { alignDown, formatSize, isAligned, offsetIn, pow2 } from './size.ts';
import { EMPTY, SUMMARY_LINEAR, SUMMARY_MIXED, SUMMARY_UNKNOWN, TABLE, TableStore } from './table.ts';
import type { InvalidationRange, Leaf, MapResult, PageTable, PageTableOptions, PageTableStats, UnmapResult } from './types.ts';

/** What map() invalidated itself when it replaced no table (almost every map). */
const NO_RANGES: readonly InvalidationRange[] = Object.freeze([]);

/**
 * Addresses are JS numbers, exact up to 2^53. Every format's OA is 52 bits, so the model
 * caps the VA at 2^52 as well: amdv1's 64-bit VA and a 57-bit VT-d/x86 VA keep their table
 * depth, but no address at or above 2^52 can be mapped.
 */
export const MODEL_MAX_ADDRESS_BITS = 52;

const EINVAL_MAP: MapResult = Object.freeze({ mapped: 0, error: 'EINVAL' });
const ERANGE_MAP: MapResult = Object.freeze({ mapped: 0, error: 'ERANGE' });
const EINVAL_UNMAP: UnmapResult = Object.freeze({ unmapped: 0, error: 'EINVAL' });
const NOTHING_UNMAPPED: UnmapResult = Object.freeze({ unmapped: 0 });

// Outcome of walking one table on unmap, as __unmap_range()'s return value.
const WALK_DONE = 0; // reached the end of the range in this table
const WALK_STOP = 1; // an empty item ended the walk (-EINVAL inside the kernel, not reported)
const WALK_EINVAL = 2; // the range starts inside a leaf

export function createPageTable(options: PageTableOptions): PageTable {
  return new IoPageTable(options);
}

/**
 * What a page table of one format, VA width and page-size restriction derives from them: the same
 * for every table of a campaign (each case builds the NPT and one S2 per device), so it is worked
 * out once and shared. Read-only once made.
 */
interface Geometry {
  fmt: PageTableFormat;
  items: number;
  itemSize: Float64Array;
  itemLg2: Uint8Array;
  levelOfLg2: Int8Array;
  vaBits: number;
  maxVa: number;
  maxOa: number;
  /** The top level a new table starts at. */
  topLevel: number;
  sizeLg2: Uint8Array;
  sizes: Float64Array;
  pgsizes: readonly number[];
  minSize: number;
}

const geometries = new Map<string, Geometry>();

function geometryOf(options: PageTableOptions): Geometry {
  const key = `${options.format}|${options.vaBits}|${JSON.stringify(options.pgsizes)}`;
  const known = geometries.get(key);
  if (known !== undefined) return known;
  const fmt = getFormat(options.format);
  const requestedVaBits = options.vaBits ?? fmt.vaBits.default;
  checkVaBits(fmt, requestedVaBits);
  const itemSize = new Float64Array(fmt.maxTopLevel + 1);
  const itemLg2s = new Uint8Array(fmt.maxTopLevel + 1);
  for (let level = 0; level <= fmt.maxTopLevel; level++) {
    itemLg2s[level] = itemLg2(fmt, level);
    itemSize[level] = pow2(itemLg2(fmt, level));
  }
  const levelOfLg2 = new Int8Array(64).fill(-1);
  fmt.leafLg2ByLevel.forEach((sizes, level) => {
    for (const lg2 of sizes) levelOfLg2[lg2] = level;
  });
  const vaBits = Math.min(requestedVaBits, MODEL_MAX_ADDRESS_BITS);
  const topLevel = fmt.dynamicTop ? (fmt.startingLevel ?? 0) : topLevelForVaBits(fmt, requestedVaBits);
  const lg2s = resolvePageSizes(fmt, topLevel, vaBits, options.pgsizes);
  const geometry: Geometry = {
    fmt,
    items: pow2(fmt.bitsPerLevel),
    itemSize,
    itemLg2: itemLg2s,
    levelOfLg2,
    vaBits,
    maxVa: pow2(vaBits),
    maxOa: pow2(Math.min(fmt.maxOaBits, MODEL_MAX_ADDRESS_BITS)),
    topLevel,
    sizeLg2: Uint8Array.from(lg2s),
    sizes: Float64Array.from(lg2s.map(pow2)),
    pgsizes: Object.freeze(lg2s.map(pow2)),
    minSize: pow2(lg2s[0] ?? fmt.granuleLg2),
  };
  geometries.set(key, geometry);
  return geometry;
}

class IoPageTable implements PageTable {
  readonly format: string;
  readonly pgsizes: readonly number[];

  private readonly fmt: PageTableFormat;
  private readonly items: number;
  /** Per level: item size and its lg2, precomputed (no Math.pow or shifts on addresses). */
  private readonly itemSize: Float64Array;
  private readonly itemLg2: Uint8Array;
  /** Allowed leaf sizes ascending, and their lg2. */
  private readonly sizes: Float64Array;
  private readonly sizeLg2: Uint8Array;
  /** The level holding a leaf of size 2^lg2 (pt_pgsz_lg2_to_level()). */
  private readonly levelOfLg2: Int8Array;
  private readonly minSize: number;
  private readonly vaBits: number;
  private readonly maxVa: number;
  private readonly maxOa: number;

  private readonly store: TableStore;
  private root: number;
  private topLevel: number;
  private topSpan: number;
  private liveTables = 1;
  private readonly leafCount = new Float64Array(64);
  private readonly gather = new Gather();
  /**
   * map_range()'s own iotlb_gather: a map that replaces an empty leftover table with a leaf
   * detaches the table into it and syncs it before returning (`if (!iommu_pages_list_empty(
   * &iotlb_gather.freelist)) iommu_iotlb_sync(...)`, iommu_pt.h), whatever the unmaps have
   * gathered meanwhile for the driver's next flush.
   */
  private readonly mapGather = new Gather();
  /** What the last map (or synced unmap) invalidated itself (takeMapInvalidations()). */
  private mapInvalidations: readonly InvalidationRange[] = NO_RANGES;
  /** Where the unmap in progress gathers: the driver's gather, or its own (unmapSynced()). */
  private unmapGather: Gather = this.gather;

  /** Bytes removed by the unmap walk in progress. */
  private walkUnmapped = 0;
  /** The caller's array for the removed leaves' runs during an unmap walk, else undefined. */
  private walkRemoved: number[] | undefined = undefined;
  /** Whether the unmap walk in progress frees the tables it empties (unmapLeaves() does not). */
  private walkFreesTables = true;

  constructor(options: PageTableOptions) {
    const geometry = geometryOf(options);
    this.fmt = geometry.fmt;
    this.format = geometry.fmt.name;
    this.items = geometry.items;
    this.itemSize = geometry.itemSize;
    this.itemLg2 = geometry.itemLg2;
    this.levelOfLg2 = geometry.levelOfLg2;
    this.vaBits = geometry.vaBits;
    this.maxVa = geometry.maxVa;
    this.maxOa = geometry.maxOa;
    this.topLevel = geometry.topLevel;
    this.topSpan = this.spanOf(this.topLevel);
    this.sizeLg2 = geometry.sizeLg2;
    this.sizes = geometry.sizes;
    this.pgsizes = geometry.pgsizes;
    this.minSize = geometry.minSize;

    this.store = new TableStore(this.items);
    this.root = this.store.alloc(this.topLevel);
  }

  // ---- map ------------------------------------------------------------------------------

  map(iova: number, pa: number, len: number, maxLeaf?: number): MapResult {
    try {
      return this.mapLeaves(iova, pa, len, maxLeaf);
    } finally {
      this.syncOwnGather();
    }
  }

  /**
   * iommu_unmap() (not the deferred iommu_unmap_fast()): unmaps into a gather of its own and syncs
   * it before returning, leaving the driver's gather alone; the ranges for the IOTLB come from
   * takeMapInvalidations(). What iommu_map() undoes a failed map with.
   */
  unmapSynced(iova: number, len: number, removed?: number[]): UnmapResult {
    this.unmapGather = this.mapGather;
    try {
      return this.unmapRange(iova, len, removed, 0);
    } finally {
      this.unmapGather = this.gather;
      this.syncOwnGather();
    }
  }

  /** The own gather's sync: its ranges leave the IOTLB (the caller invalidates them), its pages are freed now. */
  private syncOwnGather(): void {
    const gather = this.mapGather;
    if (gather.freelist.length === 0 && gather.empty) {
      this.mapInvalidations = NO_RANGES;
      return;
    }
    this.mapInvalidations = gather.takeRanges();
    for (const table of gather.freelist) this.store.release(table);
    gather.freelist.length = 0;
  }

  /**
   * The ranges the last map() synced itself because it replaced empty tables with leaves (the
   * IOTLB must drop them, as the driver's iotlb_sync does); empty for almost every map.
   */
  takeMapInvalidations(): readonly InvalidationRange[] {
    const ranges = this.mapInvalidations;
    this.mapInvalidations = NO_RANGES;
    return ranges;
  }

  private mapLeaves(iova: number, pa: number, len: number, maxLeaf?: number): MapResult {
    const min = this.minSize;
    // The core's iommu_map() rejects anything not aligned to the smallest page; a zero
    // length is -EINVAL since d6c65b0fd621 (it used to be a silent no-op).
    if (!isAddress(iova) || !isAddress(pa) || !isAddress(len) || len === 0) return EINVAL_MAP;
    if (!isAligned(iova, min) || !isAligned(pa, min) || !isAligned(len, min)) return EINVAL_MAP;
    // map_pages(): an OA the table cannot store is -ERANGE; so is a VA beyond the table
    // that increase_top() cannot reach.
    if (pa + len > this.maxOa || iova + len > this.maxVa) return ERANGE_MAP;
    while (iova + len > this.topSpan) if (!this.growTop()) return ERANGE_MAP;

    // The greedy layout of map_range() (2026), and of iommu_map()'s iommu_pgsize() split +
    // map_pages() before it: left to right, always the largest allowed size that va, oa and
    // the remaining length permit (and `maxLeaf`, for a split). Leaves go in one at a time; on
    // error the bytes done so far are reported and the caller (iommu_map()) unmaps them. Like
    // __map_range()'s loop over the items of one table, a leaf that lands in the table of the
    // previous one is placed there without a new descent from the top, so 512 4K leaves cost
    // one walk and 512 slot writes.
    const cap = maxLeaf ?? Infinity;
    let table = -1;
    let tableLevel = -1;
    let tableEnd = -1;
    let done = 0;
    while (done < len) {
      const va = iova + done;
      const oa = pa + done;
      const k = this.bestSizeIndex(va, oa, Math.min(len - done, cap));
      // pt_compute_best_pgsize() returned 0: unreachable after the alignment check above,
      // kept as the kernel keeps it.
      if (k < 0) return { mapped: done, error: 'ENXIO' };
      const lg2 = this.sizeLg2[k]!;
      const level = this.levelOfLg2[lg2]!;
      const itemSize = this.itemSize[level]!;
      if (level !== tableLevel || va >= tableEnd) {
        table = this.descend(va, level);
        if (table < 0) return { mapped: done, error: 'EADDRINUSE' };
        tableLevel = level;
        const span = itemSize * this.items;
        tableEnd = Math.floor(va / span) * span + span;
      }
      const slot = table * this.items + this.items - (tableEnd - va) / itemSize;
      const store = this.store;
      if (lg2 === this.itemLg2[level] && store.kind[slot] === EMPTY) {
        // The common leaf: one empty item (placeLeaf() without its loops). The greedy choice
        // stays this size up to the next va aligned to the next larger size (va is not: else the
        // larger size would have been chosen), and past it too where that size can never fit
        // (none is allowed, it is above the cap, or va and oa are never both aligned to it): the
        // items up to there take a run of them at once.
        const size = this.sizes[k]!;
        const larger = this.sizes[k + 1];
        const sameChoice = larger === undefined || larger > cap || offsetIn(oa - va, larger) !== 0;
        const leaves = Math.min((tableEnd - va) / size, Math.floor((len - done) / size));
        const last = slot + (sameChoice ? leaves : Math.min(leaves, (alignDown(va, larger) + larger - va) / size));
        const kinds = store.kind;
        const entries = store.entry;
        let at = slot;
        let out = oa;
        while (at < last && kinds[at] === EMPTY) {
          kinds[at] = lg2;
          entries[at] = out;
          at++;
          out += size;
        }
        store.used[table]! += at - slot;
        // A table filled from its first item to its last in this one run is linear by
        // construction (boot mapping a pool 4K by 4K): no scan is needed to know it.
        const tableSlot = table * this.items;
        store.linear[table] = slot === tableSlot && at === tableSlot + this.items ? SUMMARY_LINEAR : SUMMARY_UNKNOWN;
        this.leafCount[lg2]! += at - slot;
        done += (at - slot) * size;
        continue;
      }
      if (!this.placeLeaf(table, level, va, oa, lg2)) return { mapped: done, error: 'EADDRINUSE' };
      done += this.sizes[k]!;
    }
    return { mapped: done };
  }

  /**
   * pt_compute_best_pgsize(): the largest allowed size that va and oa are aligned to and that
   * fits in `rest`. Both conditions are monotone in the size (a power of two), so the scan
   * from the smallest size stops at the first failure.
   */
  private bestSizeIndex(va: number, oa: number, rest: number): number {
    const sizes = this.sizes;
    let best = -1;
    for (let k = 0; k < sizes.length; k++) {
      const size = sizes[k]!;
      if (size > rest || Math.floor(va / size) * size !== va || Math.floor(oa / size) * size !== oa) break;
      best = k;
    }
    return best;
  }

  /**
   * __map_range()'s descent to the table at `level` holding va, allocating missing tables; a
   * leaf where a table is needed is a collision (-1) and is never split. Tables allocated here
   * stay even if the leaf then fails, as in the kernel.
   */
  private descend(va: number, level: number): number {
    // check_map_range(): the top must reach the leaf's level, not just cover the range.
    while (level > this.topLevel) if (!this.growTop()) throw new Error(`internal: cannot grow to level ${level}`);
    // A 4K leaf in the table the last walk entered: no descent (the walk cache, findLeafSlot()).
    if (level === 0 && va >= this.walkBase && va < this.walkEnd) return this.walkTable;
    const store = this.store;
    const items = this.items;
    let table = this.root;
    for (let l = this.topLevel; l > level; l--) {
      const slot = table * items + this.indexAt(va, l);
      const kind = store.kind[slot];
      if (kind === TABLE) {
        table = store.entry[slot]!;
        if (l === 1) this.rememberWalk(table, va);
        continue;
      }
      if (kind !== EMPTY) return -1;
      const lower = store.alloc(l - 1);
      this.liveTables++;
      store.kind[slot] = TABLE;
      store.entry[slot] = lower;
      store.used[table]!++;
      store.linear[table] = SUMMARY_MIXED;
      table = lower;
      if (l === 1) this.rememberWalk(table, va);
    }
    return table;
  }

  /** Installs one leaf in `table`, or returns false on a collision (-EADDRINUSE) without installing. */
  private placeLeaf(table: number, level: number, va: number, oa: number, lg2: number): boolean {
    // __map_range_leaf() + clear_contig(): every item of the (possibly contiguous) leaf must
    // be empty, or a table whose whole subtree holds no OA. Existing leaves are never merged.
    const store = this.store;
    const kinds = store.kind;
    const entries = store.entry;
    const first = table * this.items + this.indexAt(va, level);
    const end = first + pow2(lg2 - this.itemLg2[level]!);
    for (let slot = first; slot < end; slot++) {
      const kind = kinds[slot];
      if (kind === EMPTY) continue;
      if (kind !== TABLE || !this.subtreeIsEmpty(entries[slot]!)) return false;
    }
    const itemSize = this.itemSize[level]!;
    store.linear[table] = SUMMARY_UNKNOWN;
    for (let slot = first; slot < end; slot++) {
      // The only "merge": an empty table turns into the leaf; its pages go with the map's own sync.
      if (kinds[slot] === TABLE) this.detachSubtree(entries[slot]!, va + (slot - first) * itemSize, itemSize);
      else store.used[table]!++;
      kinds[slot] = lg2;
      entries[slot] = oa;
    }
    this.leafCount[lg2]!++;
    return true;
  }

  /** No OA anywhere below (clear_contig()'s walk with check_mapped). */
  private subtreeIsEmpty(table: number): boolean {
    const store = this.store;
    if (store.used[table] === 0) return true;
    const base = table * this.items;
    for (let slot = base; slot < base + this.items; slot++) {
      const kind = store.kind[slot];
      if (kind === EMPTY) continue;
      if (kind !== TABLE || !this.subtreeIsEmpty(store.entry[slot]!)) return false;
    }
    return true;
  }

  /** Puts a table and every table below it on the freelist (__collect_tables()). */
  private detachSubtree(table: number, itemVa: number, itemSize: number): void {
    const store = this.store;
    this.forgetWalk();
    const stack = [table];
    for (let t = stack.pop(); t !== undefined; t = stack.pop()) {
      this.mapGather.freelist.push(t);
      this.liveTables--;
      if (store.used[t] === 0) continue;
      const base = t * this.items;
      for (let slot = base; slot < base + this.items; slot++) if (store.kind[slot] === TABLE) stack.push(store.entry[slot]!);
    }
    // gather_range_pages() for the replaced item, so its walk-cache entries are flushed.
    this.mapGather.addRange(itemVa, itemSize);
  }

  /**
   * increase_top(): a new top whose item 0 points to the old top. No flush is needed (walk
   * caches stay valid and the new VA is non-present). Fails past PT_MAX_TOP_LEVEL or once
   * the new level's item already covers the VA width.
   */
  private growTop(): boolean {
    const next = this.topLevel + 1;
    if (!this.fmt.dynamicTop || next > this.fmt.maxTopLevel || this.itemLg2[next]! >= this.vaBits) return false;
    const store = this.store;
    const top = store.alloc(next);
    store.kind[top * this.items] = TABLE;
    store.entry[top * this.items] = this.root;
    store.used[top] = 1;
    this.root = top;
    this.topLevel = next;
    this.topSpan = this.spanOf(next);
    this.liveTables++;
    return true;
  }

  // ---- unmap ----------------------------------------------------------------------------

  unmap(iova: number, len: number, removed?: number[]): UnmapResult {
    return this.unmapRange(iova, len, removed, 0);
  }

  unmapLeaves(iova: number, len: number, leafSize: number, removed?: number[]): UnmapResult {
    return this.unmapRange(iova, len, removed, leafSize);
  }

  /** `leafSize` 0: one unmap; else the leaves of that size one by one (unmapLeaves()). */
  private unmapRange(iova: number, len: number, removed: number[] | undefined, leafSize: number): UnmapResult {
    if (removed !== undefined) removed.length = 0;
    if (!isAddress(iova) || !isAddress(len)) return EINVAL_UNMAP;
    // iommu_unmap() refuses a range not aligned to the smallest page.
    if (!isAligned(iova, this.minSize) || !isAligned(len, this.minSize)) return EINVAL_UNMAP;
    // make_range() fails for an empty range or one beyond the table: nothing is unmapped.
    if (len === 0 || iova + len > Math.min(this.topSpan, this.maxVa)) return NOTHING_UNMAPPED;

    this.walkUnmapped = 0;
    this.walkRemoved = removed;
    this.walkFreesTables = leafSize === 0;
    const status = this.unmapWalk(this.root, 0, iova, iova + len);
    this.walkRemoved = undefined;
    const unmapped = this.walkUnmapped;
    // The 2026 unmap_range() gathers [iova, iova + unmapped): what really changed. Leaf by leaf,
    // the first leaf may start a range of its own and each next one joins it (Gather.addRange()
    // merges into the last range only): two adds gather the same.
    if (unmapped > 0 && leafSize > 0 && unmapped > leafSize) {
      this.unmapGather.addRange(iova, leafSize);
      this.unmapGather.addRange(iova + leafSize, unmapped - leafSize);
    } else if (unmapped > 0) {
      this.unmapGather.addRange(iova, unmapped);
    }
    return status === WALK_EINVAL ? { unmapped, error: 'EINVAL' } : { unmapped };
  }

  /**
   * __unmap_range() over one table spanning from `base`, for the range [va, end). A start
   * inside a leaf is -EINVAL; a start at a leaf's first byte removes the whole leaf even past
   * `end` ("cannot subdivide a mapping created by map_pages()"); an empty item ends the walk;
   * a lower table is freed only when the range fully covers it and its walk reached the end.
   */
  private unmapWalk(table: number, base: number, va: number, end: number): number {
    const store = this.store;
    const kinds = store.kind;
    const level = store.level[table]!;
    const itemSize = this.itemSize[level]!;
    const items = this.items;
    const tableSlot = table * items;
    let i = Math.floor((va - base) / itemSize);
    const endIndex = Math.min(items, Math.ceil((end - base) / itemSize));

    const firstKind = kinds[tableSlot + i]!;
    if (firstKind > TABLE && !isAligned(va, pow2(firstKind))) return WALK_EINVAL;

    while (i < endIndex) {
      const slot = tableSlot + i;
      const kind = kinds[slot]!;
      if (kind === EMPTY) return WALK_STOP;
      if (kind === TABLE) {
        const itemBase = base + i * itemSize;
        const lower = store.entry[slot]!;
        const status = this.unmapWalk(lower, itemBase, va > itemBase ? va : itemBase, end);
        if (status !== WALK_DONE) return status;
        if (this.walkFreesTables && va <= itemBase && itemBase + itemSize <= end) {
          // Fully covered and emptied: unlink it onto the freelist.
          kinds[slot] = EMPTY;
          this.forgetWalk();
          store.used[table]!--;
          store.linear[table] = SUMMARY_MIXED;
          this.unmapGather.freelist.push(lower);
          this.liveTables--;
        }
        i++;
        continue;
      }
      // A leaf at its first item (the start was checked; later leaves are reached aligned).
      const replicas = pow2(kind - this.itemLg2[level]!);
      if (this.walkRemoved !== undefined) appendRun(this.walkRemoved, base + i * itemSize, store.entry[slot]!, pow2(kind));
      if (replicas === 1) kinds[slot] = EMPTY;
      else kinds.fill(EMPTY, slot, slot + replicas);
      store.used[table]! -= replicas;
      store.linear[table] = SUMMARY_MIXED;
      this.leafCount[kind]!--;
      this.walkUnmapped += pow2(kind);
      i += replicas;
    }
    return WALK_DONE;
  }

  // ---- lookups --------------------------------------------------------------------------

  /** __iova_to_phys(); undefined where the kernel returns 0 for "no translation". */
  iovaToPhys(iova: number): number | undefined {
    const slot = this.findLeafSlot(iova);
    if (slot < 0) return undefined;
    const size = pow2(this.store.kind[slot]!);
    return this.store.entry[slot]! + offsetIn(iova, size);
  }

  leafAt(iova: number): Leaf | undefined {
    const slot = this.findLeafSlot(iova);
    if (slot < 0) return undefined;
    const size = pow2(this.store.kind[slot]!);
    return { iova: alignDown(iova, size), pa: this.store.entry[slot]!, size };
  }

  leafInto(iova: number, out: { iova: number; pa: number; size: number }): boolean {
    const slot = this.findLeafSlot(iova);
    if (slot < 0) return false;
    const size = pow2(this.store.kind[slot]!);
    out.iova = alignDown(iova, size);
    out.pa = this.store.entry[slot]!;
    out.size = size;
    return true;
  }

  linearEnd(iova: number, end: number, pa: number): number {
    const store = this.store;
    const items = this.items;
    let at = iova;
    // One descent per table: the leaves that follow in the same table are read in place.
    while (at < end) {
      const first = this.findLeafSlot(at);
      if (first < 0) return at;
      const table = Math.floor(first / items);
      const itemSize = this.itemSize[store.level[table]!]!;
      const firstBase = Math.floor(at / itemSize) * itemSize;
      const tableEnd = (table + 1) * items;
      if (this.isLinear(table)) {
        // One linear run of whole items: its first leaf decides for the whole table.
        if (store.entry[first]! + (at - firstBase) !== pa + (at - iova)) return at;
        const span = itemSize * items;
        at = Math.floor(at / span) * span + span;
        if (at >= end) return end;
        continue;
      }
      let slot = first;
      while (slot < tableEnd) {
        const kind = store.kind[slot]!;
        if (kind === EMPTY) return at;
        if (kind === TABLE) break;
        const size = pow2(kind);
        const leafStart = Math.floor(at / size) * size;
        if (store.entry[slot]! + (at - leafStart) !== pa + (at - iova)) return at;
        at = leafStart + size;
        if (at >= end) return end;
        slot = first + (at - firstBase) / itemSize;
        if (size !== itemSize) continue;
        // Leaves of one item each (4K leaves in a last-level table, the common case): each
        // following leaf of that size continues the run when its output is the next item's.
        let expected = pa + (at - iova);
        while (slot < tableEnd && store.kind[slot] === kind) {
          if (store.entry[slot] !== expected) return at;
          at += size;
          if (at >= end) return end;
          expected += size;
          slot++;
        }
      }
    }
    return end;
  }

  nextMapped(from: number, end: number): number {
    const limit = Math.min(end, this.topSpan, this.maxVa);
    const start = Math.max(from, 0);
    if (start >= limit) return end;
    const found = this.firstLeaf(this.root, 0, start, limit);
    return found < 0 ? end : Math.max(start, found);
  }

  /** The start of the first leaf intersecting [from, end) under one table spanning from `base`, or -1. */
  private firstLeaf(table: number, base: number, from: number, end: number): number {
    const store = this.store;
    const itemSize = this.itemSize[store.level[table]!]!;
    const tableSlot = table * this.items;
    for (let i = from > base ? Math.floor((from - base) / itemSize) : 0; i < this.items; i++) {
      const itemBase = base + i * itemSize;
      if (itemBase >= end) return -1;
      const kind = store.kind[tableSlot + i]!;
      if (kind === EMPTY) continue;
      if (kind !== TABLE) return Math.floor(itemBase / pow2(kind)) * pow2(kind);
      const found = this.firstLeaf(store.entry[tableSlot + i]!, itemBase, from, end);
      if (found >= 0) return found;
    }
    return -1;
  }

  leafRuns(from: number, to: number, out: number[]): number {
    out.length = 0;
    const end = Math.min(to, this.topSpan, this.maxVa);
    if (Math.max(from, 0) < end) this.collectRuns(this.root, 0, Math.max(from, 0), end, out);
    return out.length / 3;
  }

  /** leafRuns() over one table spanning from `base`: appends or extends (iova, pa, len) triples. */
  private collectRuns(table: number, base: number, from: number, end: number, out: number[]): void {
    const store = this.store;
    const items = this.items;
    const itemSize = this.itemSize[store.level[table]!]!;
    const tableSlot = table * items;
    let i = from > base ? Math.floor((from - base) / itemSize) : 0;
    if (this.isLinear(table)) {
      // The items intersecting [from, end) are one run of whole leaves.
      const last = Math.min(items, Math.ceil((end - base) / itemSize));
      if (i < last) appendRun(out, base + i * itemSize, store.entry[tableSlot + i]!, (last - i) * itemSize);
      return;
    }
    while (i < items) {
      const itemBase = base + i * itemSize;
      if (itemBase >= end) return;
      const slot = tableSlot + i;
      const kind = store.kind[slot]!;
      if (kind === EMPTY) {
        i++;
      } else if (kind === TABLE) {
        this.collectRuns(store.entry[slot]!, itemBase, from, end, out);
        i++;
      } else {
        // Possibly entered mid-way through a contiguous leaf when `from` is inside it.
        const size = pow2(kind);
        const leafStart = Math.floor(itemBase / size) * size;
        appendRun(out, leafStart, store.entry[slot]!, size);
        i = Math.floor((leafStart - base) / itemSize) + size / itemSize;
      }
    }
  }

  /** Whether `table` holds SUMMARY_LINEAR, computing its summary if a write reset it. */
  private isLinear(table: number): boolean {
    const store = this.store;
    let summary = store.linear[table]!;
    if (summary === SUMMARY_UNKNOWN) {
      summary = this.summarize(table);
      store.linear[table] = summary;
    }
    return summary === SUMMARY_LINEAR;
  }

  /** SUMMARY_LINEAR or SUMMARY_MIXED from the table's items (one scan, then cached). */
  private summarize(table: number): number {
    const store = this.store;
    const items = this.items;
    if (store.used[table] !== items) return SUMMARY_MIXED;
    const level = store.level[table]!;
    const lg2 = this.itemLg2[level]!;
    const itemSize = this.itemSize[level]!;
    const base = table * items;
    const pa = store.entry[base]!;
    for (let i = 0; i < items; i++) {
      if (store.kind[base + i] !== lg2 || store.entry[base + i] !== pa + i * itemSize) return SUMMARY_MIXED;
    }
    return SUMMARY_LINEAR;
  }

  /** The walk of __iova_to_phys(): the slot holding the leaf for iova, or -1. */
  private findLeafSlot(iova: number): number {
    if (!(iova >= 0 && iova < this.topSpan && iova < this.maxVa)) return -1;
    const store = this.store;
    const cached = iova >= this.walkBase && iova < this.walkEnd;
    let table = cached ? this.walkTable : this.root;
    for (let level = cached ? 0 : this.topLevel; level >= 0; level--) {
      const slot = table * this.items + this.indexAt(iova, level);
      const kind = store.kind[slot];
      if (kind === EMPTY) return -1;
      if (kind !== TABLE) return slot;
      table = store.entry[slot]!;
      if (level === 1) this.rememberWalk(table, iova);
    }
    return -1;
  }

  /**
   * The walk cache: the last level-0 table a walk entered, and the range it spans. Per-page
   * loops (a 2M range faulted in, PVALIDATEd or unmapped 4K by 4K) walk the same table again and
   * again; from the cache a lookup reads one item instead of descending from the top. The table
   * stays where it is until it is unlinked (unmapWalk(), detachSubtree()), which forgets it.
   */
  private walkTable = -1;
  private walkBase = 0;
  private walkEnd = 0;

  private rememberWalk(table: number, va: number): void {
    const span = this.itemSize[1]!;
    this.walkTable = table;
    this.walkBase = Math.floor(va / span) * span;
    this.walkEnd = this.walkBase + span;
  }

  private forgetWalk(): void {
    this.walkEnd = 0;
  }

  leaves(from = 0, to = this.maxVa): Iterable<Leaf> {
    const end = Math.min(to, this.topSpan, this.maxVa);
    const start = Math.max(from, 0);
    return { [Symbol.iterator]: () => new LeafIterator(this.store, this.itemSize, this.root, start, end) };
  }

  // ---- flush and accounting -------------------------------------------------------------

  gathered(): InvalidationRange[] {
    return this.gather.ranges();
  }

  sync(): InvalidationRange[] {
    // The driver's iotlb_sync: invalidate, then iommu_put_pages_list() on the freelist.
    const ranges = this.gather.takeRanges();
    for (const table of this.gather.freelist) this.store.release(table);
    this.gather.freelist.length = 0;
    return ranges;
  }

  leafBytes(atLeast = 0): number {
    let bytes = 0;
    // leafCount counts a leaf once whatever its replicas (contiguous entries), at its own size.
    for (let lg2 = 0; lg2 < this.leafCount.length; lg2++) {
      const count = this.leafCount[lg2]!;
      if (count > 0 && pow2(lg2) >= atLeast) bytes += count * pow2(lg2);
    }
    return bytes;
  }

  stats(): PageTableStats {
    const leavesBySize: Record<string, number> = {};
    this.leafCount.forEach((count, lg2) => {
      if (count > 0) leavesBySize[formatSize(pow2(lg2))] = count;
    });
    return { leavesBySize, tables: this.liveTables, pendingFree: this.gather.freelist.length, topLevel: this.topLevel };
  }

  // ---- geometry -------------------------------------------------------------------------

  /** Index of va's item in a table at `level`: floor(va / item) mod items, without shifts. */
  private indexAt(va: number, level: number): number {
    const q = Math.floor(va / this.itemSize[level]!);
    return q - Math.floor(q / this.items) * this.items;
  }

  private spanOf(level: number): number {
    return pow2(this.itemLg2[level]! + this.fmt.bitsPerLevel);
  }
}

/** Appends the run (iova, pa, len) to leafRuns()' triples, extending the last one when it continues it. */
function appendRun(out: number[], iova: number, pa: number, len: number): void {
  const n = out.length;
  if (n > 0 && out[n - 3]! + out[n - 1]! === iova && out[n - 2]! + out[n - 1]! === pa) out[n - 1]! += len;
  else out.push(iova, pa, len);
}

function isAddress(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

/**
 * Leaves intersecting [from, end) in address order: a depth-first walk with an explicit stack
 * of (table, base VA, next index), visiting only tables that exist. A hand-written iterator
 * rather than a generator: tests and oracles walk millions of leaves.
 */
class LeafIterator implements Iterator<Leaf> {
  private readonly tables: number[] = [];
  private readonly bases: number[] = [];
  private readonly next_: number[] = [];

  constructor(
    private readonly store: TableStore,
    private readonly itemSize: Float64Array,
    root: number,
    private readonly from: number,
    private readonly end: number,
  ) {
    if (from < end) {
      this.tables.push(root);
      this.bases.push(0);
      this.next_.push(offsetIn(Math.floor(from / itemSize[store.level[root]!]!), store.items));
    }
  }

  next(): IteratorResult<Leaf> {
    const { store, tables, bases, next_: next } = this;
    const items = store.items;
    while (tables.length > 0) {
      const depth = tables.length - 1;
      const table = tables[depth]!;
      const base = bases[depth]!;
      const level = store.level[table]!;
      const itemSize = this.itemSize[level]!;
      const i = next[depth]!;
      const itemBase = base + i * itemSize;
      if (i >= items || itemBase >= this.end) {
        tables.pop();
        bases.pop();
        next.pop();
        continue;
      }
      const slot = table * items + i;
      const kind = store.kind[slot]!;
      if (kind === EMPTY) {
        next[depth] = i + 1;
      } else if (kind === TABLE) {
        next[depth] = i + 1;
        tables.push(store.entry[slot]!);
        bases.push(itemBase);
        next.push(this.from > itemBase ? Math.floor((this.from - itemBase) / this.itemSize[level - 1]!) : 0);
      } else {
        // Possibly entered mid-way through a contiguous leaf when `from` is inside it.
        const size = pow2(kind);
        const leafStart = Math.floor(itemBase / size) * size;
        next[depth] = Math.floor((leafStart - base) / itemSize) + size / itemSize;
        return { done: false, value: { iova: leafStart, pa: store.entry[slot]!, size } };
      }
    }
    return { done: true, value: undefined };
  }
}
