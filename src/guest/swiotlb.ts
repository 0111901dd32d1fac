// The Linux swiotlb slot allocator (kernel/dma/swiotlb.c) as a pure data structure: the bounce
// buffer pool a confidential guest shares with the host and uses for every streaming DMA (and, for
// restricted / for_alloc pools, for coherent allocations).
//
// Modelled on the code after Will Deacon's 2024 alignment series (lore
// 20240308152829.25754-1-will@kernel.org), which includes the CVE-2024-35814 fix "swiotlb: Fix
// double-allocation of slots due to broken alignment handling", "swiotlb: Honour
// dma_alloc_coherent() alignment in swiotlb_alloc()", "swiotlb: Reinstate page-alignment for
// mappings >= PAGE_SIZE", and Petr Tesarik's pre-padding (pad_slots) for alloc_align_mask. The
// per-slot and per-area state is Linux's own (`list`, `orig_addr`, `alloc_size`, `pad_slots`;
// `index`, `used`); the search, the free-run bookkeeping and the release merge follow
// swiotlb_search_pool_area(), swiotlb_find_slots() and swiotlb_release_slots() statement by
// statement, so that the model allocates exactly the slots the kernel would.
//
// Addresses are numbers of bytes up to 2^52: JavaScript's bitwise operators keep 32 bits, so
// addresses are only ever added, divided or reduced with %; bitwise operators touch slot indices
// and the 32-bit masks Linux itself declares `unsigned int` (min_align_mask, alloc_align_mask),
// applied to an address's low 32 bits (`low32`), which is all such a mask can see.
//
// What is not Linux (each marked where it happens): the bookkeeping that lets the model refuse an
// invalid release and list live mappings (`kind`, `mapSize`, `headOffset`), the slot chooser a
// guest policy may put in place of the search (checked before the slots are taken), and
// allocChunk() (the proposal of a 2M-aligned pool handing out whole 2M blocks, which the real
// swiotlb cannot do).

import { hex } from '../model/size.ts';
import { CHANGE_WIDTH, SwiotlbSlots } from './swiotlb-slots.ts';

/** A slot is 2 KiB (include/linux/swiotlb.h). */
export const IO_TLB_SHIFT = 11;
export const IO_TLB_SIZE = 1 << IO_TLB_SHIFT;
/** Most contiguous slots one mapping can use: the free-run bookkeeping never crosses these. */
export const IO_TLB_SEGSIZE = 128;
/** The default pool size (64 MiB) and the lower clamp of the CoCo sizing. */
export const IO_TLB_DEFAULT_SIZE = 64 * 1024 * 1024;
/** The smallest pool swiotlb_init_remap() settles for when memblock cannot give more (1 MiB). */
export const IO_TLB_MIN_SLABS = (1024 * 1024) / IO_TLB_SIZE;
/** x86 PAGE_SIZE, the alignment Linux gives a streaming mapping of a page or more. */
export const PAGE_SIZE = 4096;
/** The largest mapping of one swiotlb_tbl_map_single() or swiotlb_alloc(): 128 slots, 256 KiB. */
export const IO_TLB_MAX_BYTES = IO_TLB_SIZE * IO_TLB_SEGSIZE;

const SZ_1G = 1024 * 1024 * 1024;
const TWO_32 = 2 ** 32;
/** Linux INVALID_PHYS_ADDR (~0): orig_addr of a free slot, a padding slot or a swiotlb_alloc(). */
const INVALID_PHYS_ADDR = -1;

/** Live allocation kinds, stored on the mapping's head slot (the slot tlbAddr points into). */
const KIND_NONE = 0;
const KIND_MAP = 1;
const KIND_COHERENT = 2;
const KIND_CHUNK = 3;
const KIND_NAMES = ['none', 'map', 'coherent', 'chunk'] as const;

export type SwiotlbKind = 'map' | 'coherent' | 'chunk';

/** Device DMA attributes that steer the slot search (struct device and the caller's mask). */
export interface SwiotlbAttrs {
  /** dma_get_min_align_mask(dev): low address bits the bounce buffer must share with the original (NVMe: 0xfff). */
  minAlignMask?: number;
  /** The caller's alloc_align_mask (iommu-dma passes the IOVA granule - 1): the first allocated slot is aligned to it. */
  allocAlignMask?: number;
  /**
   * dma_get_seg_boundary(dev), a power of two minus one. Undefined is ULONG_MAX (a device without
   * dma_parms); PCI devices get 0xffffffff from pci_device_add().
   */
  segmentBoundaryMask?: number;
  /** raw_smp_processor_id(): picks the first area searched (cpu & (nareas - 1)). */
  cpu?: number;
}

/** Attributes of a coherent allocation (swiotlb_alloc() through dma_direct_alloc()). */
export interface SwiotlbCoherentAttrs {
  /**
   * Extra start alignment in bytes (a power of two, at least PAGE_SIZE), OR-ed into the alignment
   * swiotlb_alloc() derives from get_order(size): how a policy asks for a 2M-aligned start, as
   * Vishal Annapurve's swiotlb_adjust_alignment(SZ_2M) proposal would.
   */
  alignBytes?: number;
  minAlignMask?: number;
  segmentBoundaryMask?: number;
  cpu?: number;
}

/** A live allocation as the oracles see it. */
export interface SwiotlbMapping {
  kind: SwiotlbKind;
  /** The address handed to the caller (the DMA address, since phys_to_dma_unencrypted() is the identity here). */
  tlbAddr: number;
  /** First allocated slot, padding slots included. */
  slotIndex: number;
  /** Allocated slots, padding included: what area->used is charged and what release gives back. */
  nslots: number;
  /** Slots before the one tlbAddr points into (pad_slots, from alloc_align_mask). */
  padSlots: number;
  /** The size the caller asked for: mapping_size for a map, the page-aligned size for coherent/chunk. */
  allocSize: number;
  /** The original buffer (orig_addr); undefined for coherent and chunk allocations, which have none. */
  origAddr: number | undefined;
  /** Area of the first allocated slot. */
  area: number;
}

export type SwiotlbFailure = {
  ok: false;
  /** ENOMEM: no suitable free slots (swiotlb "buffer is full"); EINVAL: a request Linux callers never make. */
  error: 'ENOMEM' | 'EINVAL';
  reason: string;
};
export type SwiotlbResult = ({ ok: true } & SwiotlbMapping) | SwiotlbFailure;

