// The simulated Linux SEV-SNP guest kernel: boot (the swiotlb pool and the atomic pool made
// shared), the guest ops of DESIGN.md (accept, share, unshare, touch, the DMA API, TIO device
// acceptance) and the GuestView the oracles read. Memory management is in memory.ts, the slot
// allocator in swiotlb.ts; the guest policy decides the page sizes, the order of a conversion's
// steps and where DMA memory comes from (policies/types.ts).
//
// Sources: kernel/dma/direct.c (dma_direct_alloc(), dma_set_decrypted()), kernel/dma/pool.c
// (the atomic pool), kernel/dma/swiotlb.c (swiotlb_tbl_map_single(), swiotlb_bounce(),
// swiotlb_update_mem_attributes()), drivers/iommu/dma-iommu.c (vIOMMU mappings),
// drivers/virt/coco/sev-guest/tio.c (TDISP accept); research/amd-snp.md sections 4-5.

import { checkCount, checkDmaAttrs, checkPlacement, describeValue } from '../policies/check.ts';
import type { CoherentBuffer, GuestPage, GuestView, StreamingMapping, SwiotlbView } from '../api.ts';
import { LOW_RESERVED } from '../model/layout.ts';
import type { Machine } from '../model/machine.ts';
import { alignDown, alignUp, offsetIn, SZ_2K, SZ_2M, SZ_4K } from '../model/size.ts';
import type { Config, DmaDirection } from '../ops/types.ts';
import { linuxBounces, type BounceRequest, type CoherentFreeAction, type CoherentSource, type DmaAttrs, type GuestContext, type GuestPolicy, type SwiotlbPlacement } from '../policies/types.ts';
import type { ActorEnv } from '../host/env.ts';
import { AtomicPool, IovaAllocator, MAX_PAGE_ORDER, PageAllocator, ZONE_LIMIT, getOrder, type AtomicZone } from './allocator.ts';
import type { Hypervisor } from './ghcb.ts';
import { GuestMemory, type GuestLog } from './memory.ts';
import { ACCEPTED, CONVERTING, PageStates, SHARED, VALIDATED } from './pages.ts';
import { IO_TLB_MAX_BYTES, SwiotlbChoiceError, SwiotlbPool, swiotlbGeometry, swiotlbMaxMappingSize, type SwiotlbSlotChooser } from './swiotlb.ts';

const COHERENT_SOURCES: readonly CoherentSource[] = ['atomic-pool', 'pages', 'swiotlb', 'private'];

/** PCI devices get a 4G segment boundary (pci_device_add()). */
const PCI_SEGMENT_BOUNDARY = 0xffffffff;
/** The low-memory limit below which memblock places the swiotlb (ARCH_LOW_ADDRESS_LIMIT). */
const LOW_LIMIT = 4 * 1024 ** 3;
/** Pages of earlier top-down boot allocations above the pool (page tables, setup data...). */
const TOP_RESERVED = 5 * SZ_4K;
/** Atomic pools in the order dma_atomic_pool_init() creates them (kernel/dma/pool.c). */
const ATOMIC_ZONES: readonly AtomicZone[] = ['kernel', 'dma', 'dma32'];

/** Linux's pool placement: page-aligned, top-down below 4G, so not 2M-aligned (swiotlb_memblock_alloc()). */
export function linuxSwiotlbPlacement(guestMemory: number, bytes: number): SwiotlbPlacement {
  const top = Math.min(guestMemory, LOW_LIMIT);
  const base = Math.max(0, alignDown(top, SZ_2M) - TOP_RESERVED - bytes);
  return { base: alignDown(base, SZ_4K), bytes, forAlloc: false };
}

/** kernel/dma/pool.c: 128K per GiB of memory, at least 128K, at most MAX_PAGE_ORDER (4M). */
export function linuxAtomicPoolBytes(guestMemory: number): number {
  const pages = Math.min(Math.floor(guestMemory / SZ_4K / (1024 ** 3 / (128 * 1024))), 2 ** MAX_PAGE_ORDER);
  return Math.max(pages * SZ_4K, 128 * 1024);
}

/**
 * The zone dma_direct_optimal_gfp_mask() picks for a coherent DMA mask of `bits`: GFP_DMA when
 * the mask reaches no further than zone_dma_limit (24 bits on x86), GFP_DMA32 up to 32 bits.
 */
export function zoneForMask(bits: number): AtomicZone {
  const limit = 2 ** bits;
  if (limit <= ZONE_LIMIT.dma) return 'dma';
  return limit <= ZONE_LIMIT.dma32 ? 'dma32' : 'kernel';
}

/**
 * dma_guess_pool(): the pool tried first for a zone, then the fallbacks after a pool that had no
 * room or gave memory the device cannot reach (kernel -> dma32 -> dma).
 */
function atomicPoolOrder(zone: AtomicZone): readonly AtomicZone[] {
  return zone === 'kernel' ? ['kernel', 'dma32', 'dma'] : zone === 'dma32' ? ['dma32', 'dma'] : ['dma'];
}

export function linuxCoherentSource(request: { atomic: boolean; accepted: boolean }): CoherentSource {
  if (request.accepted) return 'private';
  return request.atomic ? 'atomic-pool' : 'pages';
}

