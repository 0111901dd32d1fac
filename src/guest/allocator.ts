// The guest's page allocators, deterministic and sparse.
//
// PageAllocator: the buddy allocator's contract (naturally aligned blocks of 2^order pages, up to
// MAX_PAGE_ORDER) with a first-fit placement from the lowest address, so the DMA buffers of a
// case pack into the same few 2M regions, as a long-running kernel's do. Cost follows the pages
// in use, not the guest's size: busy pages are counted per 2M region and a free region is
// recognised without looking at its pages.
//
// AtomicPool: the gen_pool behind dma_alloc_from_pool() (kernel/dma/pool.c), page granular,
// first fit (gen_pool_first_fit).
//
// IovaAllocator: the guest IOMMU driver's IOVA space for a vIOMMU device (drivers/iommu/iova.c,
// size-aligned allocations as iommu_dma_alloc_iova() asks), never reusing a freed range.

import { LinearRuns } from '../model/linear-runs.ts';
import { SZ_4K } from '../model/size.ts';

/** include/linux/mmzone.h (x86): the largest buddy block, 4 MiB. */
export const MAX_PAGE_ORDER = 10;

/** get_order(): the smallest order whose block holds `bytes`. */
export function getOrder(bytes: number): number {
  let order = 0;
  while (SZ_4K * 2 ** order < bytes) order++;
  return order;
}

interface Range {
  start: number;
  end: number;
}

export class PageAllocator {
  /**
   * The pages handed out (or taken), as runs of 1 over page numbers: first fit packs a case's
   * buffers into a few stretches, so these are a few runs whatever the guest's size. A Uint8Array
   * per 2M region touched cost 512 bytes a region: 1.8 MB of a world whose cases reach across a
   * 1 TiB guest (bench scale, cases generated for 1T).
   */
  private readonly busy = new LinearRuns();
  private readonly reserved: Range[];

  /** `totalPages` pages from gfn 0; `reserved` gfn ranges are never handed out. */
  constructor(
    readonly totalPages: number,
    reserved: readonly Range[] = [],
  ) {
    this.reserved = reserved.map((r) => ({ ...r }));
  }

  reserve(range: Range): void {
    this.reserved.push({ ...range });
  }

  isReserved(gfn: number): boolean {
    for (const r of this.reserved) if (gfn >= r.start && gfn < r.end) return true;
    return false;
  }

  isBusy(gfn: number): boolean {
    return this.busy.get(gfn) !== undefined;
  }

  /** The page is neither allocated nor reserved. */
  isFree(gfn: number): boolean {
    return gfn >= 0 && gfn < this.totalPages && !this.isBusy(gfn) && !this.isReserved(gfn);
  }

  /**
   * First fit of a naturally aligned block of 2^order pages ending at or below page `limit` (a
   * zone's end: GFP_DMA, GFP_DMA32); its first gfn, or undefined.
   */
  alloc(order: number, limit = this.totalPages): number | undefined {
    if (order < 0 || order > MAX_PAGE_ORDER) return undefined;
    const size = 2 ** order;
    const end = Math.min(limit, this.totalPages);
    for (let gfn = 0; gfn + size <= end; ) {
      const blocked = this.firstUnavailable(gfn, size);
      if (blocked === undefined) {
        this.busy.set(gfn, gfn + size, 1, 0);
        return gfn;
      }
      // Every block that starts before the end of what blocked this one overlaps it: the next
      // aligned block after that.
      gfn = Math.ceil(blocked / size) * size;
    }
    return undefined;
  }

  free(gfn: number, order: number): void {
    this.busy.clear(gfn, gfn + 2 ** order);
  }

  /** Take one page that is free (a raw conversion keeps its page out of the allocator). */
  take(gfn: number): boolean {
    if (!this.isFree(gfn)) return false;
    this.busy.set(gfn, gfn + 1, 1, 0);
    return true;
  }

  release(gfn: number): void {
    this.busy.clear(gfn, gfn + 1);
  }

  /** take() of every page of [start, end), all free: one run. */
  takeRange(start: number, end: number): void {
    this.busy.set(start, end, 1, 0);
  }

  /** release() of every page of [start, end). */
  releaseRange(start: number, end: number): void {
    this.busy.clear(start, end);
  }

