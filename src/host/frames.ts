// The life of the host frames outside guest_memfd that back or are pinned for the guest: the VMM's
// RAM block, the frames the VMM faults in for shared pages, the VFIO pins that IO mappings hold on
// them, and the host's free pool they return to.
//
// Which frame backs a shared GPA is the config's `discard` world (DOMAIN.md "QEMU's memory"):
// - "on-private" (QEMU's default): a GPA's shared frame is its VMM RAM frame until the first
//   conversion to private (acceptance included: Linux accepts memory with a PSC to private,
//   snp_accept_memory()) discards it, kvm_convert_memory() -> ram_block_discard_range(); a later
//   share faults a new frame.
// - "none": on a conversion to private, kvm_convert_memory() skips ram_block_discard_range() when
//   the RAM block's page size is not the host's (`rb->page_size != qemu_host_page_size`:
//   hugetlb-backed RAM), so a shared GPA is always backed by its VMM RAM frame and a static VFIO
//   map of the RAM block never goes stale.
// - "in-place" (the proposed guest_memfd in-place conversion, iommufd mapping guest_memfd itself):
//   there is no separate shared memory; the GPA's guest_memfd frame backs it in both states and
//   only its RMP state changes (rmp_make_shared() / rmp_make_private()).
//
// A discarded frame that an IO mapping still pins stays the guest's ("not a
// use-after-free, because VFIO is still pinning the page", QEMU commit 852f0048f3): it returns to
// the host's free pool only when nothing backs or pins it any more. VFIO type1 releases the pins
// of an unmapped range only after the IOTLB flush (vfio_unmap_unpin(): iommu_unmap_fast() into a
// gather, iommu_iotlb_sync(), then vfio_unpin_pages_remote()), so the default IOMMU code here
// unpins at the device's iommu_flush. A freed frame may be handed out again for the next shared
// page, oldest first: a LIFO would hand a page the very frame it just lost, which hides every
// bug that maps the old frame instead of the new one.
//
// Pins are derived from the primitive calls (any io_map / io_unmap / iommu_flush, whoever makes
// it): runs of frames per device (what an unmap finds by IOVA) and a count per pinned frame (what
// the free pool asks). guest_memfd frames belong to the guest for the whole case in this model
// and are not tracked here.

import type { HostFrame } from '../api.ts';
import type { Machine } from '../model/machine.ts';
import { FRAMES_PER_2M, SZ_1G, SZ_4K, alignUp } from '../model/size.ts';
import type { PrimitiveCall } from '../model/types.ts';
import type { DiscardMode } from '../ops/types.ts';
import { GMEM_BASE, VMM_RAM_BASE } from '../model/layout.ts';

/** Frames [pfn, pfn + frames) an IO mapping of device memory at `iova` pins. */
interface PinRun {
  iova: number;
  pfn: number;
  frames: number;
}

const GMEM_PFN = GMEM_BASE / SZ_4K;
const VMM_PFN = VMM_RAM_BASE / SZ_4K;

export class HostFrames {
  /** First frame past the VMM RAM block: where frames faulted for shared pages come from. */
  private bump: number;
  private readonly ramFrames: number;
  /** Frames handed out after start (new shared backing): pfn -> the gfn it backs. */
  private readonly backs = new Map<number, number>();
  /** VMM RAM frames discarded, per 2M region of guest memory (one bit per frame). */
  private readonly ramDiscarded = new Map<number, Uint8Array>();
  /**
   * The host's free pool, oldest first, as runs of frames. Whether a frame is free is computed
   * (nothing backs or pins it); a run may name a frame handed out since, which is skipped.
   */
  private freeQueue: PinRun[] = [];
  private freeHead = 0;
  /** Pins held by each device's IO mappings, and those unmapped but waiting for the flush. */
  private readonly pins = new Map<number, PinRun[]>();
  private readonly unpinPending = new Map<number, PinRun[]>();
  /** Pins per frame, mapped or waiting for the flush, over every device. */
  private readonly pinCount = new Map<number, number>();

  constructor(
    private readonly machine: Machine,
    private readonly guestMemory: number,
    readonly discard: DiscardMode = 'on-private',
  ) {
    // In the in-place world guest memory has no VMM RAM block: guest_memfd is all of it.
    this.ramFrames = discard === 'in-place' ? 0 : Math.ceil(guestMemory / SZ_4K);
    this.bump = VMM_PFN + alignUp(guestMemory, SZ_1G) / SZ_4K;
  }

  // ---- the VMM's side ------------------------------------------------------------------------

  /** The HPA that backs the shared page at `gfn` once it is shared, by the discard world. */
  sharedFrameFor(gfn: number): number {
    if (this.discard === 'in-place') return GMEM_BASE + gfn * SZ_4K;
    if (this.ramFrameLive(gfn)) return (VMM_PFN + gfn) * SZ_4K;
    return this.allocShared(gfn, 1);
  }