interface BufferRecord {
  view: CoherentBuffer;
  /** Buddy block (pages / private sources). */
  block?: { gfn: number; order: number };
  /** swiotlb allocation address. */
  tlbAddr?: number;
  /** vIOMMU S1 mapping. */
  s1?: { iova: number; len: number };
}

interface MappingRecord {
  view: StreamingMapping;
  block: { gfn: number; order: number };
  s1?: { iova: number; len: number };
}

/** The outcome of a guest op: done, or skipped with a reason (nothing to act on). */
export type OpOutcome = { skipped?: string };

const hexOf = (n: number): string => `0x${n.toString(16)}`;

/** An empty list of the step log (takeLog()): shared and frozen, as Step.dmas of a step without DMA. */
const NO_LOG_ENTRIES = Object.freeze([]) as unknown as never[];

export class Guest implements GuestView {
  readonly log: GuestLog = { events: [], errors: [], result: undefined, converting: [] };
  readonly memory: GuestMemory;
  readonly ctx: GuestContext;
  readonly pool: SwiotlbPool;
  /** kernel/dma/pool.c's atomic_pool_kernel, atomic_pool_dma and atomic_pool_dma32 (none when atomicPoolBytes is 0). */
  readonly atomicPools: AtomicPool[] = [];
  /** atomic_pool_size: each pool's size at boot, and the free bytes below which it grows. */
  private readonly atomicPoolSize: number;
  readonly allocator: PageAllocator;
  readonly leaked = new Set<number>();
  private readonly accepted = new Set<number>();
  /** Pages a kernel user shared with share (their SHARED bit): taken from the allocator until unshared. */
  private readonly rawShared = new PageStates();
  private readonly iovas = new Map<number, IovaAllocator>();
  private readonly liveBuffers: BufferRecord[] = [];
  private readonly liveMappings: MappingRecord[] = [];
  /**
   * The lists `buffers` and `mappings` give: replaced whenever an object comes or goes, never
   * changed in place, so a list taken before an op is what was live then (world.ts keeps it by
   * reference to tell what the op created or freed).
   */
  private buffersView: readonly CoherentBuffer[] = [];
  private mappingsView: readonly StreamingMapping[] = [];
  private nextBuffer = 0;
  private nextMapping = 0;
  private cpuTurn = 0;

  constructor(
    private readonly machine: Machine,
    private readonly config: Config,
    private readonly policy: GuestPolicy,
    private readonly env: ActorEnv,
    private readonly hv: Hypervisor,
  ) {
    this.ctx = { config, policy: policy.name, state: {}, ...this.closures() };
    this.memory = new GuestMemory(machine, config, policy, this.ctx, env, hv, this.log);

    // The size Linux really allocates: whole segments, a power of two, at least one segment per area.
    const bytes = swiotlbGeometry({ bytes: config.swiotlb, cpus: config.cpus }).bytes;
    const request = { guestMemory: config.guestMemory, bytes, cpus: config.cpus };
    const placement = policy.swiotlbPool
      ? // No silent correction: a hook that returns nothing (a forgotten return) is an error, not Linux's placement.
        env.guard(() => checkPlacement(policy.swiotlbPool?.(this.ctx, request)))
      : linuxSwiotlbPlacement(config.guestMemory, bytes);
    this.pool = env.guard(() => {
      const pool = new SwiotlbPool({ base: placement.base, bytes: placement.bytes, cpus: config.cpus, forAlloc: placement.forAlloc === true });
      if (pool.end > config.guestMemory) throw new Error(`swiotlbPool: the pool ${hexOf(pool.start)}..${hexOf(pool.end)} ends past guest memory`);
      return pool;
    });
    const totalPages = Math.floor(config.guestMemory / SZ_4K);
    this.allocator = new PageAllocator(totalPages, [
      { start: 0, end: LOW_RESERVED / SZ_4K },
      { start: this.pool.start / SZ_4K, end: Math.ceil(this.pool.end / SZ_4K) },
    ]);
    this.atomicPoolSize = policy.atomicPoolBytes
      ? env.guard(() => checkCount('atomicPoolBytes', policy.atomicPoolBytes?.(this.ctx, { guestMemory: config.guestMemory }), config.guestMemory))
      : linuxAtomicPoolBytes(config.guestMemory);
  }

  /**
   * Sets the closures of ctx again, over this guest: a copy the boot cache restored
   * (model/graph-copy.ts) leaves them out, as they would call the template's guest.
   */
  bind(): void {
    Object.assign(this.ctx, this.closures());
  }

  /** The function members of the policy's GuestContext. */
  private closures(): Pick<GuestContext, 'random' | 'page' | 'tdiAccepted'> {
    const env = this.env;
    return {
      random: () => env.random(),
      page: (gfn) => this.memory.pages.page(gfn),
      tdiAccepted: (dev) => this.accepted.has(dev),
    };
  }

  /**
   * Boot: swiotlb_update_mem_attributes() makes the swiotlb pool shared, and
   * dma_atomic_pool_init() allocates and shares the three atomic pools.
   */
  boot(): void {
    const pool = this.pool;
    if (this.memory.acceptUnits(pool.start, pool.end)) this.memory.setPagesState(pool.start, pool.end, 'shared', 'convert');
    if (this.atomicPoolSize === 0) return;
    for (const zone of ATOMIC_ZONES) {
      const atomic = new AtomicPool(zone);
      // __dma_atomic_pool_init(): a pool that gets no memory at all is not created.
      if (this.expandAtomicPool(atomic, this.atomicPoolSize)) this.atomicPools.push(atomic);
    }
  }

