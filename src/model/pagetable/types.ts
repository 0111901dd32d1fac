// The public contract of the IO page table model (see index.ts).

export type PageTableFormatName = 'amdv1' | 'vtdss' | 'x86_64';

export interface PageTableOptions {
  readonly format: PageTableFormatName;
  /** Restrict leaf sizes: a Linux pgsize bitmap (bit n = 2^n allowed) or a list of byte sizes. */
  readonly pgsizes?: number | readonly number[];
  /** VA width; the format's default when absent. */
  readonly vaBits?: number;
}

export type MapError = 'EADDRINUSE' | 'EINVAL' | 'ENXIO' | 'ERANGE';

export interface MapResult {
  /** Bytes installed before the error (all of them on success); the caller rolls back. */
  readonly mapped: number;
  readonly error?: MapError;
}

export interface UnmapResult {
  /** Bytes of whole leaves removed; may exceed the request, never splits a leaf. */
  readonly unmapped: number;
  readonly error?: 'EINVAL';
}

export interface Leaf {
  /** First byte of the leaf (the whole contiguous entry for replicated amdv1 leaves). */
  readonly iova: number;
  readonly pa: number;
  readonly size: number;
}

export interface InvalidationRange {
  readonly iova: number;
  readonly len: number;
}

export interface PageTableStats {
  /** Leaves by size ("4K", "2M", "1G", "4M", "1T"...), a contiguous entry counted once. */
  readonly leavesBySize: Record<string, number>;
  /** Table pages reachable from the root, the root included. */
  readonly tables: number;
  /** Table pages detached from the tree and waiting for sync() (the gather's freelist). */
  readonly pendingFree: number;
  readonly topLevel: number;
}

export interface PageTable {
  readonly format: string;
  /** Allowed leaf sizes in bytes, ascending. */
  readonly pgsizes: readonly number[];
  /** iommu_map(): the greedy layout of the largest allowed leaves; `maxLeaf` caps their size
   *  (a split maps the old leaf's range again in leaves of that size). */
  map(iova: number, pa: number, len: number, maxLeaf?: number): MapResult;
  /** iommu_unmap(); `removed`, when given, gets the removed leaves as (iova, pa, len) runs as
   *  leafRuns() gives them (they tile [iova, iova + unmapped)). */
  unmap(iova: number, len: number, removed?: number[]): UnmapResult;
  /**
   * What unmap() of each whole leaf of `leafSize` tiling [iova, iova + len), one after the other,
   * does, in one walk: the same leaves removed, the same ranges gathered, and no table freed (a
   * one-leaf range never covers a whole table). The caller knows the leaves (a host zapping leaf
   * by leaf).
   */
  unmapLeaves(iova: number, len: number, leafSize: number, removed?: number[]): UnmapResult;
  /** pa + offset of the leaf covering iova, or undefined when unmapped. */
  iovaToPhys(iova: number): number | undefined;
  /** The leaf covering iova. */
  leafAt(iova: number): Leaf | undefined;
  /** Leaves intersecting [from, to), in address order. */
  leaves(from?: number, to?: number): Iterable<Leaf>;
  /** leafAt() into a caller-owned object (no allocation); false when unmapped. */
  leafInto(iova: number, out: { iova: number; pa: number; size: number }): boolean;
  /**
   * The end of the longest prefix of [iova, end) that is mapped and translates linearly to
   * pa + (addr - iova): iova itself when its first byte is unmapped or maps elsewhere.
   */
  linearEnd(iova: number, end: number, pa: number): number;
  /** The first address in [from, end) that a leaf covers, or end. */
  nextMapped(from: number, end: number): number;
  /**
   * The leaves intersecting [from, to) as maximal runs of adjacent leaves whose output is
   * contiguous too: fills `out` (cleared first) with (iova, pa, len) triples of whole leaves,
   * in address order, and returns the number of runs. No allocation once `out` has grown.
   */
  leafRuns(from: number, to: number, out: number[]): number;
  /** Bytes mapped under leaves of at least `atLeast` bytes (default: every leaf), from the leaf counts. */
  leafBytes(atLeast?: number): number;
  /** The driver's iotlb_sync: releases deferred table frees and returns (and clears) the
   *  gathered invalidation ranges. */
  sync(): InvalidationRange[];
  /** The ranges the last map() or unmapSynced() synced itself (a map that replaced empty tables
   *  with leaves syncs its own gather, as map_range() does): the caller drops them from the
   *  IOTLB. Usually empty. */
  takeMapInvalidations(): readonly InvalidationRange[];
  /** iommu_unmap(): unmap and sync a gather of its own at once (its ranges from
   *  takeMapInvalidations()); the driver's gather is left alone. */
  unmapSynced(iova: number, len: number, removed?: number[]): UnmapResult;
  /** The invalidation ranges gathered by unmaps since the last sync(), without taking them. */
  gathered(): InvalidationRange[];
  stats(): PageTableStats;
}