  /**
   * The HPA of 2M of contiguous frames backing the whole 2M region `index` once it is shared: its
   * guest_memfd folio (in-place), its RAM block range while none of it was discarded, or a new
   * 2M run (a THP fault) when all of it was. A region only partly discarded has no single run:
   * undefined, and the caller backs it page by page.
   */
  sharedChunkFor(index: number): number | undefined {
    const gfn = index * FRAMES_PER_2M;
    if (this.discard === 'in-place') return GMEM_BASE + gfn * SZ_4K;
    let live = 0;
    for (let i = 0; i < FRAMES_PER_2M; i++) if (this.ramFrameLive(gfn + i)) live++;
    if (live === FRAMES_PER_2M) return (VMM_PFN + gfn) * SZ_4K;
    return live === 0 ? this.allocShared(gfn, FRAMES_PER_2M) : undefined;
  }

  /** The RAM block frame of `gfn` still backs it (never discarded, and inside guest memory). */
  private ramFrameLive(gfn: number): boolean {
    if (gfn < 0 || gfn >= this.ramFrames) return false;
    return this.ramDiscarded.get(Math.floor(gfn / FRAMES_PER_2M))?.[gfn % FRAMES_PER_2M] !== 1;
  }

  /**
   * A new frame (or 2M of contiguous frames) for the shared page(s) at `gfn`: 4K comes from the
   * free pool when it holds a frame, else (and always for 2M) from fresh memory. Returns the HPA.
   */
  private allocShared(gfn: number, frames: 1 | typeof FRAMES_PER_2M): number {
    let pfn: number | undefined;
    if (frames === 1) {
      while (pfn === undefined && this.freeHead < this.freeQueue.length) {
        const run = this.freeQueue[this.freeHead] as PinRun;
        const candidate = run.pfn;
        run.pfn++;
        if (--run.frames === 0) this.freeHead++;
        if (this.isFree(candidate)) pfn = candidate;
      }
      if (this.freeHead > 1024 && this.freeHead * 2 > this.freeQueue.length) {
        this.freeQueue = this.freeQueue.slice(this.freeHead);
        this.freeHead = 0;
      }
    }
    if (pfn === undefined) {
      pfn = alignUp(this.bump, frames);
      this.bump = pfn + frames;
    }
    for (let i = 0; i < frames; i++) this.backs.set(pfn + i, gfn + i);
    return pfn * SZ_4K;
  }

  /**
   * The shared page backed by the frame at `hpa` left the shared state: a frame faulted for it is
   * discarded; a RAM block frame is discarded as discardRam() says; a guest_memfd frame stays.
   */
  discardShared(hpa: number): void {
    const pfn = Math.floor(hpa / SZ_4K);
    if (this.backs.delete(pfn)) this.releaseIfUnused(pfn);
    else if (pfn >= VMM_PFN && pfn - VMM_PFN < this.ramFrames) this.discardRam((pfn - VMM_PFN) * SZ_4K, SZ_4K);
  }

  /**
   * The first conversion to private of [gpa, gpa + len) discards those pages' VMM RAM frames,
   * unless the RAM is hugetlb-backed ("none": QEMU skips ram_block_discard_range()).
   */
  discardRam(gpa: number, len: number): void {
    if (this.discard === 'none') return;
    const first = Math.floor(gpa / SZ_4K);
    const end = Math.min(this.ramFrames, Math.ceil((gpa + len) / SZ_4K));
    for (let gfn = first; gfn < end; gfn++) {
      const index = Math.floor(gfn / FRAMES_PER_2M);
      let bits = this.ramDiscarded.get(index);
      if (bits === undefined) {
        bits = new Uint8Array(FRAMES_PER_2M);
        this.ramDiscarded.set(index, bits);
      }
      if (bits[gfn % FRAMES_PER_2M] === 1) continue;
      bits[gfn % FRAMES_PER_2M] = 1;
      if (!this.backs.has(VMM_PFN + gfn)) this.releaseIfUnused(VMM_PFN + gfn);
    }
  }

  // ---- what a frame is now -------------------------------------------------------------------

  frame(hpa: number): HostFrame {
    const pfn = Math.floor(hpa / SZ_4K);
    if (pfn >= GMEM_PFN && pfn < VMM_PFN) {
      const gpa = (pfn - GMEM_PFN) * SZ_4K;
      return gpa < this.guestMemory ? { state: 'backing', kind: 'gmem', gpa } : { state: 'free', kind: 'host' };
    }
    const gfn = this.backingGfn(pfn);
    if (gfn !== undefined) return { state: 'backing', kind: 'vmm', gpa: gfn * SZ_4K };
    if (pfn >= VMM_PFN && this.isPinned(pfn)) return { state: 'pinned', kind: 'vmm' };
    return { state: 'free', kind: pfn >= VMM_PFN ? 'vmm' : 'host' };
  }

  private backingGfn(pfn: number): number | undefined {
    const gfn = this.backs.get(pfn);
    if (gfn !== undefined) return gfn;
    const ram = pfn - VMM_PFN;
    if (ram < 0 || ram >= this.ramFrames) return undefined;
    return this.ramDiscarded.get(Math.floor(ram / FRAMES_PER_2M))?.[ram % FRAMES_PER_2M] === 1 ? undefined : ram;
  }