  /**
   * atomic_pool_expand(): the largest block of at most `bytes` (and MAX_PAGE_ORDER) the pool's
   * zone can give, falling back to smaller orders, made shared and added to the pool as a chunk.
   */
  private expandAtomicPool(atomic: AtomicPool, bytes: number): boolean {
    const limit = ZONE_LIMIT[atomic.zone] === Infinity ? undefined : ZONE_LIMIT[atomic.zone] / SZ_4K;
    for (let order = Math.min(getOrder(bytes), MAX_PAGE_ORDER); order >= 0; order--) {
      const gfn = this.allocator.alloc(order, limit);
      if (gfn === undefined) continue;
      const start = gfn * SZ_4K;
      const end = start + SZ_4K * 2 ** order;
      if (!this.memory.acceptUnits(start, end) || !this.memory.setPagesState(start, end, 'shared', 'convert')) {
        // set_memory_decrypted() failed: the pages are in an unknown state, never reused.
        this.leak(start, end - start);
        return false;
      }
      atomic.addChunk(start, end - start);
      return true;
    }
    return false;
  }

  /**
   * atomic_pool_work_fn(), scheduled by an allocation that left a pool below atomic_pool_size
   * free: each such pool grows by its current size. Run when the op that scheduled it returns
   * (the work item runs as soon as the allocating context lets go of the CPU).
   */
  private resizeAtomicPools(): void {
    for (const atomic of this.atomicPools) {
      if (atomic.avail < this.atomicPoolSize) this.expandAtomicPool(atomic, atomic.size);
    }
  }

  /** The atomic pools as shared ranges, for views and tests. */
  get atomicPoolRanges(): readonly { zone: AtomicZone; base: number; bytes: number }[] {
    return this.atomicPools.flatMap((atomic) => atomic.ranges.map((r) => ({ zone: atomic.zone, ...r })));
  }

  // ---- GuestView -----------------------------------------------------------------------------

  page(gfn: number): GuestPage | undefined {
    return this.memory.pages.page(gfn);
  }

  /** GuestView.loadPage: `page(gfn)` without allocating (oracles read it per page). */
  loadPage(gfn: number, out: GuestPage): GuestPage | undefined {
    const flags = this.memory.pages.flags(gfn);
    if (flags === 0) return undefined;
    out.accepted = (flags & ACCEPTED) !== 0;
    out.shared = (flags & SHARED) !== 0;
    out.validated = (flags & VALIDATED) !== 0;
    out.converting = (flags & CONVERTING) !== 0;
    return out;
  }

  pages(): Iterable<number> {
    return this.memory.pages.pages();
  }

  /** The flags of page `gfn` as GUEST_PAGE_* bits (0: no state), allocation-free. */
  pageFlags(gfn: number): number {
    return this.memory.pages.flags(gfn);
  }

  /** The end (exclusive, at most `limit`) of the run of pages from `gfn` with the flags of `gfn`. */
  pageRunEnd(gfn: number, limit: number): number {
    return this.memory.pages.runEnd(gfn, limit);
  }

  get buffers(): readonly CoherentBuffer[] {
    return this.buffersView;
  }

  get mappings(): readonly StreamingMapping[] {
    return this.mappingsView;
  }

  get swiotlb(): SwiotlbView {
    return this.pool;
  }

  tdiAccepted(dev: number): boolean {
    return this.accepted.has(dev);
  }

  /** Drop whatever the log holds (an op that ended in an error left it), allocating nothing when it is empty. */
  clearLog(): void {
    const log = this.log;
    if (log.events.length > 0) log.events = [];
    if (log.errors.length > 0) log.errors = [];
    if (log.converting.length > 0) log.converting = [];
    log.result = undefined;
  }

  /** The step log, handed over and reset. */
  takeLog(): GuestLog {
    // Most steps log no error and convert nothing: such an empty list is handed over as one
    // shared frozen array and the log's own (empty) one is kept (issue 15). The events become
    // Step.guestEvents, which oracles iterate on every step: always a list of their own, as a
    // frozen one among them made V8's for-of over them allocate an iterator in guest-alive and
    // conversion-order (a heap sampling profile of the cheap ops).
    const log = this.log;
    const taken: GuestLog = { events: log.events, errors: NO_LOG_ENTRIES, result: log.result, converting: NO_LOG_ENTRIES };
    log.events = [];
    if (log.errors.length > 0) {
      taken.errors = log.errors;
      log.errors = [];
    }
    if (log.converting.length > 0) {
      taken.converting = log.converting;
      log.converting = [];
    }
    log.result = undefined;
    return taken;
  }

  buffer(ref: number): CoherentBuffer | undefined {
    const n = this.liveBuffers.length;
    return n === 0 ? undefined : this.liveBuffers[((ref % n) + n) % n]?.view;
  }

  mapping(ref: number): StreamingMapping | undefined {
    const n = this.liveMappings.length;
    return n === 0 ? undefined : this.liveMappings[((ref % n) + n) % n]?.view;
  }

  // ---- memory ops ----------------------------------------------------------------------------

