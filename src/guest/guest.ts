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

import type { CoherentBuffer, GuestPage, GuestView, StreamingMapping, SwiotlbView } from '../api.ts';
import type { Machine } from '../model/machine.ts';
import { SZ_2K, SZ_2M, SZ_4K, alignDown, alignUp } from '../model/size.ts';
import type { Config, DmaDirection } from '../ops/types.ts';
import type { CoherentSource, DmaAttrs, GuestContext, GuestPolicy, SwiotlbPlacement } from '../policies/types.ts';
import type { ActorEnv } from '../host/env.ts';
import { AtomicPool, IovaAllocator, MAX_PAGE_ORDER, PageAllocator, getOrder } from './allocator.ts';
import type { Hypervisor } from './ghcb.ts';
import { GuestMemory, type GuestLog } from './memory.ts';
import { ACCEPTED, SHARED } from './pages.ts';
import { IO_TLB_MAX_BYTES, SwiotlbPool, swiotlbGeometry } from './swiotlb.ts';

const COHERENT_SOURCES: readonly CoherentSource[] = ['atomic-pool', 'pages', 'swiotlb', 'private'];

/** PCI devices get a 4G segment boundary (pci_device_add()). */
const PCI_SEGMENT_BOUNDARY = 0xffffffff;
/** The low-memory limit below which memblock places the swiotlb (ARCH_LOW_ADDRESS_LIMIT). */
const LOW_LIMIT = 4 * 1024 ** 3;
/** Pages of earlier top-down boot allocations above the pool (page tables, setup data...). */
const TOP_RESERVED = 5 * SZ_4K;

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

export class Guest implements GuestView {
  readonly log: GuestLog = { events: [], errors: [], result: undefined };
  readonly memory: GuestMemory;
  readonly ctx: GuestContext;
  readonly pool: SwiotlbPool;
  readonly atomicPool: AtomicPool | undefined;
  readonly allocator: PageAllocator;
  readonly leaked = new Set<number>();
  private readonly accepted = new Set<number>();
  private readonly rawShared = new Set<number>();
  private readonly iovas = new Map<number, IovaAllocator>();
  private readonly liveBuffers: BufferRecord[] = [];
  private readonly liveMappings: MappingRecord[] = [];
  private buffersView: CoherentBuffer[] = [];
  private mappingsView: StreamingMapping[] = [];
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
    this.ctx = {
      config,
      policy: policy.name,
      random: () => env.random(),
      page: (gfn) => this.memory.pages.page(gfn),
      tdiAccepted: (dev) => this.accepted.has(dev),
    };
    this.memory = new GuestMemory(machine, config, policy, this.ctx, env, hv, this.log);