  // ---- pins (VFIO type1) ---------------------------------------------------------------------

  /** Follow a primitive call: io_map pins, io_unmap queues the unpin, iommu_flush releases it. */
  observe(call: PrimitiveCall): void {
    const dev = call.args.dev;
    if (typeof dev !== 'number') return;
    switch (call.prim) {
      case 'io_map':
        this.pinMapped(dev, Number(call.args.gpa), Number(call.args.hpa), Number(call.args.len));
        return;
      case 'io_unmap': {
        const len = Number(call.args.len);
        this.queueUnpin(dev, Number(call.args.gpa), typeof call.result === 'number' ? Math.max(len, call.result) : len);
        return;
      }
      case 'iommu_flush':
        this.releasePins(dev);
        return;
    }
  }

  /**
   * vfio_unpin_pages_remote() for everything unmapped on `dev` since its last flush. The default
   * IOMMU code calls it right after the flush; a host calling it before the flush lets a device
   * reach freed frames through the IOTLB.
   */
  releasePins(dev: number): void {
    const pending = this.unpinPending.get(dev);
    if (pending === undefined || pending.length === 0) return;
    this.unpinPending.set(dev, []);
    for (const run of pending) {
      for (let pfn = run.pfn; pfn < run.pfn + run.frames; pfn++) {
        const count = (this.pinCount.get(pfn) ?? 1) - 1;
        if (count > 0) {
          this.pinCount.set(pfn, count);
          continue;
        }
        this.pinCount.delete(pfn);
        this.releaseIfUnused(pfn);
      }
    }
  }

  /** The leaves the map installed over [gpa, gpa + len) at hpa.. pin their frames, if they are the guest's. */
  private pinMapped(dev: number, gpa: number, hpa: number, len: number): void {
    if (hpa + len <= VMM_RAM_BASE) return;
    const runs = this.runsOf(this.pins, dev);
    for (const leaf of this.machine.device(dev).s2.leaves(gpa, gpa + len)) {
      const from = Math.max(gpa, leaf.iova);
      const to = Math.min(gpa + len, leaf.iova + leaf.size);
      if (to <= from || leaf.pa + (from - leaf.iova) !== hpa + (from - gpa)) continue;
      // Pinning a frame already back in the free pool does not make it the guest's again.
      let start = -1;
      for (let at = from; at <= to; at += SZ_4K) {
        const pfn = Math.floor((hpa + (at - gpa)) / SZ_4K);
        const owned = at < to && pfn >= VMM_PFN && this.frame(pfn * SZ_4K).state !== 'free';
        if (owned && start < 0) start = at;
        if (!owned && start >= 0) {
          const run = { iova: start, pfn: Math.floor((hpa + (start - gpa)) / SZ_4K), frames: (at - start) / SZ_4K };
          runs.push(run);
          for (let frame = run.pfn; frame < run.pfn + run.frames; frame++) this.pinCount.set(frame, (this.pinCount.get(frame) ?? 0) + 1);
          start = -1;
        }
      }
    }
  }

  /** Pin runs of `dev` inside [gpa, gpa + len) are no longer mapped: they wait for the flush. */
  private queueUnpin(dev: number, gpa: number, len: number): void {
    const runs = this.pins.get(dev);
    if (runs === undefined || runs.length === 0) return;
    const pending = this.runsOf(this.unpinPending, dev);
    const kept: PinRun[] = [];
    const end = gpa + len;
    for (const run of runs) {
      const runEnd = run.iova + run.frames * SZ_4K;
      if (runEnd <= gpa || run.iova >= end) {
        kept.push(run);
        continue;
      }
      const from = Math.max(gpa, run.iova);
      const to = Math.min(end, runEnd);
      if (from > run.iova) kept.push({ iova: run.iova, pfn: run.pfn, frames: (from - run.iova) / SZ_4K });
      pending.push({ iova: from, pfn: run.pfn + (from - run.iova) / SZ_4K, frames: (to - from) / SZ_4K });
      if (to < runEnd) kept.push({ iova: to, pfn: run.pfn + (to - run.iova) / SZ_4K, frames: (runEnd - to) / SZ_4K });
    }
    this.pins.set(dev, kept);
  }

  private runsOf(map: Map<number, PinRun[]>, dev: number): PinRun[] {
    let runs = map.get(dev);
    if (runs === undefined) {
      runs = [];
      map.set(dev, runs);
    }
    return runs;
  }

  private isPinned(pfn: number): boolean {
    return this.pinCount.has(pfn);
  }

  private isFree(pfn: number): boolean {
    return this.backingGfn(pfn) === undefined && !this.isPinned(pfn);
  }

  /** Back to the free pool when nothing backs or pins the frame any more. */
  private releaseIfUnused(pfn: number): void {
    if (pfn < VMM_PFN || !this.isFree(pfn)) return;
    const last = this.freeQueue[this.freeQueue.length - 1];
    if (last !== undefined && this.freeQueue.length > this.freeHead && last.pfn + last.frames === pfn) last.frames++;
    else this.freeQueue.push({ iova: 0, pfn, frames: 1 });
  }
}