  /**
   * The end (at most `limit`) of the run of pages from `gfn` that are all free (`free`) or all
   * unavailable (allocated, reserved or beyond memory): isFree() run by run, jumping over
   * reserved ranges and stretches of pages handed out.
   */
  runEnd(gfn: number, limit: number, free: boolean): number {
    let at = gfn;
    while (at < limit) {
      if (at >= this.totalPages) return free ? at : limit;
      const reserved = this.reserved.find((r) => at >= r.start && at < r.end);
      if (reserved !== undefined) {
        if (free) return at;
        at = reserved.end;
        continue;
      }
      // Stop at the next reserved range or the end of memory: the loop decides there.
      let stop = Math.min(limit, this.totalPages);
      for (const r of this.reserved) if (r.start > at && r.start < stop) stop = r.start;
      if (this.isBusy(at) === free) return at;
      at = Math.min(stop, this.busy.stretchEnd(at));
    }
    return limit;
  }

  /** The end of the stretch of unavailable pages that blocks a block of `size` pages at `gfn`, or undefined: the block is free. */
  private firstUnavailable(gfn: number, size: number): number | undefined {
    for (const r of this.reserved) {
      // Blocks overlapping a reserved range are all unavailable: jump past the whole range.
      if (r.start < gfn + size && gfn < r.end) return r.end;
    }
    const busyAt = this.isBusy(gfn) ? gfn : this.busy.stretchEnd(gfn);
    return busyAt < gfn + size ? this.busy.stretchEnd(busyAt) : undefined;
  }
}

/**
 * The three atomic pools of kernel/dma/pool.c, named by the zone their pages come from: ZONE_DMA
 * below 16M (zone_dma_limit = DMA_BIT_MASK(24)), ZONE_DMA32 below 4G, and any memory.
 */
export type AtomicZone = 'dma' | 'dma32' | 'kernel';

/** The first byte above each zone (x86-64). */
export const ZONE_LIMIT: Readonly<Record<AtomicZone, number>> = { dma: 2 ** 24, dma32: 2 ** 32, kernel: Infinity };

interface PoolChunk {
  base: number;
  used: Uint8Array;
}

/**
 * One atomic pool: the gen_pool behind dma_alloc_from_pool(), page granular, with
 * gen_pool_first_fit_order_align (an allocation of n pages is aligned to roundup_pow_of_two(n)
 * pages inside its chunk), grown by atomic_pool_expand() one chunk at a time.
 */
export class AtomicPool {
  private readonly chunks: PoolChunk[] = [];

  constructor(readonly zone: AtomicZone) {}

  /** gen_pool_add_virt(): a new chunk of pages, already made shared by the caller. */
  addChunk(base: number, bytes: number): void {
    this.chunks.push({ base, used: new Uint8Array(Math.floor(bytes / SZ_4K)) });
  }

  /** gen_pool_size(): the bytes of every chunk. */
  get size(): number {
    let pages = 0;
    for (const chunk of this.chunks) pages += chunk.used.length;
    return pages * SZ_4K;
  }

  /** gen_pool_avail(): the free bytes. */
  get avail(): number {
    let free = 0;
    for (const chunk of this.chunks) for (const page of chunk.used) free += page === 0 ? 1 : 0;
    return free * SZ_4K;
  }

  /** The chunks as [base, bytes) ranges, in the order they were added. */
  get ranges(): readonly { base: number; bytes: number }[] {
    return this.chunks.map((c) => ({ base: c.base, bytes: c.used.length * SZ_4K }));
  }

  contains(gpa: number): boolean {
    return this.chunks.some((c) => gpa >= c.base && gpa < c.base + c.used.length * SZ_4K);
  }

  /** gen_pool_alloc() with first_fit_order_align; the GPA, or undefined when no chunk has room. */
  alloc(pages: number): number | undefined {
    let align = 1;
    while (align < pages) align *= 2;
    for (const chunk of this.chunks) {
      for (let first = 0; first + pages <= chunk.used.length; first += align) {
        if (chunk.used.subarray(first, first + pages).every((page) => page === 0)) {
          chunk.used.fill(1, first, first + pages);
          return chunk.base + first * SZ_4K;
        }
      }
    }
    return undefined;
  }

  free(gpa: number, pages: number): void {
    for (const chunk of this.chunks) {
      if (gpa < chunk.base || gpa >= chunk.base + chunk.used.length * SZ_4K) continue;
      const first = Math.floor((gpa - chunk.base) / SZ_4K);
      chunk.used.fill(0, first, first + pages);
      return;
    }
  }
}

/** Where vIOMMU IOVAs start (above the 32-bit hole, so they never look like GPAs of small guests). */
export const IOVA_BASE = 2 ** 40;

export class IovaAllocator {
  private next = IOVA_BASE;

  /** A range of `pages` pages aligned to roundup_pow_of_two(pages) pages. */
  alloc(pages: number): number {
    let align = 1;
    while (align < pages) align *= 2;
    const alignBytes = align * SZ_4K;
    const iova = Math.ceil(this.next / alignBytes) * alignBytes;
    this.next = iova + pages * SZ_4K;
    return iova;
  }
}