  accept(gpa: number, size: '4K' | '2M'): OpOutcome {
    const start = alignDown(gpa, SZ_4K);
    if (start >= this.config.guestMemory) return { skipped: `gpa ${hexOf(gpa)} is beyond guest memory` };
    this.memory.acceptRange(start, start + (size === '2M' ? SZ_2M : SZ_4K));
    return {};
  }

  /**
   * A kernel user converts pages it owns (set_memory_decrypted()): pages it shared already are
   * left as they are, and so is memory the guest cannot convert for it (the reserved low 1 MiB,
   * pages the DMA layer owns). The op converts the rest; when nothing is left it is skipped with
   * the reason, and when part of the range was left out the op's result says which and why.
   */
  share(gpa: number, pages: number): OpOutcome {
    // Walked run by run: pages shared by an earlier share are skipped, free pages are eligible
    // (they are never rawShared: a shared page stays taken), the rest are refused.
    const [first, last] = this.rangeGfns(gpa, pages);
    const eligible: [number, number][] = [];
    let refused: { gfn: number; count: number } | undefined;
    for (let gfn = first; gfn < last; ) {
      if (this.rawShared.has(gfn, SHARED)) {
        gfn = this.rawShared.runEnd(gfn, last);
        continue;
      }
      const free = this.allocator.isFree(gfn);
      const end = free ? this.allocator.runEnd(gfn, last, true) : Math.min(this.allocator.runEnd(gfn, last, false), this.rawShared.runEnd(gfn, last));
      if (free) eligible.push([gfn, end - gfn]);
      else if (refused === undefined) refused = { gfn, count: end - gfn };
      else refused.count += end - gfn;
      gfn = end;
    }
    if (eligible.length === 0) {
      return { skipped: refused === undefined ? 'no page in the range can be shared (beyond memory, or already shared)' : this.notConvertible(refused.gfn) };
    }
    if (refused !== undefined) this.log.result = `${refused.count} page(s) of the range left private: ${this.notConvertible(refused.gfn)}`;
    for (const [run, count] of eligible) {
      const start = run * SZ_4K;
      const end = start + count * SZ_4K;
      // The pages are allocated (and so accepted) before anyone decrypts them.
      this.allocator.takeRange(run, run + count);
      if (!this.memory.acceptUnits(start, end) || !this.memory.setPagesState(start, end, 'shared', 'convert')) {
        this.log.result = `set_memory_decrypted(${hexOf(start)}, ${count}) failed`;
      }
      // Pages the guest now holds shared stay taken; the others go back to the allocator.
      for (let gfn = run; gfn < run + count; ) {
        const next = this.memory.pages.runEnd(gfn, run + count);
        if (this.memory.pages.has(gfn, SHARED)) this.rawShared.updateRange(gfn, next, SHARED, 0);
        else this.allocator.releaseRange(gfn, next);
        gfn = next;
      }
    }
    return {};
  }

  /** Why the guest cannot convert page `gfn` on a kernel user's behalf. */
  private notConvertible(gfn: number): string {
    const at = hexOf(gfn * SZ_4K);
    if (gfn * SZ_4K < LOW_RESERVED) return `${at} is in the low 1 MiB that reserve_real_mode() keeps from the page allocator`;
    if (this.pool.contains(gfn * SZ_4K)) return `${at} is in the swiotlb pool, which the DMA layer owns`;
    if (this.atomicPools.some((atomic) => atomic.contains(gfn * SZ_4K))) return `${at} is in an atomic DMA pool, which the DMA layer owns`;
    return `${at} is allocated to the DMA layer (a coherent buffer or a mapped buffer) or leaked`;
  }

  unshare(gpa: number, pages: number): OpOutcome {
    const [first, last] = this.rangeGfns(gpa, pages);
    const eligible: [number, number][] = [];
    for (let gfn = first; gfn < last; ) {
      const end = this.rawShared.runEnd(gfn, last);
      if (this.rawShared.has(gfn, SHARED)) eligible.push([gfn, end - gfn]);
      gfn = end;
    }
    if (eligible.length === 0) return { skipped: 'no page in the range was shared by share' };
    for (const [run, count] of eligible) {
      const start = run * SZ_4K;
      if (!this.memory.setPagesState(start, start + count * SZ_4K, 'private', 'convert')) {
        this.log.result = `set_memory_encrypted(${hexOf(start)}, ${count}) failed`;
      }
      // Pages the guest made private again go back to the allocator; the others stay shared.
      for (let gfn = run; gfn < run + count; ) {
        const next = this.memory.pages.runEnd(gfn, run + count);
        if (!this.memory.pages.has(gfn, SHARED)) {
          this.rawShared.updateRange(gfn, next, 0, SHARED);
          this.allocator.releaseRange(gfn, next);
        }
        gfn = next;
      }
    }
    return {};
  }

  touch(gpa: number, write: boolean): OpOutcome {
    const at = alignDown(gpa, SZ_4K);
    if (at >= this.config.guestMemory) return { skipped: `gpa ${hexOf(gpa)} is beyond guest memory` };
    if (!this.memory.pages.has(at / SZ_4K, ACCEPTED) && !this.memory.acceptUnits(at, at + SZ_4K)) return {};
    const access = this.touchAccess(at, write);
    this.memory.access(at, access.write, access.private);
    return {};
  }

