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
  map(iova: number, pa: number, len: number): MapResult;
  unmap(iova: number, len: number): UnmapResult;
  /** pa + offset of the leaf covering iova, or undefined when unmapped. */
  iovaToPhys(iova: number): number | undefined;
  /** The leaf covering iova. */
  leafAt(iova: number): Leaf | undefined;
  /** Leaves intersecting [from, to), in address order. */
  leaves(from?: number, to?: number): Iterable<Leaf>;
  /** The driver's iotlb_sync: releases deferred table frees and returns (and clears) the
   *  gathered invalidation ranges. */
  sync(): InvalidationRange[];
  /** The invalidation ranges gathered by unmaps since the last sync(), without taking them. */
  gathered(): InvalidationRange[];
  stats(): PageTableStats;
}
