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

import { FRAMES_PER_2M, SZ_4K } from '../model/size.ts';

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
  private readonly busy = new Map<number, Uint8Array>();
  private readonly busyCount = new Map<number, number>();
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
    return (this.busy.get(Math.floor(gfn / FRAMES_PER_2M))?.[gfn % FRAMES_PER_2M] ?? 0) !== 0;
  }

  /** The page is neither allocated nor reserved. */
  isFree(gfn: number): boolean {
    return gfn >= 0 && gfn < this.totalPages && !this.isBusy(gfn) && !this.isReserved(gfn);
  }

  /** First fit of a naturally aligned block of 2^order pages; its first gfn, or undefined. */
  alloc(order: number): number | undefined {
    if (order < 0 || order > MAX_PAGE_ORDER) return undefined;
    const size = 2 ** order;
    for (let gfn = 0; gfn + size <= this.totalPages; ) {
      const region = Math.floor(gfn / FRAMES_PER_2M);
      // Skip a full region at once.
      if (size <= FRAMES_PER_2M && (this.busyCount.get(region) ?? 0) === FRAMES_PER_2M) {
        gfn = (region + 1) * FRAMES_PER_2M;
        continue;
      }
      const blocked = this.firstUnavailable(gfn, size);
      if (blocked === undefined) {
        for (let i = 0; i < size; i++) this.mark(gfn + i, 1);
        return gfn;
      }
      // Next aligned block after the page that blocked this one.
      gfn = (Math.floor(blocked / size) + 1) * size;
    }
    return undefined;
  }

  free(gfn: number, order: number): void {
    const size = 2 ** order;
    for (let i = 0; i < size; i++) this.mark(gfn + i, 0);
  }

  /** Take one page that is free (a raw conversion keeps its page out of the allocator). */
  take(gfn: number): boolean {
    if (!this.isFree(gfn)) return false;
    this.mark(gfn, 1);
    return true;
  }

  release(gfn: number): void {
    this.mark(gfn, 0);
  }

  private firstUnavailable(gfn: number, size: number): number | undefined {
    for (const r of this.reserved) {
      // Blocks overlapping a reserved range are all unavailable: jump past the whole range.
      if (r.start < gfn + size && gfn < r.end) return r.end - 1;
    }
    for (let at = gfn; at < gfn + size; ) {
      const region = Math.floor(at / FRAMES_PER_2M);
      const regionEnd = Math.min(gfn + size, (region + 1) * FRAMES_PER_2M);
      if ((this.busyCount.get(region) ?? 0) === 0) {
        at = regionEnd;
        continue;
      }
      const map = this.busy.get(region);
      for (; at < regionEnd; at++) if ((map?.[at % FRAMES_PER_2M] ?? 0) !== 0) return at;
    }
    return undefined;
  }

  private mark(gfn: number, value: 0 | 1): void {
    const region = Math.floor(gfn / FRAMES_PER_2M);
    let map = this.busy.get(region);
    if (map === undefined) {
      if (value === 0) return;
      map = new Uint8Array(FRAMES_PER_2M);
      this.busy.set(region, map);
    }
    const i = gfn % FRAMES_PER_2M;
    if ((map[i] ?? 0) === value) return;
    map[i] = value;
    const count = (this.busyCount.get(region) ?? 0) + (value === 1 ? 1 : -1);
    if (count === 0) {
      this.busyCount.delete(region);
      this.busy.delete(region);
    } else {
      this.busyCount.set(region, count);
    }
  }
}

export class AtomicPool {
  private readonly used: Uint8Array;

  constructor(
    readonly base: number,
    readonly bytes: number,
  ) {
    this.used = new Uint8Array(Math.floor(bytes / SZ_4K));
  }

  contains(gpa: number): boolean {
    return gpa >= this.base && gpa < this.base + this.bytes;
  }

  /** First fit of `pages` pages; the GPA, or undefined when the pool is exhausted. */
  alloc(pages: number): number | undefined {
    let run = 0;
    for (let i = 0; i < this.used.length; i++) {
      run = this.used[i] === 0 ? run + 1 : 0;
      if (run === pages) {
        const first = i - pages + 1;
        this.used.fill(1, first, i + 1);
        return this.base + first * SZ_4K;
      }
    }
    return undefined;
  }

  free(gpa: number, pages: number): void {
    const first = Math.floor((gpa - this.base) / SZ_4K);
    this.used.fill(0, first, first + pages);
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