  /**
   * A touch interleaved inside another op: one access attempt that never accepts memory. On an
   * #NPF the access is handed back as `resume`, for the caller to re-execute after the outer op
   * returns (KVM retries a fault that races an invalidation; QEMU serialises conversions), so host
   * code is never re-entered in the middle of a procedure.
   */
  touchInterleaved(gpa: number, write: boolean): OpOutcome & { resume?: () => void } {
    const at = alignDown(gpa, SZ_4K);
    if (at >= this.config.guestMemory) return { skipped: `gpa ${hexOf(gpa)} is beyond guest memory` };
    if (!this.memory.pages.has(at / SZ_4K, ACCEPTED)) return { skipped: `gpa ${hexOf(at)} is not accepted (an interleaved touch never accepts)` };
    // Linux does not touch a page while it converts it (set_memory_*crypted() owns the range).
    if (this.memory.pages.has(at / SZ_4K, CONVERTING)) return { skipped: `gpa ${hexOf(at)} is being converted` };
    const access = this.touchAccess(at, write);
    if (typeof this.memory.tryAccess(at, access.write, access.private) === 'string') return {};
    // The #NPF raced the op (an invalidation, a conversion): KVM drops such a fault and lets the
    // vCPU re-execute the access (RET_PF_RETRY), which then sees the page as it is now.
    return {
      resume: () => {
        const now = this.touchAccess(at, write);
        this.memory.access(at, now.write, now.private);
      },
    };
  }

  /** How a touch of `at` accesses it: private unless shared, and never a write into DMA memory. */
  private touchAccess(at: number, write: boolean): { write: boolean; private: boolean } {
    // Only swiotlb writes into its slots, and a driver does not write a buffer it handed to a
    // device: a write there would be a kernel bug, so it becomes a read.
    const owned = this.pool.contains(at) || this.liveMappings.some((m) => at >= alignDown(m.view.orig, SZ_4K) && at < m.view.orig + m.view.bytes);
    return { write: write && !owned, private: !this.memory.pages.has(at / SZ_4K, SHARED) };
  }

  // ---- DMA API -------------------------------------------------------------------------------

  allocCoherent(dev: number, bytes: number, atomic: boolean): OpOutcome {
    if (!this.hasDevice(dev)) return { skipped: `no device ${dev}` };
    if (bytes <= 0) return { skipped: 'zero-byte allocation' };
    const size = alignUp(bytes, SZ_4K);
    const accepted = this.accepted.has(dev);
    const policy = this.policy;
    const request = { dev, bytes, atomic, accepted };
    const source = policy.coherentSource
      ? this.env.guard(() => {
          const chosen = policy.coherentSource?.(this.ctx, request);
          if (!COHERENT_SOURCES.includes(chosen as CoherentSource)) throw new Error(`coherentSource returned ${describeValue(chosen)}, expected one of ${COHERENT_SOURCES.map((s) => `"${s}"`).join(', ')}`);
          if (chosen === 'swiotlb' && !this.pool.forAlloc) throw new Error('coherentSource chose swiotlb, but swiotlbPool did not ask for forAlloc');
          if (chosen === 'atomic-pool' && this.atomicPools.length === 0) throw new Error('coherentSource chose the atomic pool, but atomicPoolBytes gave none');
          return chosen as CoherentSource;
        })
      : linuxCoherentSource(request);
    const record: BufferRecord = {
      view: { id: this.nextBuffer, dev, gpa: 0, bytes, iova: 0, source, shared: source !== 'private' },
    };
    switch (source) {
      case 'private':
      case 'pages': {
        const block = this.allocBlock(size);
        if (block === undefined) return this.failed(`dma_alloc_coherent(${bytes}): out of memory`);
        record.block = block;
        record.view.gpa = block.gfn * SZ_4K;
        if (source === 'pages') {
          // dma_set_decrypted(PFN_UP(size)): on failure the pages leak and the allocation fails.
          const start = record.view.gpa;
          if (!this.memory.setPagesState(start, start + size, 'shared', 'convert')) {
            this.leak(start, size);
            return this.failed(`dma_alloc_coherent(${bytes}): set_memory_decrypted failed, pages leaked`);
          }
        }
        break;
      }
      case 'atomic-pool': {
        const gpa = this.allocFromAtomicPools(dev, size);
        if (gpa === undefined) return this.failed(`dma_alloc_coherent(${bytes}, GFP_ATOMIC): no atomic pool the device reaches has room`);
        record.view.gpa = gpa;
        break;
      }
      case 'swiotlb': {
        const result =
          size <= IO_TLB_MAX_BYTES
            ? this.withChooser((choose) => this.pool.allocCoherent(size, { cpu: this.nextCpu() }, choose))
            : this.pool.allocChunk(size, SZ_2M);
        if (!result.ok) return this.failed(`dma_alloc_coherent(${bytes}) from swiotlb: ${result.reason}`);
        record.tlbAddr = result.tlbAddr;
        record.view.gpa = result.tlbAddr;
        break;
      }
    }
    record.view.iova = record.view.gpa;
    if (this.isNested(dev)) {
      record.s1 = this.s1Map(dev, record.view.gpa, bytes);
      record.view.iova = record.s1.iova + offsetIn(record.view.gpa, SZ_4K);
    }
    this.nextBuffer++;
    this.machine.recorder.touchGfnRange(record.view.gpa, size);
    this.liveBuffers.push(record);
    this.buffersView = this.liveBuffers.map((b) => b.view);
    if (source === 'atomic-pool') this.resizeAtomicPools();
    return {};
  }