export interface SwiotlbGeometry {
  nslabs: number;
  nareas: number;
  areaNslabs: number;
  /** nslabs * IO_TLB_SIZE: the bytes the pool really covers. */
  bytes: number;
}

export interface SwiotlbPoolOptions {
  /** Start of the pool (guest physical address). Linux allocates it with PAGE_SIZE alignment only (swiotlb_memblock_alloc()). */
  base: number;
  /** Requested size in bytes, rounded as Linux does (see swiotlbGeometry). */
  bytes: number;
  /** Possible CPUs: one area each, rounded up to a power of two (swiotlb_adjust_nareas()). Default 1. */
  cpus?: number;
  /**
   * A restricted DMA pool (rmem_swiotlb_device_init()): one area, nslabs = bytes >> IO_TLB_SHIFT
   * with no rounding, and for_alloc set. Default false: the default (boot) pool.
   */
  restricted?: boolean;
  /**
   * io_tlb_mem.for_alloc: dma_direct_alloc() serves coherent allocations from this pool
   * (is_swiotlb_for_alloc()). Default: true for restricted pools, false for the default pool; true
   * on the default pool is Alexey's experiment and Vishal's proposal of serving dma_alloc_* from swiotlb.
   */
  forAlloc?: boolean;
}

/** nr_slots(): slots covering `bytes`. */
const nrSlots = (bytes: number): number => Math.ceil(bytes / IO_TLB_SIZE);
/** io_tlb_offset(): position inside the IO_TLB_SEGSIZE segment (also 127 for index -1, as in C's unsigned wrap). */
const ioTlbOffset = (index: number): number => index & (IO_TLB_SEGSIZE - 1);
const isPowerOfTwo = (n: number): boolean => Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
const roundUpPowerOfTwo = (n: number): number => (n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n)));
/** The low 32 bits of an address, exactly (addresses are integers below 2^53). */
const low32 = (addr: number): number => addr % TWO_32;
/** addr & mask for a 32-bit mask (Linux: phys_addr_t & unsigned int), without truncating addr through ToInt32 first. */
const and32 = (addr: number, mask: number): number => (low32(addr) & mask) >>> 0;
/** get_order(): the buddy order (in pages) of an allocation of `size` bytes. */
const getOrder = (size: number): number => Math.max(0, Math.ceil(Math.log2(Math.ceil(size / PAGE_SIZE))));

function checkInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`swiotlb: ${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
}

/** SIZE_MAX on x86-64: what a size_t subtraction below zero wraps around to. */
const SIZE_T_WRAP = 2 ** 64;

/**
 * swiotlb_max_mapping_size(): 256 KiB minus min_align_mask rounded up to a slot, because the
 * search may have to skip slots (and pad inside the first) to preserve the masked low bits. The
 * kernel computes it in size_t, so a min_align_mask above 256K - 2K wraps around to nearly
 * SIZE_MAX (no limit at all) rather than going negative; the model keeps that (to the precision
 * of a double).
 */
export function swiotlbMaxMappingSize(minAlignMask = 0): number {
  checkInteger('minAlignMask', minAlignMask, 0, TWO_32 - 1);
  const minAlign = minAlignMask ? Math.ceil(minAlignMask / IO_TLB_SIZE) * IO_TLB_SIZE : 0;
  const max = IO_TLB_MAX_BYTES - minAlign;
  return max >= 0 ? max : SIZE_T_WRAP + max;
}

/**
 * The CoCo default size (sev_setup_arch() / mem_encrypt_setup_arch(), arch/x86/mm): 6% of guest
 * memory clamped to [64 MiB, 1 GiB], before swiotlbGeometry's rounding.
 */
export function swiotlbCocoSize(totalMemBytes: number): number {
  checkInteger('totalMemBytes', totalMemBytes, 0, Number.MAX_SAFE_INTEGER);
  const size = Math.floor((totalMemBytes * 6) / 100);
  return Math.min(Math.max(size, IO_TLB_DEFAULT_SIZE), SZ_1G);
}

/**
 * Pool geometry as Linux computes it.
 * Default pool: swiotlb_adjust_size() rounds to whole slots and to IO_TLB_SEGSIZE, then
 * swiotlb_adjust_nareas(num_possible_cpus()) rounds the areas up to a power of two and
 * round_up_default_nslabs() grows nslabs to at least IO_TLB_SEGSIZE per area and to a power of two
 * (so a 96 MiB request becomes 128 MiB); limit_nareas() then changes nothing.
 * Restricted pool (rmem_swiotlb_device_init()): one area, nslabs = size >> IO_TLB_SHIFT, no rounding:
 * its last segment may be shorter than IO_TLB_SEGSIZE.
 */
export function swiotlbGeometry(options: { bytes: number; cpus?: number; restricted?: boolean }): SwiotlbGeometry {
  const { bytes, cpus = 1, restricted = false } = options;
  checkInteger('bytes', bytes, 1, 2 ** 52);
  checkInteger('cpus', cpus, 1, 1 << 20);
  if (restricted) {
    const nslabs = Math.floor(bytes / IO_TLB_SIZE);
    if (nslabs === 0) throw new RangeError(`swiotlb: a restricted pool of ${bytes} bytes holds no slot`);
    return { nslabs, nareas: 1, areaNslabs: nslabs, bytes: nslabs * IO_TLB_SIZE };
  }
  let nslabs = Math.ceil(nrSlots(bytes) / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE;
  const nareas = roundUpPowerOfTwo(cpus);
  if (nslabs < IO_TLB_SEGSIZE * nareas) nslabs = IO_TLB_SEGSIZE * nareas;
  nslabs = roundUpPowerOfTwo(nslabs);
  return { nslabs, nareas, areaNslabs: nslabs / nareas, bytes: nslabs * IO_TLB_SIZE };
}

/** Read-only view of one slot, for oracles and tests. */
export interface SwiotlbSlotView {
  list: number;
  origAddr: number | undefined;
  allocSize: number;
  padSlots: number;
}

/** Read-only view of one area. */
export interface SwiotlbAreaView {
  index: number;
  used: number;
  firstSlot: number;
  nslabs: number;
}

/**
 * One slot search as swiotlb_find_slots() receives it: what a guest policy's slot chooser sees
 * (policies/types.ts, `swiotlbSlots`) and may hand back to the kernel's search, changed.
 */
export interface SwiotlbSlotSearch {
  /** swiotlb_tbl_map_single() (a streaming mapping) or swiotlb_alloc() (a coherent buffer). */
  kind: 'map' | 'coherent';
  /** The original buffer; 0 for a coherent allocation (swiotlb_alloc() passes none). */
  origAddr: number;
  /** Bytes to allocate, padding included (the alloc_size swiotlb_find_slots() receives). */
  allocSize: number;
  /** Slots the allocation takes: nr_slots(allocSize). */
  nslots: number;
  /** dma_get_min_align_mask(dev). */
  minAlignMask: number;
  /** The caller's alloc_align_mask. */
  allocAlignMask: number;
  /**
   * The alignment every candidate slot address must have, as swiotlb_search_pool_area() derives
   * it: the caller's alloc_align_mask, page alignment for an allocation of a page or more when
   * nothing else aligns it ("swiotlb: Reinstate page-alignment for mappings >= PAGE_SIZE"), and at
   * least a slot. A chooser may pass a different one to `kernelSearch`.
   */
  slotAlignMask: number;
  /** dma_get_seg_boundary(dev); undefined for ULONG_MAX. */
  segmentBoundaryMask: number | undefined;
  /** raw_smp_processor_id(): the area searched first. */
  cpu: number;
}

/** What a slot chooser may read of the pool: its geometry, the free runs, the areas' cursors. */
export interface SwiotlbSlotsView {
  readonly start: number;
  readonly nslabs: number;
  readonly nareas: number;
  readonly areaNslabs: number;
  /** slots[i].list: free slots from `slot` to the end of its free run (0 when in use); a slot outside [0, nslabs) throws. */
  freeRun(slot: number): number;
  /** io_tlb_area.used and .index of `area`. */
  areaUsed(area: number): number;
  areaIndex(area: number): number;
  /** swiotlb_find_slots() without taking the slots: the first slot it would give, or -1. */
  kernelSearch(search: SwiotlbSlotSearch): number;
}

/**
 * Chooses the first slot of an allocation (padding included) in place of the kernel's search; -1
 * for "no slots" (ENOMEM). Its answer is checked before the slots are taken.
 */
export type SwiotlbSlotChooser = (search: SwiotlbSlotSearch, pool: SwiotlbSlotsView) => number;

/** A chooser's answer the pool cannot honour: the slots are outside the pool or in use. */
export class SwiotlbChoiceError extends Error {
  constructor(
    readonly slot: number,
    message: string,
  ) {
    super(message);
  }
}

/** The search constraints derived from a SwiotlbSlotSearch and the pool. */
interface SearchBounds {
  /** phys_to_dma_unencrypted(pool->start) & boundary_mask. */
  tblDmaAddr: number;
  /** get_max_slots(boundary_mask); Infinity for ULONG_MAX. */
  maxSlots: number;
}

/**
 * swiotlb_search_pool_area()'s candidate alignment: the caller's alloc_align_mask, page alignment
 * for allocations of a page or more when there is no other alignment requirement, at least a slot.
 */
function slotAlignMask(allocSize: number, minAlignMask: number, allocAlignMask: number): number {
  let mask = allocAlignMask >>> 0;
  // "Historically, swiotlb allocations >= PAGE_SIZE were guaranteed to be page-aligned in the
  // absence of any other alignment requirements": only then (Reinstate page-alignment for
  // mappings >= PAGE_SIZE). With a min_align_mask or an alloc_align_mask, no page alignment.
  if (!mask && !minAlignMask && allocSize >= PAGE_SIZE) mask = PAGE_SIZE - 1;
  return (mask | (IO_TLB_SIZE - 1)) >>> 0;
}

export class SwiotlbPool implements SwiotlbSlotsView {
  readonly start: number;
  readonly end: number;
  readonly nslabs: number;
  readonly nareas: number;
  readonly areaNslabs: number;
  readonly restricted: boolean;
  readonly forAlloc: boolean;

  // struct io_tlb_slot (list, orig_addr, alloc_size, pad_slots) and, model-only, on the head slot
  // of a live allocation: its kind, the caller's size, and tlbAddr's offset inside the head slot
  // (Linux keeps none of this: it trusts the caller's tlb_addr). Chunks allocated on first write.
  private readonly slots: SwiotlbSlots;
  // struct io_tlb_area.
  private readonly areaCursor: Uint32Array;
  private readonly areaUsedCount: Uint32Array;
  private live = 0;
  private overreads = 0;
  /** liveMappings() as last listed, and the slots' generation then (oracles list them per step). */
  private listed: readonly SwiotlbMapping[] | undefined = undefined;
  private listedAt = -1;
  /** changesSince() since `listedAt`, for liveMappings() (reused). */
  private readonly changes: number[] = [];

  constructor(options: SwiotlbPoolOptions) {
    const { base, bytes, cpus = 1, restricted = false } = options;
    checkInteger('base', base, 0, 2 ** 52);
    // swiotlb_memblock_alloc() and reserved-memory regions give page-aligned pools; swiotlb_alloc()'s
    // page-alignment guarantee and set_memory_decrypted() both depend on it.
    if (base % PAGE_SIZE !== 0) throw new RangeError(`swiotlb: pool base ${hex(base)} is not page-aligned`);
    const geometry = swiotlbGeometry({ bytes, cpus, restricted });
    if (base + geometry.bytes > 2 ** 52) throw new RangeError(`swiotlb: pool at ${hex(base)} of ${geometry.bytes} bytes ends past 2^52`);
    this.start = base;
    this.end = base + geometry.bytes;
    this.nslabs = geometry.nslabs;
    this.nareas = geometry.nareas;
    this.areaNslabs = geometry.areaNslabs;
    this.restricted = restricted;
    this.forAlloc = options.forAlloc ?? restricted;

    // swiotlb_init_io_tlb_pool(): every slot free, each segment one free run (clipped at the end
    // of a restricted pool whose size is not a multiple of the segment): what a slot no run covers
    // holds, so nothing is initialised here.
    this.slots = new SwiotlbSlots(this.nslabs);
    this.areaCursor = new Uint32Array(this.nareas);
    this.areaUsedCount = new Uint32Array(this.nareas);
  }

  // ---- queries (read-only) -------------------------------------------------------------------

  /** Alias of start: the pool's first byte. */
  get base(): number {
    return this.start;
  }

  /** Slots in use, padding included: the sum of every area's `used` (mem_used()). */
  get slotsUsed(): number {
    let used = 0;
    for (let a = 0; a < this.nareas; a++) used += this.areaUsedCount[a] ?? 0;
    return used;
  }

  /** Runs the slot state is stored in (swiotlb-slots.ts): what the pool weighs, 0 when nothing is live. */
  get slotRuns(): number {
    return this.slots.runCount;
  }

  /** Live allocations (maps, coherent buffers, chunks). */
  get liveCount(): number {
    return this.live;
  }

  /**
   * How often a release read slots[nslabs].list, one past the array: swiotlb_release_slots() bounds
   * its look-ahead by the segment (ALIGN(index + 1, IO_TLB_SEGSIZE)), not by nslabs, so freeing the
   * last slots of a restricted pool whose size is not a multiple of 256 KiB reads past the slot
   * array (the model reads 0 there; the kernel reads whatever follows the kcalloc()ed array).
   */
  get tailOverreads(): number {
    return this.overreads;
  }

  get areas(): readonly SwiotlbAreaView[] {
    const views: SwiotlbAreaView[] = [];
    for (let a = 0; a < this.nareas; a++) {
      views.push({ index: this.areaCursor[a] ?? 0, used: this.areaUsedCount[a] ?? 0, firstSlot: a * this.areaNslabs, nslabs: this.areaNslabs });
    }
    return views;
  }

  contains(addr: number): boolean {
    return addr >= this.start && addr < this.end;
  }

  /** slot_addr(): the address of slot `index`. */
  slotAddr(index: number): number {
    return this.start + index * IO_TLB_SIZE;
  }

  /** The slot holding `addr`, or undefined outside the pool. */
  slotOf(addr: number): number | undefined {
    return this.contains(addr) ? Math.floor((addr - this.start) / IO_TLB_SIZE) : undefined;
  }

  slot(index: number): SwiotlbSlotView {
    checkInteger('slot index', index, 0, this.nslabs - 1);
    const orig = this.slots.origAddr(index);
    return {
      list: this.slots.list(index),
      origAddr: orig === INVALID_PHYS_ADDR ? undefined : orig,
      allocSize: this.slots.allocSize(index),
      padSlots: this.slots.padSlots(index),
    };
  }

  maxMappingSize(minAlignMask = 0): number {
    return swiotlbMaxMappingSize(minAlignMask);
  }

  /** Counts slot writes: unchanged, liveMappings() is unchanged (SwiotlbView.generation). */
  get generation(): number {
    return this.slots.generation;
  }

  /**
   * Live allocations in slot order, from the pool's ascending list of head slots: the cost follows
   * the live allocations, not the pool (a walk of a 1G pool's free runs looked at about 200 runs
   * per call where some 17 allocations were live). checkInvariants() is the full check of the
   * slots against those heads. One list of frozen allocations until a slot is written
   * (`generation`): swiotlb-slots and swiotlb-shared list them on every step that maps or unmaps,
   * and a generator describing each allocation anew was 4.6% of their time. The list itself is
   * not frozen: V8 iterates a frozen array with for-of through its generic iterator, one object
   * per element (a heap sampling profile of the cheap ops showed it at each oracle's loop).
   */
  liveMappings(): readonly SwiotlbMapping[] {
    if (this.listed !== undefined && this.listedAt === this.slots.generation) return this.listed;
    const heads = this.slots.liveHeads();
    // The last list is in head order too: a mapping not released since it keeps its (frozen)
    // object, so a map or an unmap describes and freezes one mapping, not every live one (when
    // the change log does not reach back to the last list, every head is described anew).
    const changes = this.listed === undefined ? -1 : this.slots.changesSince(this.listedAt, this.changes);
    const previous = this.listed ?? [];
    const all: SwiotlbMapping[] = [];
    let p = 0;
    for (let h = 0; h < heads.length; h++) {
      const head = heads[h]!;
      while (p < previous.length && previous[p]!.slotIndex + previous[p]!.padSlots < head) p++;
      const old = previous[p];
      if (old !== undefined && changes >= 0 && old.slotIndex + old.padSlots === head && !this.released(old.tlbAddr, changes)) {
        all.push(old);
        continue;
      }
      all.push(Object.freeze(this.describe(head)));
    }
    this.listed = all;
    this.listedAt = this.slots.generation;
    return this.listed;
  }

  /** Whether the first `count` numbers of `changes` release the allocation handed out as `tlbAddr`. */
  private released(tlbAddr: number, count: number): boolean {
    for (let c = 0; c < count; c += CHANGE_WIDTH) if (this.changes[c] === -1 && this.changes[c + 3] === tlbAddr) return true;
    return false;
  }

  /**
   * The slot ranges allocated and released since generation `since` (SwiotlbView.changesSince()):
   * the pool logs each allocation and release as it happens (markHead(), clearHead()).
   */
  changesSince(since: number, out: number[]): number {
    return this.slots.changesSince(since, out);
  }

  /** The live allocation whose tlbAddr is `tlbAddr`, if any. */
  lookup(tlbAddr: number): SwiotlbMapping | undefined {
    const head = this.headOf(tlbAddr);
    return head === undefined ? undefined : this.describe(head);
  }

  /**
   * Full consistency check, for oracles' end-of-case sweeps and tests: live ranges in the pool and
   * disjoint, `list` equal to the canonical free-run lengths Linux maintains, every area's `used`
   * equal to the slots of the allocations in it. Returns the problems found. O(slots of the chunks
   * ever written): a chunk never written holds the canonical free runs by construction.
   */
  checkInvariants(): string[] {
    const problems: string[] = [];
    const owned = new Set<number>();
    /** Segments holding an owned slot (normally written ones; a corrupt allocation may reach others). */
    const ownedSegments = new Set<number>();
    const used = new Array<number>(this.nareas).fill(0);
    /** Head slots found by the scan, against the list liveMappings() reads. */
    const heads: number[] = [];
    // A segment nothing was written in holds no head and exactly the expected free run.
    const written = this.slots.writtenSegments();
    for (const segment of written) {
      for (let head = segment * IO_TLB_SEGSIZE; head < Math.min((segment + 1) * IO_TLB_SEGSIZE, this.nslabs); head++) {
        if (this.slots.kind(head) === KIND_NONE) continue;
        heads.push(head);
        const m = this.describe(head);
        if (m.slotIndex < 0 || m.slotIndex + m.nslots > this.nslabs) {
          problems.push(`allocation at ${hex(m.tlbAddr)} covers slots ${m.slotIndex}..${m.slotIndex + m.nslots - 1}, outside the pool's ${this.nslabs}`);
          continue;
        }
        for (let s = m.slotIndex; s < m.slotIndex + m.nslots; s++) {
          if (owned.has(s)) problems.push(`slot ${s} belongs to two allocations (one at ${hex(m.tlbAddr)})`);
          owned.add(s);
          ownedSegments.add(Math.floor(s / IO_TLB_SEGSIZE));
          const area = Math.floor(s / this.areaNslabs);
          used[area] = (used[area] ?? 0) + 1;
        }
      }
    }
    if (heads.join() !== this.slots.liveHeads().join()) problems.push(`live heads ${this.slots.liveHeads().join()}, but the slots hold heads at ${heads.join()}`);
    // `list` of the segments written or owned, each from its end, where the free run restarts.
    const checked = [...new Set([...written, ...ownedSegments])].sort((x, y) => y - x);
    for (const segment of checked) {
      let run = 0;
      for (let s = Math.min((segment + 1) * IO_TLB_SEGSIZE, this.nslabs) - 1; s >= segment * IO_TLB_SEGSIZE; s--) {
        const expected = owned.has(s) ? 0 : ++run;
        if (owned.has(s)) run = 0;
        if (this.slots.list(s) !== expected) problems.push(`slot ${s}: list ${this.slots.list(s)}, expected ${expected}`);
      }
    }
    for (let a = 0; a < this.nareas; a++) {
      if (this.areaUsedCount[a] !== used[a]) problems.push(`area ${a}: used ${this.areaUsedCount[a]}, live slots ${used[a]}`);
      if ((this.areaCursor[a] ?? 0) >= this.areaNslabs) problems.push(`area ${a}: index ${this.areaCursor[a]} past the area`);
    }
    return problems;
  }

  // ---- streaming mappings --------------------------------------------------------------------

  /**
   * Allocate bounce slots for `mappingSize` bytes at `origAddr`: swiotlb_tbl_map_single() without
   * the copy. The returned tlbAddr shares origAddr's low bits under minAlignMask; with
   * allocAlignMask the first allocated slot is aligned to it, preceded by the padding slots
   * needed to keep those low bits (pad_slots).
   */
  find(origAddr: number, mappingSize: number, attrs: SwiotlbAttrs = {}, choose?: SwiotlbSlotChooser): SwiotlbResult {
    checkInteger('origAddr', origAddr, 0, 2 ** 52);
    checkInteger('mappingSize', mappingSize, 1, Number.MAX_SAFE_INTEGER);
    const minAlignMask = attrs.minAlignMask ?? 0;
    const allocAlignMask = attrs.allocAlignMask ?? 0;
    checkInteger('minAlignMask', minAlignMask, 0, TWO_32 - 1);
    checkInteger('allocAlignMask', allocAlignMask, 0, 2 ** 31 - 1);
    // ALIGN(x, alloc_align_mask + 1) below only makes sense for a power of two minus one.
    if (!isPowerOfTwo(allocAlignMask + 1)) throw new RangeError(`swiotlb: allocAlignMask ${hex(allocAlignMask)} is not a power of two minus one`);

    // No max-mapping-size check: swiotlb_tbl_map_single() serves any mapping whose padded size
    // the search can fit in IO_TLB_SEGSIZE slots. dma_max_mapping_size() is a promise drivers
    // keep (the guest model refuses a larger map_single unless the op says the driver ignores it).

    // swiotlb_align_offset(dev, alloc_align_mask, orig_addr): bytes of padding before the buffer,
    // whole slots of which become pad_slots.
    const offset = and32(origAddr, (minAlignMask & (allocAlignMask | (IO_TLB_SIZE - 1))) >>> 0);
    const size = Math.ceil((mappingSize + offset) / (allocAlignMask + 1)) * (allocAlignMask + 1);
    const search = this.search('map', origAddr, size, allocAlignMask, minAlignMask, attrs.segmentBoundaryMask, attrs.cpu);
    const index = this.chooseSlots(search, choose);
    if (index < 0) return fail('ENOMEM', `swiotlb buffer is full (sz: ${size} bytes), total ${this.nslabs} (slots), used ${this.slotsUsed} (slots)`);

    // swiotlb_tbl_map_single(): skip the padding, record pad_slots on the first real slot and the
    // original address of every slot that carries data.
    const pad = Math.floor(offset / IO_TLB_SIZE);
    const head = index + pad;
    const within = offset % IO_TLB_SIZE;
    this.slots.setPadSlots(head, pad);
    this.slots.setOrigAddrRun(head, head + nrSlots(size) - pad, origAddr, IO_TLB_SIZE);
    this.markHead(head, KIND_MAP, mappingSize, within);
    return { ok: true, ...this.describe(head) };
  }

  /**
   * Give back an allocation by the address the caller got (swiotlb_tbl_unmap_single() ->
   * swiotlb_release_slots(), swiotlb_free()): merge the freed slots with the free runs after and
   * before them inside their segment, recover the padding slots, update the area's `used`.
   * Throws if tlbAddr is not a live allocation's address, or allocSize is given and differs from
   * the size it was allocated with: the kernel would corrupt its free lists, which in this
   * simulator means a bug in the guest model, not a finding.
   */
  release(tlbAddr: number, allocSize?: number): SwiotlbMapping {
    const head = this.headOf(tlbAddr);
    if (head === undefined) throw new Error(`swiotlb: release of ${hex(tlbAddr)}, which is not a live swiotlb allocation`);
    const mapping = this.describe(head);
    if (allocSize !== undefined && allocSize !== mapping.allocSize) {
      throw new Error(`swiotlb: release of ${hex(tlbAddr)} with size ${allocSize}, allocated with ${mapping.allocSize}`);
    }
    // swiotlb_release_slots(): offset = tlb_addr & min_align_mask & (IO_TLB_SIZE - 1), which is
    // the head offset recorded at map time (tlb_addr keeps orig_addr's bits under that mask);
    // index = the slot of tlb_addr - offset, minus its pad_slots; nslots from that first slot's
    // alloc_size plus the offset.
    const offset = this.slots.headOffset(head);
    this.clearHead(head);
    if (mapping.kind === 'chunk') {
      this.releaseChunk(mapping);
      return mapping;
    }
    const index = head - (this.slots.padSlots(head));
    const nslots = nrSlots((this.slots.allocSize(index)) + offset);
    const area = Math.floor(index / this.areaNslabs);

    let count = 0;
    const after = index + nslots;
    if (after < Math.ceil((index + 1) / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE) {
      if (after < this.nslabs) count = this.slots.list(after);
      else this.overreads++;
    }
    // Step 1: return the slots, merging with the free run after them (list = ++count from the last).
    this.slots.setListRun(index, index + nslots, count + nslots, -1);
    count += nslots;
    this.slots.fill('origAddr', index, index + nslots, INVALID_PHYS_ADDR);
    this.slots.fill('allocSize', index, index + nslots, 0);
    this.slots.fill('padSlots', index, index + nslots, 0);
    // Step 2: extend the free run before them, up to the segment start.
    this.renumberBefore(index, count);
    this.areaUsedCount[area] = (this.areaUsedCount[area] ?? 0) - nslots;
    return mapping;
  }

  // ---- coherent allocations ------------------------------------------------------------------

  /**
   * A coherent buffer from a for_alloc pool: dma_direct_alloc() page-aligns the size, then
   * swiotlb_alloc() searches with alloc_align_mask = (PAGE_SIZE << get_order(size)) - 1 and no
   * original address ("Honour dma_alloc_coherent() alignment in swiotlb_alloc()"), and refuses a
   * slot that is not page-aligned.
   *
   * Sizes above 256 KiB always fail: swiotlb_find_slots() can hand out at most IO_TLB_SEGSIZE
   * contiguous slots (every `list` run stops at a segment end), so the real kernel cannot serve a
   * coherent allocation larger than 256 KiB, nor a whole 2M block, from swiotlb. A policy that
   * wants 2M blocks (the 2M-aligned coherent pool proposal) must say so explicitly with
   * allocChunk(); one that stays with Linux must keep coherent allocations at 256 KiB or less. Even
   * 256 KiB succeeds only if the pool base is 256K-aligned (segments start at base + k * 256 KiB),
   * which the boot pool, page-aligned by memblock, need not be: the case of Will Deacon's warning
   * "Alloc alignment may prevent fulfilling requests with max mapping_size".
   */
  allocCoherent(size: number, attrs: SwiotlbCoherentAttrs = {}, choose?: SwiotlbSlotChooser): SwiotlbResult {
    if (!this.forAlloc) throw new Error('swiotlb: coherent allocation from a pool without for_alloc (dma_direct_alloc() never calls swiotlb_alloc() then)');
    checkInteger('size', size, 1, Number.MAX_SAFE_INTEGER);
    const alignBytes = attrs.alignBytes ?? PAGE_SIZE;
    if (!isPowerOfTwo(alignBytes) || alignBytes < PAGE_SIZE || alignBytes > 2 ** 31) {
      throw new RangeError(`swiotlb: alignBytes ${alignBytes} is not a power of two in [4K, 2G]`);
    }
    const minAlignMask = attrs.minAlignMask ?? 0;
    checkInteger('minAlignMask', minAlignMask, 0, TWO_32 - 1);
    const bytes = Math.ceil(size / PAGE_SIZE) * PAGE_SIZE;
    if (bytes > IO_TLB_MAX_BYTES) {
      // What the exhaustive search would conclude (and what the CONFIG_SWIOTLB_DYNAMIC
      // swiotlb_find_slots() checks up front), without scanning every area.
      return fail('ENOMEM', `coherent allocation of ${bytes} bytes: swiotlb cannot hand out more than ${IO_TLB_MAX_BYTES} bytes at once (use allocChunk for whole 2M blocks)`);
    }
    const orderAlign = PAGE_SIZE * 2 ** getOrder(bytes);
    const allocAlignMask = Math.max(orderAlign, alignBytes) - 1;
    const search = this.search('coherent', 0, bytes, allocAlignMask, minAlignMask, attrs.segmentBoundaryMask, attrs.cpu);
    const index = this.chooseSlots(search, choose);
    if (index < 0) return fail('ENOMEM', `swiotlb_alloc of ${bytes} bytes aligned to ${allocAlignMask + 1}: no suitable free slots`);
    // swiotlb_alloc(): "Cannot allocate pages from non page-aligned swiotlb addr". Unreachable with
    // a page-aligned pool and the alignment check above, kept because the kernel keeps it.
    if (this.slotAddr(index) % PAGE_SIZE !== 0) {
      this.markHead(index, KIND_COHERENT, bytes, 0);
      this.release(this.slotAddr(index));
      return fail('ENOMEM', `swiotlb_alloc found non page-aligned slot ${index}`);
    }
    // orig_addr stays INVALID_PHYS_ADDR and pad_slots 0: swiotlb_alloc() sets neither.
    this.markHead(index, KIND_COHERENT, bytes, 0);
    return { ok: true, ...this.describe(index) };
  }

  /**
   * NOT LINUX. Chunk mode, for policies modelling the proposal of a 2M-aligned swiotlb serving
   * coherent allocations in whole 2M blocks (so the RMP can keep 2M entries): reserve
   * ceil(bytes / 2K) contiguous free slots starting at an `alignBytes`-aligned address, across
   * as many IO_TLB_SEGSIZE segments (and areas) as that takes. The search is first-fit from the
   * start of the pool, whatever the CPU. The slots are accounted exactly like Linux's (list 0,
   * alloc_size, the areas' `used`), so find() and allocCoherent() see them as taken, and
   * release() gives them back. Needs a for_alloc pool, like allocCoherent().
   */
  allocChunk(bytes: number, alignBytes = 2 * 1024 * 1024): SwiotlbResult {
    if (!this.forAlloc) throw new Error('swiotlb: chunk allocation from a pool without for_alloc');
    checkInteger('bytes', bytes, 1, Number.MAX_SAFE_INTEGER);
    if (!isPowerOfTwo(alignBytes) || alignBytes < PAGE_SIZE) throw new RangeError(`swiotlb: chunk alignment ${alignBytes} is not a power of two of at least 4K`);
    const size = Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE;
    const nslots = nrSlots(size);
    const stride = alignBytes / IO_TLB_SIZE;
    // The first slot whose address is alignBytes-aligned (the base is page-aligned, hence slot-aligned).
    let index = ((alignBytes - (this.start % alignBytes)) % alignBytes) / IO_TLB_SIZE;
    for (; index + nslots <= this.nslabs; index += stride) {
      if (this.rangeFree(index, nslots)) break;
    }
    if (index + nslots > this.nslabs) return fail('ENOMEM', `no free ${size}-byte chunk aligned to ${alignBytes} in the pool`);

    // Same marking as swiotlb_search_pool_area()'s "found:" (list 0, alloc_size counting down,
    // the free run before the chunk renumbered), with `used` charged to each area it spans.
    this.slots.fill('list', index, index + nslots, 0);
    this.slots.setAllocSizeRun(index, index + nslots, size, IO_TLB_SIZE);
    this.chargeAreas(index, index + nslots, 1);
    this.renumberBefore(index, 0);
    this.markHead(index, KIND_CHUNK, size, 0);
    return { ok: true, ...this.describe(index) };
  }

  // ---- internals -----------------------------------------------------------------------------

  private search(
    kind: SwiotlbSlotSearch['kind'],
    origAddr: number,
    allocSize: number,
    allocAlignMask: number,
    minAlignMask: number,
    boundaryMask: number | undefined,
    cpu = 0,
  ): SwiotlbSlotSearch {
    checkInteger('cpu', cpu, 0, 2 ** 31 - 1);
    if (boundaryMask !== undefined) {
      checkInteger('segmentBoundaryMask', boundaryMask, 0, 2 ** 53 - 1);
      if (!isPowerOfTwo(boundaryMask + 1)) throw new RangeError(`swiotlb: segment boundary mask ${hex(boundaryMask)} is not a power of two minus one`);
    }
    return {
      kind,
      origAddr,
      allocSize,
      nslots: nrSlots(allocSize),
      minAlignMask,
      allocAlignMask,
      slotAlignMask: slotAlignMask(allocSize, minAlignMask, allocAlignMask),
      segmentBoundaryMask: boundaryMask,
      cpu,
    };
  }

  /** The kernel's search, or the policy's chooser checked against the pool; then take the slots. */
  private chooseSlots(search: SwiotlbSlotSearch, choose: SwiotlbSlotChooser | undefined): number {
    const index = choose ? choose(search, this) : this.kernelSearch(search);
    if (index === -1) return -1;
    if (choose) this.checkChoice(index, search.nslots);
    this.take(index, search);
    return index;
  }

  /** A chooser's slots must be whole free slots of the pool: the kernel would corrupt its lists. */
  private checkChoice(index: number, nslots: number): void {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.nslabs) {
      throw new SwiotlbChoiceError(index, `slot ${String(index)} is not a slot of the pool (0..${this.nslabs - 1}, or -1 for none)`);
    }
    if (index + nslots > this.nslabs) {
      throw new SwiotlbChoiceError(index, `slots ${index}..${index + nslots - 1} run past the pool's last slot ${this.nslabs - 1}`);
    }
    // A free run never crosses a segment end, so this also refuses a run across segments.
    if ((this.slots.list(index)) < nslots) {
      throw new SwiotlbChoiceError(index, `slots ${index}..${index + nslots - 1} are not a free run (slot ${index} has ${this.slots.list(index)} free)`);
    }
  }

  // ---- SwiotlbSlotsView ------------------------------------------------------------------------

  freeRun(slot: number): number {
    // A slot past the pool has no `list` (the kernel's own read past it is counted: overreads).
    checkInteger('slot index', slot, 0, this.nslabs - 1);
    return this.slots.list(slot);
  }

  areaUsed(area: number): number {
    return this.areaUsedCount[area] ?? 0;
  }

  areaIndex(area: number): number {
    return this.areaCursor[area] ?? 0;
  }

  /**
   * swiotlb_find_slots() (!CONFIG_SWIOTLB_DYNAMIC) without taking the slots: start at the calling
   * CPU's area, then try the others in order, wrapping around.
   */
  kernelSearch(search: SwiotlbSlotSearch): number {
    // More than IO_TLB_SEGSIZE slots can never be found (no `list` run is longer); the exhaustive
    // loop would conclude the same, and CONFIG_SWIOTLB_DYNAMIC's version returns -1 up front.
    if (search.nslots > IO_TLB_SEGSIZE) return -1;
    const boundary = search.segmentBoundaryMask;
    const bounds: SearchBounds =
      boundary === undefined
        ? { tblDmaAddr: this.start, maxSlots: Infinity }
        : // phys_to_dma_unencrypted(dev, pool->start) & boundary_mask: the DMA address equals the
          // physical one for an SNP guest's shared memory (the C-bit is clear).
          { tblDmaAddr: this.start % (boundary + 1), maxSlots: Math.floor(boundary / IO_TLB_SIZE) + 1 };
    const first = search.cpu & (this.nareas - 1);
    let area = first;
    do {
      const index = this.searchArea(area, search, bounds);
      if (index >= 0) return index;
      if (++area >= this.nareas) area = 0;
    } while (area !== first);
    return -1;
  }

  /** swiotlb_search_pool_area() up to "found:": search one area from its `index`, wrapping inside the area. */
  private searchArea(areaIdx: number, search: SwiotlbSlotSearch, bounds: SearchBounds): number {
    const { origAddr, nslots } = search;
    const { tblDmaAddr, maxSlots } = bounds;
    const allocAlignMask = search.slotAlignMask >>> 0;
    // The min_align_mask bits inside the allocation alignment are kept by the padding offset, not
    // by the slot choice.
    const iotlbAlignMask = (search.minAlignMask & ~allocAlignMask) >>> 0;
    // get_max_slots(max(alloc_align_mask, iotlb_align_mask)): once aligned, step by the alignment.
    const stride = (Math.max(allocAlignMask, iotlbAlignMask) >>> IO_TLB_SHIFT) + 1;

    const used = this.areaUsedCount[areaIdx] ?? 0;
    if (nslots > this.areaNslabs - used) return -1;
    const slotBase = areaIdx * this.areaNslabs;
    const shift = nrSlots(tblDmaAddr);
    const origBits = and32(origAddr, iotlbAlignMask);
    let index = this.areaCursor[areaIdx] ?? 0;
    for (let checked = 0; checked < this.areaNslabs; ) {
      const candidate = slotBase + index;
      const tlbAddr = tblDmaAddr + candidate * IO_TLB_SIZE;
      // The CVE-2024-35814 fix: the allocation alignment is checked on every candidate, even
      // without an original address (swiotlb_alloc() passes 0), so an unaligned area->index left by
      // an earlier mapping can no longer yield an unaligned (and later double-freed) slot. The
      // min_align_mask comparison is skipped for orig_addr 0, as in Linux.
      if (and32(tlbAddr, allocAlignMask) !== 0 || (origAddr !== 0 && and32(tlbAddr, iotlbAlignMask) !== origBits)) {
        index = this.wrapAreaIndex(index + 1);
        checked++;
        continue;
      }
      // iommu_is_span_boundary(): the run must not cross the device's segment boundary.
      const crosses = maxSlots !== Infinity && ((shift + candidate) % maxSlots) + nslots > maxSlots;
      if (!crosses && (this.slots.list(candidate)) >= nslots) return candidate;
      index = this.wrapAreaIndex(index + stride);
      checked += stride;
    }
    return -1;
  }

  /**
   * swiotlb_search_pool_area() from "found:": take the slots, count alloc_size down from the
   * allocation's size, renumber the free run before them up to the segment start, move the
   * area's cursor past them and charge its `used`.
   */
  private take(slotIndex: number, search: SwiotlbSlotSearch): void {
    const { nslots, allocSize } = search;
    // swiotlb_align_offset(dev, 0, orig_addr): the sub-slot offset every slot's alloc_size excludes.
    const offset = and32(search.origAddr, (search.minAlignMask & (IO_TLB_SIZE - 1)) >>> 0);
    this.slots.fill('list', slotIndex, slotIndex + nslots, 0);
    this.slots.setAllocSizeRun(slotIndex, slotIndex + nslots, allocSize - offset, IO_TLB_SIZE);
    this.renumberBefore(slotIndex, 0);
    // "Update the indices to avoid searching in the next round."
    const areaIdx = Math.floor(slotIndex / this.areaNslabs);
    this.areaCursor[areaIdx] = this.wrapAreaIndex(slotIndex - areaIdx * this.areaNslabs + nslots);
    this.areaUsedCount[areaIdx] = (this.areaUsedCount[areaIdx] ?? 0) + nslots;
  }

  /**
   * The loop swiotlb_search_pool_area() and swiotlb_release_slots() end with:
   * `for (i = index - 1; io_tlb_offset(i) != IO_TLB_SEGSIZE - 1 && mem->slots[i].list; i--)
   * mem->slots[i].list = ++count;` - the free slots before `index` in its segment count on from
   * `count`. Each slot is read before it is written and written once, so reading the stretch first
   * and writing it as one run is the same.
   */
  private renumberBefore(index: number, count: number): void {
    let first = index;
    while (ioTlbOffset(first - 1) !== IO_TLB_SEGSIZE - 1 && this.slots.list(first - 1) !== 0) first--;
    if (first < index) this.slots.setListRun(first, index, count + (index - first), -1);
  }

  /** wrap_area_index(): back to the area's first slot past its end (to 0, not modulo). */
  private wrapAreaIndex(index: number): number {
    return index >= this.areaNslabs ? 0 : index;
  }

  /** True when slots [index, index + n) are all free: one `list` look-up per segment piece. */
  private rangeFree(index: number, n: number): boolean {
    let i = index;
    const end = index + n;
    while (i < end) {
      const segmentEnd = Math.min((Math.floor(i / IO_TLB_SEGSIZE) + 1) * IO_TLB_SEGSIZE, end);
      if ((this.slots.list(i)) < segmentEnd - i) return false;
      i = segmentEnd;
    }
    return true;
  }

  /** Adds `sign` per slot of [from, to) to the `used` of each area the range spans (a chunk may span areas). */
  private chargeAreas(from: number, to: number, sign: 1 | -1): void {
    for (let area = Math.floor(from / this.areaNslabs); area * this.areaNslabs < to; area++) {
      const slots = Math.min(to, (area + 1) * this.areaNslabs) - Math.max(from, area * this.areaNslabs);
      this.areaUsedCount[area] = (this.areaUsedCount[area] ?? 0) + sign * slots;
    }
  }

  /** Chunk release: the slots may span segments, so rebuild the free runs of each touched segment. */
  private releaseChunk(mapping: SwiotlbMapping): void {
    const first = mapping.slotIndex;
    const last = first + mapping.nslots - 1;
    this.slots.fill('allocSize', first, last + 1, 0);
    this.slots.fill('origAddr', first, last + 1, INVALID_PHYS_ADDR);
    this.slots.fill('padSlots', first, last + 1, 0);
    this.slots.fill('list', first, last + 1, 1); // free: renumbered below
    this.chargeAreas(first, last + 1, -1);
    const segFirst = Math.floor(first / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE;
    const segEnd = Math.min((Math.floor(last / IO_TLB_SEGSIZE) + 1) * IO_TLB_SEGSIZE, this.nslabs);
    this.slots.renumberFreeRuns(segFirst, segEnd);
  }

  /** The head slot of the live allocation handed out as `tlbAddr`, or undefined. */
  private headOf(tlbAddr: number): number | undefined {
    if (!Number.isSafeInteger(tlbAddr) || !this.contains(tlbAddr)) return undefined;
    const rel = tlbAddr - this.start;
    const head = Math.floor(rel / IO_TLB_SIZE);
    if (this.slots.kind(head) === KIND_NONE || this.slots.headOffset(head) !== rel % IO_TLB_SIZE) return undefined;
    return head;
  }

  private markHead(head: number, kind: number, size: number, offset: number): void {
    this.slots.setKind(head, kind);
    this.slots.setMapSize(head, size);
    this.slots.setHeadOffset(head, offset);
    this.live++;
    this.logLive(1, head);
  }

  private clearHead(head: number): void {
    // Logged first, while the head still describes the allocation.
    this.logLive(-1, head);
    this.slots.setKind(head, KIND_NONE);
    this.slots.setMapSize(head, 0);
    this.slots.setHeadOffset(head, 0);
    this.live--;
  }

  /** The change log's entry for the live allocation at `head` (its numbers as describe() gives them). */
  private logLive(sign: 1 | -1, head: number): void {
    const first = head - this.slots.padSlots(head);
    const offset = this.slots.headOffset(head);
    this.slots.logChange(sign, first, nrSlots(this.slots.allocSize(first) + offset), this.slotAddr(head) + offset, this.slots.mapSize(head));
  }

  private describe(head: number): SwiotlbMapping {
    const kind = KIND_NAMES[this.slots.kind(head)] ?? 'none';
    if (kind === 'none') throw new Error(`swiotlb: slot ${head} holds no allocation`);
    const pad = this.slots.padSlots(head);
    const first = head - pad;
    const offset = this.slots.headOffset(head);
    const orig = this.slots.origAddr(head);
    return {
      kind,
      tlbAddr: this.slotAddr(head) + offset,
      slotIndex: first,
      nslots: nrSlots(this.slots.allocSize(first) + offset),
      padSlots: pad,
      allocSize: this.slots.mapSize(head),
      origAddr: orig === INVALID_PHYS_ADDR ? undefined : orig,
      area: Math.floor(first / this.areaNslabs),
    };
  }

}

function fail(error: SwiotlbFailure['error'], reason: string): SwiotlbFailure {
  return { ok: false, error, reason };
}