    // The size Linux really allocates: whole segments, a power of two, at least one segment per area.
    const bytes = swiotlbGeometry({ bytes: config.swiotlb, cpus: config.cpus }).bytes;
    const request = { guestMemory: config.guestMemory, bytes, cpus: config.cpus };
    const placement = policy.swiotlbPool
      ? env.guard(() => policy.swiotlbPool?.(this.ctx, request) ?? linuxSwiotlbPlacement(config.guestMemory, bytes))
      : linuxSwiotlbPlacement(config.guestMemory, bytes);
    this.pool = env.guard(() => {
      const pool = new SwiotlbPool({ base: placement.base, bytes: placement.bytes, cpus: config.cpus, forAlloc: placement.forAlloc === true });
      if (pool.end > config.guestMemory) throw new Error(`swiotlbPool: the pool ${hexOf(pool.start)}..${hexOf(pool.end)} ends past guest memory`);
      return pool;
    });
    const totalPages = Math.floor(config.guestMemory / SZ_4K);
    this.allocator = new PageAllocator(totalPages, [{ start: this.pool.start / SZ_4K, end: Math.ceil(this.pool.end / SZ_4K) }]);
    const atomicBytes = policy.atomicPoolBytes
      ? env.guard(() => policy.atomicPoolBytes?.(this.ctx, { guestMemory: config.guestMemory }) ?? 0)
      : linuxAtomicPoolBytes(config.guestMemory);
    this.atomicPool = undefined;
    // No silent correction: one atomic pool chunk is at most MAX_PAGE_ORDER (atomic_pool_expand()).
    if (!Number.isSafeInteger(atomicBytes) || atomicBytes < 0 || atomicBytes > SZ_4K * 2 ** MAX_PAGE_ORDER) {
      const bad = atomicBytes;
      env.guard(() => {
        throw new Error(`atomicPoolBytes returned ${JSON.stringify(bad)}: expected a byte count from 0 to ${SZ_4K * 2 ** MAX_PAGE_ORDER} (MAX_PAGE_ORDER)`);
      });
    }
    if (atomicBytes > 0) {
      const order = getOrder(atomicBytes);
      const gfn = this.allocator.alloc(order);
      if (gfn !== undefined) this.atomicPool = new AtomicPool(gfn * SZ_4K, SZ_4K * 2 ** order);
    }
  }

  /** Boot: swiotlb_update_mem_attributes() and atomic_pool_expand() make their pools shared. */
  boot(): void {
    const pool = this.pool;
    if (this.memory.acceptUnits(pool.start, pool.end)) this.memory.setPagesState(pool.start, pool.end, 'shared', 'convert');
    const atomic = this.atomicPool;
    if (atomic && this.memory.acceptUnits(atomic.base, atomic.base + atomic.bytes)) {
      this.memory.setPagesState(atomic.base, atomic.base + atomic.bytes, 'shared', 'convert');
    }
  }

  // ---- GuestView -----------------------------------------------------------------------------

  page(gfn: number): GuestPage | undefined {
    return this.memory.pages.page(gfn);
  }

  pages(): Iterable<number> {
    return this.memory.pages.pages();
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

  /** The step log, handed over and reset. */
  takeLog(): { events: GuestLog['events']; errors: string[]; result: string | undefined } {
    const taken = { events: this.log.events, errors: this.log.errors, result: this.log.result };
    this.log.events = [];
    this.log.errors = [];
    this.log.result = undefined;
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

  /** A kernel user converts pages it owns (set_memory_decrypted()); pages of the DMA layer are left alone. */
  share(gpa: number, pages: number): OpOutcome {
    const eligible: number[] = [];
    for (const gfn of this.rangeGfns(gpa, pages)) {
      if (this.memory.pages.has(gfn, SHARED) || !this.allocator.isFree(gfn)) continue;
      eligible.push(gfn);
    }
    if (eligible.length === 0) return { skipped: 'no page in the range can be shared (beyond memory, already shared, or owned by the DMA layer)' };
    for (const [first, count] of runsOf(eligible)) {
      const start = first * SZ_4K;
      const end = start + count * SZ_4K;
      // The pages are allocated (and so accepted) before anyone decrypts them.
      for (let gfn = first; gfn < first + count; gfn++) this.allocator.take(gfn);
      if (!this.memory.acceptUnits(start, end) || !this.memory.setPagesState(start, end, 'shared', 'convert')) {
        this.log.result = `set_memory_decrypted(${hexOf(start)}, ${count}) failed`;
      }
      for (let gfn = first; gfn < first + count; gfn++) {
        if (this.memory.pages.has(gfn, SHARED)) this.rawShared.add(gfn);
        else this.allocator.release(gfn);
      }
    }
    return {};
  }

  unshare(gpa: number, pages: number): OpOutcome {
    const eligible: number[] = [];
    for (const gfn of this.rangeGfns(gpa, pages)) if (this.rawShared.has(gfn)) eligible.push(gfn);
    if (eligible.length === 0) return { skipped: 'no page in the range was shared by share' };
    for (const [first, count] of runsOf(eligible)) {
      const start = first * SZ_4K;
      if (!this.memory.setPagesState(start, start + count * SZ_4K, 'private', 'convert')) {
        this.log.result = `set_memory_encrypted(${hexOf(start)}, ${count}) failed`;
      }
      for (let gfn = first; gfn < first + count; gfn++) {
        if (this.memory.pages.has(gfn, SHARED)) continue;
        this.rawShared.delete(gfn);
        this.allocator.release(gfn);
      }
    }
    return {};
  }

  touch(gpa: number, write: boolean): OpOutcome {
    const at = alignDown(gpa, SZ_4K);
    if (at >= this.config.guestMemory) return { skipped: `gpa ${hexOf(gpa)} is beyond guest memory` };
    const gfn = at / SZ_4K;
    if (!this.memory.pages.has(gfn, ACCEPTED) && !this.memory.acceptUnits(at, at + SZ_4K)) return {};
    // Only swiotlb writes into its slots, and a driver does not write a buffer it handed to a
    // device: a write there would be a kernel bug, so it becomes a read.
    const owned = this.pool.contains(at) || this.liveMappings.some((m) => at >= alignDown(m.view.orig, SZ_4K) && at < m.view.orig + m.view.bytes);
    this.memory.access(at, write && !owned, !this.memory.pages.has(gfn, SHARED));
    return {};
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
          if (!COHERENT_SOURCES.includes(chosen as CoherentSource)) throw new Error(`coherentSource returned ${JSON.stringify(chosen)}`);
          if (chosen === 'swiotlb' && !this.pool.forAlloc) throw new Error('coherentSource chose swiotlb, but swiotlbPool did not ask for forAlloc');
          if (chosen === 'atomic-pool' && this.atomicPool === undefined) throw new Error('coherentSource chose the atomic pool, but atomicPoolBytes gave none');
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
        const gpa = this.atomicPool?.alloc(size / SZ_4K);
        if (gpa === undefined) return this.failed(`dma_alloc_coherent(${bytes}, GFP_ATOMIC): atomic pool exhausted`);
        record.view.gpa = gpa;
        break;
      }
      case 'swiotlb': {
        const result = size <= IO_TLB_MAX_BYTES ? this.pool.allocCoherent(size, { cpu: this.nextCpu() }) : this.pool.allocChunk(size, SZ_2M);
        if (!result.ok) return this.failed(`dma_alloc_coherent(${bytes}) from swiotlb: ${result.reason}`);
        record.tlbAddr = result.tlbAddr;
        record.view.gpa = result.tlbAddr;
        break;
      }
    }
    record.view.iova = record.view.gpa;
    if (this.isNested(dev)) {
      record.s1 = this.s1Map(dev, record.view.gpa, bytes);
      record.view.iova = record.s1.iova + (record.view.gpa % SZ_4K);
    }
    this.nextBuffer++;
    this.machine.recorder.touchGfnRange(record.view.gpa, size);
    this.liveBuffers.push(record);
    this.buffersView = this.liveBuffers.map((b) => b.view);
    return {};
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

  mapSingle(dev: number, bytes: number, align: number | undefined, dir: DmaDirection): OpOutcome {
    if (!this.hasDevice(dev)) return { skipped: `no device ${dev}` };
    if (bytes <= 0) return { skipped: 'zero-byte mapping' };
    // The original buffer: kmalloc'd memory aligned to `align` (its offset in the page), else a page.
    const offset = align !== undefined && align > 0 && align < SZ_4K ? align : 0;
    const block = this.allocBlock(offset + bytes);
    if (block === undefined) return this.failed(`dma_map_single(${bytes}): no memory for the buffer`);
    const orig = block.gfn * SZ_4K + offset;
    if (dir !== 'from_device') this.fill(orig, bytes);
    const view: StreamingMapping = { id: this.nextMapping, dev, orig, bytes, dir, tlbAddr: undefined, iova: orig, minAlignMask: 0 };
    if (!this.accepted.has(dev)) {
      // dma_direct_map_page() -> swiotlb_map() (force_dma_unencrypted), or iommu-dma's bounce
      // with the IOVA granule as alloc_align_mask.
      const policy = this.policy;
      const attrs: DmaAttrs = policy.dmaAttrs ? this.env.guard(() => policy.dmaAttrs?.(this.ctx, { dev, dir }) ?? {}) : {};
      view.minAlignMask = attrs.minAlignMask ?? 0;
      const result = this.pool.find(orig, bytes, {
        minAlignMask: attrs.minAlignMask ?? 0,
        allocAlignMask: this.isNested(dev) ? SZ_4K - 1 : 0,
        segmentBoundaryMask: attrs.segmentBoundaryMask ?? PCI_SEGMENT_BOUNDARY,
        cpu: this.nextCpu(),
      });
      if (!result.ok) {
        this.allocator.free(block.gfn, block.order);
        return this.failed(`dma_map_single(${bytes}): DMA mapping error (${result.reason})`);
      }
      view.tlbAddr = result.tlbAddr;
      // swiotlb_tbl_map_single() bounces the original into the slot whatever the direction
      // (so a partial device write cannot leak stale slot contents: aa6f8dcbab47).
      this.bounce(view, orig, true, result.tlbAddr, false);
      view.iova = result.tlbAddr;
    }
    const record: MappingRecord = { view, block };
    if (this.isNested(dev)) {
      record.s1 = this.s1Map(dev, view.iova, bytes);
      view.iova = record.s1.iova + (view.iova % SZ_4K);
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
    const view = record.view;
    if (view.tlbAddr !== undefined && view.dir !== 'to_device') this.bounce(view, view.tlbAddr, false, view.orig, true);
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

  private *rangeGfns(gpa: number, pages: number): Generator<number> {
    const first = Math.floor(gpa / SZ_4K);
    const last = Math.min(first + Math.max(0, pages), Math.floor(this.config.guestMemory / SZ_4K));
    for (let gfn = first; gfn < last; gfn++) yield gfn;
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
    for (let at = gpa; at < gpa + bytes; at = alignDown(at, SZ_2K) + SZ_2K) {
      if (!this.memory.access(at, true, true)) return;
    }
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
        // dma_set_encrypted(): if the pages cannot be made private again they are leaked.
        if (!this.memory.setPagesState(view.gpa, view.gpa + size, 'private', 'convert')) {
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
        this.atomicPool?.free(view.gpa, size / SZ_4K);
        break;
      case 'swiotlb':
        if (record.tlbAddr !== undefined) this.pool.release(record.tlbAddr);
        break;
    }
    this.machine.recorder.touchGfnRange(view.gpa, size);
  }

  private releaseMapping(record: MappingRecord): void {
    const view = record.view;
    // swiotlb_tbl_unmap_single(): copy back for DMA_FROM_DEVICE / DMA_BIDIRECTIONAL, then release.
    if (view.tlbAddr !== undefined) {
      if (view.dir !== 'to_device') this.bounce(view, view.tlbAddr, false, view.orig, true);
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

/** Consecutive gfns as [first, count] runs. */
function* runsOf(gfns: readonly number[]): Generator<[number, number]> {
  let first: number | undefined;
  let count = 0;
  for (const gfn of gfns) {
    if (first !== undefined && gfn === first + count) {
      count++;
      continue;
    }
    if (first !== undefined) yield [first, count];
    first = gfn;
    count = 1;
  }
  if (first !== undefined) yield [first, count];
}