  /**
   * dma_alloc_from_pool(): the pool of the zone the device's coherent mask picks, then the
   * fallbacks, skipping memory the device cannot address (dma_coherent_ok()).
   */
  private allocFromAtomicPools(dev: number, size: number): number | undefined {
    const bits = this.config.devices.find((d) => d.id === dev)?.dmaMask ?? 64;
    for (const zone of atomicPoolOrder(zoneForMask(bits))) {
      const atomic = this.atomicPools.find((p) => p.zone === zone);
      const gpa = atomic?.alloc(size / SZ_4K);
      if (atomic === undefined || gpa === undefined) continue;
      if (gpa + size <= 2 ** bits) return gpa;
      atomic.free(gpa, size / SZ_4K);
    }
    return undefined;
  }

  /** The policy's swiotlbSlots hook as the pool's slot chooser, its answer checked by the pool. */
  private slotChooser(): SwiotlbSlotChooser | undefined {
    const policy = this.policy;
    if (!policy.swiotlbSlots) return undefined;
    return (search, pool) =>
      this.env.guard(() => {
        const slot: unknown = policy.swiotlbSlots?.(this.ctx, search, pool);
        if (typeof slot !== 'number') throw new Error(`swiotlbSlots returned ${describeValue(slot)}, expected a slot index or -1`);
        return slot;
      });
  }

  /** Run a pool operation with the policy's slot chooser: a choice the pool refuses is the policy's error. */
  private withChooser<T>(fn: (choose: SwiotlbSlotChooser | undefined) => T): T {
    const choose = this.slotChooser();
    if (choose === undefined) return fn(undefined);
    return this.env.guard(() => {
      try {
        return fn(choose);
      } catch (error) {
        if (error instanceof SwiotlbChoiceError) throw new Error(`swiotlbSlots returned slot ${error.slot}: ${error.message}`, { cause: error });
        throw error;
      }
    });
  }

  freeCoherent(ref: number): OpOutcome {
    const n = this.liveBuffers.length;
    if (n === 0) return { skipped: 'no live coherent buffer' };
    const index = ((ref % n) + n) % n;
    const record = this.liveBuffers[index];
    if (record === undefined) return { skipped: 'no live coherent buffer' };
    this.releaseBuffer(record);
    this.liveBuffers.splice(index, 1);
    this.buffersView = this.liveBuffers.map((b) => b.view);
    return {};
  }

  /**
   * dma_map_single(). A driver keeps its mappings within dma_max_mapping_size() (for a bouncing
   * device, swiotlb_max_mapping_size()); `overMax` is a driver that ignores it, whose mapping the
   * kernel still serves when the slots fit (swiotlb-slots reports it).
   */
  mapSingle(dev: number, bytes: number, align: number | undefined, dir: DmaDirection, overMax = false): OpOutcome {
    if (!this.hasDevice(dev)) return { skipped: `no device ${dev}` };
    if (bytes <= 0) return { skipped: 'zero-byte mapping' };
    const attrs = this.accepted.has(dev) ? undefined : this.dmaAttrs(dev, dir);
    if (attrs !== undefined && !overMax) {
      const max = swiotlbMaxMappingSize(attrs.minAlignMask ?? 0);
      if (bytes > max) {
        return { skipped: `a driver keeps dma_map_single() within dma_max_mapping_size() = ${max} bytes (this op maps ${bytes}); "overMax": true is a driver that ignores it` };
      }
    }
    // The original buffer: kmalloc'd memory aligned to `align` (its offset in the page), else a page.
    const offset = align !== undefined && align > 0 && align < SZ_4K ? align : 0;
    const block = this.allocBlock(offset + bytes);
    if (block === undefined) return this.failed(`dma_map_single(${bytes}): no memory for the buffer`);
    const orig = block.gfn * SZ_4K + offset;
    if (dir !== 'from_device') this.fill(orig, bytes);
    // Every field in the literal, set or not: one object shape for the oracles that read them.
    const view: StreamingMapping = { id: this.nextMapping, dev, orig, bytes, dir, tlbAddr: undefined, iova: orig, minAlignMask: 0, allocAlignMask: undefined, segmentBoundaryMask: undefined };
    if (attrs !== undefined) {
      // dma_direct_map_page() -> swiotlb_map() (force_dma_unencrypted), or iommu-dma's bounce
      // with the IOVA granule as alloc_align_mask.
      view.minAlignMask = attrs.minAlignMask ?? 0;
      view.allocAlignMask = attrs.allocAlignMask ?? (this.isNested(dev) ? SZ_4K - 1 : 0);
      view.segmentBoundaryMask = attrs.segmentBoundaryMask ?? PCI_SEGMENT_BOUNDARY;
      const cpu = this.nextCpu();
      const result = this.withChooser((choose) =>
        this.pool.find(
          orig,
          bytes,
          {
            minAlignMask: view.minAlignMask,
            allocAlignMask: view.allocAlignMask,
            segmentBoundaryMask: view.segmentBoundaryMask,
            cpu,
          },
          choose,
        ),
      );
      if (!result.ok) {
        this.allocator.free(block.gfn, block.order);
        return this.failed(`dma_map_single(${bytes}): DMA mapping error (${result.reason})`);
      }
      view.tlbAddr = result.tlbAddr;
      view.iova = result.tlbAddr;
      this.bounceIf(view, 'map');
    }
    const record: MappingRecord = { view, block };
    if (this.isNested(dev)) {
      record.s1 = this.s1Map(dev, view.iova, bytes);
      view.iova = record.s1.iova + offsetIn(view.iova, SZ_4K);
    }
    this.nextMapping++;
    this.liveMappings.push(record);
    this.mappingsView = this.liveMappings.map((m) => m.view);
    return {};
  }

  unmapSingle(ref: number): OpOutcome {
    const n = this.liveMappings.length;
    if (n === 0) return { skipped: 'no live streaming mapping' };
    const index = ((ref % n) + n) % n;
    const record = this.liveMappings[index];
    if (record === undefined) return { skipped: 'no live streaming mapping' };
    this.releaseMapping(record);
    this.liveMappings.splice(index, 1);
    this.mappingsView = this.liveMappings.map((m) => m.view);
    return {};
  }

  /** dma_sync_single_for_cpu(): the slot's contents back into the original buffer. */
  sync(ref: number): OpOutcome {
    const record = this.liveMappings[((ref % this.liveMappings.length) + this.liveMappings.length) % this.liveMappings.length];
    if (record === undefined) return { skipped: 'no live streaming mapping' };
    this.bounceIf(record.view, 'sync');
    return {};
  }

  // ---- TIO -----------------------------------------------------------------------------------

  /**
   * Accept a TDISP device (tio.c: BIND, RUN, SDTE_WRITE). Linux requires the driver unbound while
   * the TDI changes state, so the device's DMA buffers and mappings are released first.
   */
  tdiAccept(dev: number): OpOutcome {
    const device = this.config.devices.find((d) => d.id === dev);
    if (device === undefined) return { skipped: `no device ${dev}` };
    if (!device.trusted) return { skipped: `device ${dev} is not a TDISP device (trusted: false)` };
    if (this.accepted.has(dev)) return { skipped: `device ${dev} is already accepted` };
    this.unbind(dev);
    const result = this.hv.tdiRun(dev);
    if (result === 'ok') this.accepted.add(dev);
    else this.log.errors.push(`TIO accept of device ${dev} failed: ${result}`);
    return {};
  }

  tdiUnlock(dev: number): OpOutcome {
    if (!this.accepted.has(dev)) return { skipped: `device ${dev} is not accepted` };
    this.unbind(dev);
    const result = this.hv.tdiStop(dev);
    this.accepted.delete(dev);
    if (result !== 'ok') this.log.errors.push(`TIO unlock of device ${dev} failed: ${result}`);
    return {};
  }

  // ---- internals -----------------------------------------------------------------------------

  private failed(message: string): OpOutcome {
    this.log.result = message;
    return {};
  }

  private hasDevice(dev: number): boolean {
    return this.config.devices.some((d) => d.id === dev);
  }

  private isNested(dev: number): boolean {
    return this.config.devices.find((d) => d.id === dev)?.iommu === 'nested';
  }

  private nextCpu(): number {
    return this.cpuTurn++ % this.config.cpus;
  }

  /** The gfns [first, last) of `pages` pages at `gpa`, clipped to guest memory. */
  private rangeGfns(gpa: number, pages: number): [number, number] {
    const first = Math.floor(gpa / SZ_4K);
    const last = Math.min(first + Math.max(0, pages), Math.floor(this.config.guestMemory / SZ_4K));
    return [first, Math.max(first, last)];
  }

  /** A buddy block for `bytes`, accepted (accept_memory() on allocation). */
  private allocBlock(bytes: number): { gfn: number; order: number } | undefined {
    const order = getOrder(bytes);
    const gfn = this.allocator.alloc(order);
    if (gfn === undefined) return undefined;
    const start = gfn * SZ_4K;
    const end = start + SZ_4K * 2 ** order;
    if (!this.memory.acceptUnits(start, end)) {
      // Unaccepted memory cannot be used: keep it out of the allocator.
      this.leak(start, end - start);
      return undefined;
    }
    return { gfn, order };
  }

  private leak(start: number, bytes: number): void {
    for (let gfn = start / SZ_4K; gfn < (start + bytes) / SZ_4K; gfn++) this.leaked.add(gfn);
  }

  /** The driver fills a buffer before handing it to the device: a CPU write of every 2K chunk
   *  (the unit of memory tokens and of swiotlb slots), so a bounce has something to carry. */
  private fill(gpa: number, bytes: number): void {
    const end = gpa + bytes;
    for (let at = gpa; at < end; at = alignDown(at, SZ_2K) + SZ_2K) {
      // From a 2K boundary on, the chunks that succeed at once go as one run.
      if (offsetIn(at, SZ_2K) === 0) {
        at += this.memory.writeChunks(at, Math.ceil((end - at) / SZ_2K), true) * SZ_2K;
        if (at >= end) return;
      }
      if (!this.memory.access(at, true, true)) return;
    }
  }

  /** The device's DMA attributes (the policy's dmaAttrs, checked), for a device that bounces. */
  private dmaAttrs(dev: number, dir: DmaDirection): DmaAttrs {
    const policy = this.policy;
    return policy.dmaAttrs ? this.env.guard(() => checkDmaAttrs(policy.dmaAttrs?.(this.ctx, { dev, dir }))) : {};
  }

  /** swiotlb_bounce() at one of its call sites, if the policy (default: the kernel) copies there. */
  private bounceIf(view: StreamingMapping, when: BounceRequest['when']): void {
    if (view.tlbAddr === undefined) return;
    const policy = this.policy;
    const request: BounceRequest = { map: view, when };
    const copies = policy.bounce
      ? this.env.guard(() => {
          const chosen: unknown = policy.bounce?.(this.ctx, request);
          if (typeof chosen !== 'boolean') throw new Error(`bounce returned ${describeValue(chosen)} for ${when}, expected true or false`);
          return chosen;
        })
      : linuxBounces(request);
    if (!copies) return;
    if (when === 'map') this.bounce(view, view.orig, true, view.tlbAddr, false);
    else this.bounce(view, view.tlbAddr, false, view.orig, true);
  }

  private bounce(view: StreamingMapping, from: number, fromPrivate: boolean, to: number, toPrivate: boolean): void {
    this.log.events.push({ kind: 'bounce', map: view.id, from, to, len: view.bytes });
    if (!this.memory.copy(from, fromPrivate, to, toPrivate, view.bytes)) {
      this.log.result = `swiotlb_bounce of mapping ${view.id} failed`;
    }
  }

  private s1Map(dev: number, gpa: number, bytes: number): { iova: number; len: number } {
    let allocator = this.iovas.get(dev);
    if (allocator === undefined) {
      allocator = new IovaAllocator();
      this.iovas.set(dev, allocator);
    }
    const start = alignDown(gpa, SZ_4K);
    const len = alignUp(gpa + bytes, SZ_4K) - start;
    const iova = allocator.alloc(len / SZ_4K);
    this.env.charge();
    this.machine.s1Map(dev, iova, start, len);
    return { iova, len };
  }

  private s1Unmap(dev: number, s1: { iova: number; len: number }): void {
    this.env.charge();
    this.machine.s1Unmap(dev, s1.iova, s1.len);
  }

  private releaseBuffer(record: BufferRecord): void {
    const view = record.view;
    if (record.s1) this.s1Unmap(view.dev, record.s1);
    const size = alignUp(view.bytes, SZ_4K);
    switch (view.source) {
      case 'pages': {
        const action = this.coherentFree(view);
        if (action === 'leak') {
          this.leak(view.gpa, size);
          break;
        }
        // dma_set_encrypted(): if the pages cannot be made private again they are leaked.
        if (action === 'encrypt' && !this.memory.setPagesState(view.gpa, view.gpa + size, 'private', 'convert')) {
          this.leak(view.gpa, size);
          this.log.result = `dma_free_coherent: set_memory_encrypted(${hexOf(view.gpa)}) failed, pages leaked`;
          break;
        }
        if (record.block) this.allocator.free(record.block.gfn, record.block.order);
        break;
      }
      case 'private':
        if (record.block) this.allocator.free(record.block.gfn, record.block.order);
        break;
      case 'atomic-pool':
        // The atomic pools never shrink and stay shared: "no re-encryption occurs in dma_direct_free()".
        this.atomicPools.find((atomic) => atomic.contains(view.gpa))?.free(view.gpa, size / SZ_4K);
        break;
      case 'swiotlb':
        if (record.tlbAddr !== undefined) this.pool.release(record.tlbAddr);
        break;
    }
    this.machine.recorder.touchGfnRange(view.gpa, size);
  }

  private coherentFree(buf: CoherentBuffer): CoherentFreeAction {
    const policy = this.policy;
    if (!policy.coherentFree) return 'encrypt';
    return this.env.guard(() => {
      const chosen: unknown = policy.coherentFree?.(this.ctx, { buf });
      if (chosen !== 'encrypt' && chosen !== 'leak' && chosen !== 'free-shared') {
        throw new Error(`coherentFree returned ${describeValue(chosen)}, expected "encrypt", "leak" or "free-shared"`);
      }
      return chosen;
    });
  }

  private releaseMapping(record: MappingRecord): void {
    const view = record.view;
    // swiotlb_tbl_unmap_single(): copy back for DMA_FROM_DEVICE / DMA_BIDIRECTIONAL, then release.
    if (view.tlbAddr !== undefined) {
      this.bounceIf(view, 'unmap');
      this.pool.release(view.tlbAddr);
    }
    if (record.s1) this.s1Unmap(view.dev, record.s1);
    this.allocator.free(record.block.gfn, record.block.order);
    this.machine.recorder.touchGfnRange(view.orig, view.bytes);
  }

  /** The driver goes away: its coherent buffers are freed and its mappings unmapped. */
  private unbind(dev: number): void {
    for (let i = this.liveBuffers.length - 1; i >= 0; i--) {
      const record = this.liveBuffers[i];
      if (record === undefined || record.view.dev !== dev) continue;
      this.releaseBuffer(record);
      this.liveBuffers.splice(i, 1);
    }
    for (let i = this.liveMappings.length - 1; i >= 0; i--) {
      const record = this.liveMappings[i];
      if (record === undefined || record.view.dev !== dev) continue;
      this.releaseMapping(record);
      this.liveMappings.splice(i, 1);
    }
    this.buffersView = this.liveBuffers.map((b) => b.view);
    this.mappingsView = this.liveMappings.map((m) => m.view);
  }
}
