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
import { LinearRuns } from '../model/linear-runs.ts';
import { FRAMES_PER_2M, SZ_1G, SZ_4K, alignUp, offsetIn } from '../model/size.ts';
import { type CallRun, type PrimitiveCall, argAt, callAt } from '../model/types.ts';
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
// Frame state is kept as runs (LinearRuns): which gfn each frame handed out after start backs
// (frames backing consecutive gfns are one run: a 2M fault, a stretch of the free pool), which RAM
// block frames were discarded, and the pin counts. A range operation, and a walk of a 1 TiB
// guest's 1G swiotlb pool, then costs per run, not per 2M chunk (issue 15).

/**
 * Sorts `runs[from..]` by address in place: an insertion sort, stable and allocation-free, as the
 * runs an unmap reaches are few.
 */
function sortByIova(runs: PinRun[], from: number): void {
  for (let i = from + 1; i < runs.length; i++) {
    const run = runs[i]!;
    let j = i;
    for (; j > from && runs[j - 1]!.iova > run.iova; j--) runs[j] = runs[j - 1]!;
    runs[j] = run;
  }
}

/** The primitives VFIO's pin tracking follows (HostFrames.observe()). */
const followsPins = (prim: string): boolean => prim === 'io_map' || prim === 'io_unmap' || prim === 'iommu_flush';

export class HostFrames {
  /** First frame past the VMM RAM block: where frames faulted for shared pages come from. */
  private bump: number;
  private readonly ramFrames: number;
  /** Frames handed out after start (new shared backing): the gfn each backs, step 1. */
  private readonly backs = new LinearRuns();
  /** VMM RAM block frames discarded, by gfn (value 1, step 0; no run: still backing their gfn). */
  private readonly ramDiscarded = new LinearRuns();
  /**
   * The host's free pool, oldest first, as runs of frames. Whether a frame is free is computed
   * (nothing backs or pins it); a run may name a frame handed out since, which is skipped.
   */
  private freeQueue: PinRun[] = [];
  private freeHead = 0;
  /**
   * Pins held by each device's IO mappings, and those unmapped but waiting for the flush, in the
   * order they were made (the order the frames return to the free pool). A run continuing the
   * previous one in both IOVA and frames extends it.
   */
  private readonly pins = new Map<number, PinRun[]>();
  private readonly unpinPending = new Map<number, PinRun[]>();
  /**
   * Pins per frame (mapped or waiting for the flush, over every device), as runs of frames with
   * the same count (step 0); no run: none. A pool mapped whole is one run: per 2M chunk it was
   * 512 entries for a 1 TiB guest's 1G pool, each written again by every map and unmap of it.
   */
  private readonly pinCount = new LinearRuns();

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
   * sharedFrameFor() of pages gfn, gfn + 1, ... (at most `count`, one 2M region), in order, for the
   * leading pages whose frames follow each other: the first one's HPA is `sharedRunHpa`, the
   * return value how many (at least one). What a conversion to shared asks page by page, a
   * stretch at a time: a stretch of RAM block frames still live, of frames from one free run of
   * the pool, or of fresh frames.
   */
  sharedFrameRun(gfn: number, count: number): number {
    if (this.discard === 'in-place') {
      this.sharedRunHpa = GMEM_BASE + gfn * SZ_4K;
      return count;
    }
    // Pages whose RAM frame is live, or pages whose RAM frame is gone: one kind per stretch.
    const live = this.ramFrameLive(gfn);
    let n = 1;
    while (n < count && this.ramFrameLive(gfn + n) === live) n++;
    if (live) {
      this.sharedRunHpa = (VMM_PFN + gfn) * SZ_4K;
      return n;
    }
    const pfn = Math.floor(this.allocShared(gfn, 1) / SZ_4K);
    // The frames after it that allocShared() would hand out next: the rest of its free run in the
    // pool while they stay free, else (the pool spent) fresh ones; within its 2M chunk.
    let taken = 1;
    const limit = Math.min(n, (Math.floor(pfn / FRAMES_PER_2M) + 1) * FRAMES_PER_2M - pfn);
    if (limit > 1) {
      const run = this.freeHead < this.freeQueue.length ? this.freeQueue[this.freeHead] : undefined;
      if (run !== undefined && run.pfn === pfn + 1) {
        // The free frames from pfn + 1 (none when it is owned again) up to the run's end.
        taken = this.sameOwnershipEnd(pfn, pfn + Math.min(limit, run.frames + 1), false) - pfn;
        run.frames -= taken - 1;
        run.pfn += taken - 1;
        if (run.frames === 0) this.freeHead++;
      } else if (run === undefined && this.bump === pfn + 1) {
        taken = limit;
        this.bump += taken - 1;
      }
      if (taken > 1) this.backRun(pfn + 1, taken - 1, gfn + 1);
    }
    this.sharedRunHpa = pfn * SZ_4K;
    return taken;
  }

  /** The HPA of the first frame sharedFrameRun() gave. */
  sharedRunHpa = 0;

  /** Frames [pfn, pfn + frames) now back gfn, gfn + 1, ... (what allocShared() notes per frame). */
  private backRun(pfn: number, frames: number, gfn: number): void {
    this.backs.set(pfn, pfn + frames, gfn, 1);
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
    const live = this.ramLiveIn(index);
    if (live === FRAMES_PER_2M) return (VMM_PFN + gfn) * SZ_4K;
    return live === 0 ? this.allocShared(gfn, FRAMES_PER_2M) : undefined;
  }

  /** The RAM block frame of `gfn` still backs it (never discarded, and inside guest memory). */
  private ramFrameLive(gfn: number): boolean {
    if (gfn < 0 || gfn >= this.ramFrames) return false;
    return this.ramDiscarded.get(gfn) === undefined;
  }

  /** RAM block frames of region `index` that still back their gfn. */
  private ramLiveIn(index: number): number {
    const first = index * FRAMES_PER_2M;
    const end = first + Math.max(0, Math.min(FRAMES_PER_2M, this.ramFrames - first));
    const discarded = this.ramDiscarded;
    let live = 0;
    for (let gfn = first; gfn < end; ) {
      const stop = Math.min(end, discarded.stretchEnd(gfn));
      if (discarded.get(gfn) === undefined) live += stop - gfn;
      gfn = stop;
    }
    return live;
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
        // Frames handed out or pinned again since they were queued leave the queue, a stretch at
        // a time (a 1G pool's frames unpinned at a flush and pinned again by the next map would
        // otherwise be skipped one by one).
        let next = candidate + 1;
        if (this.isFree(candidate)) pfn = candidate;
        else next = this.sameOwnershipEnd(candidate, candidate + run.frames, true);
        run.frames -= next - candidate;
        run.pfn = next;
        if (run.frames === 0) this.freeHead++;
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
    this.backs.set(pfn, pfn + frames, gfn, 1);
    return pfn * SZ_4K;
  }

  /**
   * The shared page backed by the frame at `hpa` left the shared state: a frame faulted for it is
   * discarded; a RAM block frame is discarded as discardRam() says; a guest_memfd frame stays.
   */
  discardShared(hpa: number): void {
    this.discardSharedRange(hpa, 1);
  }

  /** discardShared() for each of the frames [hpa, hpa + frames * 4K), in order. */
  discardSharedRange(hpa: number, frames: number): void {
    const backs = this.backs;
    let pfn = Math.floor(hpa / SZ_4K);
    const end = pfn + frames;
    const ramEnd = VMM_PFN + this.ramFrames;
    while (pfn < end) {
      const stop = Math.min(end, backs.stretchEnd(pfn));
      if (backs.get(pfn) !== undefined) {
        // Frames handed out after start: no longer backing anything, each back to the pool.
        backs.clear(pfn, stop);
        this.releaseRange(pfn, stop - pfn);
      } else {
        // RAM block frames: discarded (guest_memfd frames stay).
        const from = Math.max(pfn, VMM_PFN);
        const to = Math.min(stop, ramEnd);
        if (from < to) this.discardRam((from - VMM_PFN) * SZ_4K, (to - from) * SZ_4K);
      }
      pfn = stop;
    }
  }

  /**
   * The first conversion to private of [gpa, gpa + len) discards those pages' VMM RAM frames,
   * unless the RAM is hugetlb-backed ("none": QEMU skips ram_block_discard_range()).
   */
  discardRam(gpa: number, len: number): void {
    if (this.discard === 'none') return;
    const discarded = this.ramDiscarded;
    let gfn = Math.floor(gpa / SZ_4K);
    const end = Math.min(this.ramFrames, Math.ceil((gpa + len) / SZ_4K));
    while (gfn < end) {
      const stop = Math.min(end, discarded.stretchEnd(gfn));
      if (discarded.get(gfn) === undefined) {
        // Newly discarded: each frame goes back to the pool unless something pins it.
        discarded.set(gfn, stop, 1, 0);
        this.releaseRange(VMM_PFN + gfn, stop - gfn);
      }
      gfn = stop;
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

  /**
   * Whether the frame at `hpa` backs the guest page at `gpa` now: frame(hpa) is a guest_memfd
   * frame of the guest (it backs the GPA it is at, whatever the NPT says), or a VMM frame backing
   * `gpa`. Without building a HostFrame (backsRun() asks it of a stretch).
   */
  backsPage(hpa: number, gpa: number): boolean {
    const pfn = Math.floor(hpa / SZ_4K);
    if (pfn >= GMEM_PFN && pfn < VMM_PFN) return (pfn - GMEM_PFN) * SZ_4K < this.guestMemory;
    const gfn = this.backingGfn(pfn);
    return gfn !== undefined && gfn * SZ_4K === gpa;
  }

  /**
   * How many of the frames `pfn`, `pfn + 1`, ... (at most `count`) back the pages `gfn`, `gfn + 1`,
   * ... one for one, as backsPage() says of each: a run of frames at a time (guest_memfd frames,
   * RAM block frames never discarded, frames handed out for consecutive gfns), so the engine's
   * check of a DMA of hundreds of MiB costs per run, not per page (world.ts strayFrames()).
   */
  backsRun(pfn: number, gfn: number, count: number): number {
    let n = 0;
    while (n < count) {
      const p = pfn + n;
      const g = gfn + n;
      if (p >= GMEM_PFN && p < VMM_PFN) {
        // A guest_memfd frame backs its page while inside guest memory.
        const inside = Math.min(count - n, VMM_PFN - p, GMEM_PFN + Math.ceil(this.guestMemory / SZ_4K) - p);
        if (inside <= 0) return n;
        n += inside;
        continue;
      }
      const stop = Math.min(count - n, this.backs.stretchEnd(p) - p);
      // A frame handed out since start backs the gfn its run says; any other, as a RAM block
      // frame, its own gfn while live.
      const handedOut = this.backs.get(p);
      const backed = handedOut !== undefined ? (handedOut === g ? stop : 0) : p - VMM_PFN === g ? this.ramLiveRun(g, stop) : 0;
      n += backed;
      if (backed < stop) return n;
    }
    return n;
  }

  /** How many RAM block frames from `gfn` (at most `count`) still back their gfn (ramFrameLive()). */
  private ramLiveRun(gfn: number, count: number): number {
    if (gfn < 0) return 0;
    const limit = Math.min(count, this.ramFrames - gfn);
    if (limit <= 0 || this.ramDiscarded.get(gfn) !== undefined) return 0;
    return Math.min(limit, this.ramDiscarded.stretchEnd(gfn) - gfn);
  }

  private backingGfn(pfn: number): number | undefined {
    const gfn = this.backs.get(pfn);
    if (gfn !== undefined) return gfn;
    const ram = pfn - VMM_PFN;
    return this.ramFrameLive(ram) ? ram : undefined;
  }

  // ---- pins (VFIO type1) ---------------------------------------------------------------------

  /** A run of calls (the recorder's CallRun): followed call by call, when it is one of these. */
  observeRun(run: CallRun): void {
    if (!followsPins(run.prim)) return;
    const dev = run.args.dev;
    if (run.prim === 'io_unmap' && typeof dev === 'number' && !run.strided.includes('dev')) {
      // The run of unmaps a leaf-by-leaf unmap makes (Iommu.unmapLeaves()): read in place. Adjacent
      // 4K leaves, each unpinning just itself (a result that is no number, or one at most its
      // length), over pin runs that do not overlap (VFIO pins an IOVA twice when a map finds the
      // same output already there): then a 4K leaf lies in one pin run, and one queueUnpin() of
      // the stretch queues what one per leaf would, in address order, where one per leaf rebuilt
      // the device's runs leaf by leaf.
      const len = argAt(run, 'len', 0);
      const gpa = argAt(run, 'gpa', 0);
      const fits = typeof run.result !== 'number' || run.result <= len;
      if (len === SZ_4K && run.stride === SZ_4K && run.strided.length === 1 && run.strided[0] === 'gpa' && fits && !this.pinsOverlap(dev, gpa, gpa + run.count * SZ_4K)) {
        const queued = this.unpinPending.get(dev)?.length ?? 0;
        this.queueUnpin(dev, gpa, run.count * SZ_4K);
        // What the stretch queued, by address (the pin runs are in the order they were pinned).
        const pending = this.unpinPending.get(dev);
        if (pending !== undefined) sortByIova(pending, queued);
        return;
      }
      for (let i = 0; i < run.count; i++) this.unmapped(dev, argAt(run, 'gpa', i), argAt(run, 'len', i), run.result);
      return;
    }
    if (run.prim === 'io_map' && typeof dev === 'number' && !run.strided.includes('dev')) {
      // The io_map run of prepared fault-ins (Machine.pvalidateFaultIn()), the only one made: its
      // guest_memfd frames lie below the VMM's memory, which is all pinMapped() follows. Any other
      // goes call by call below.
      if (argAt(run, 'hpa', 0) + argAt(run, 'len', 0) <= VMM_RAM_BASE && argAt(run, 'hpa', run.count - 1) + argAt(run, 'len', run.count - 1) <= VMM_RAM_BASE) return;
    }
    for (let i = 0; i < run.count; i++) this.observe(callAt(run, i));
  }

  /** Follow a primitive call: io_map pins, io_unmap queues the unpin, iommu_flush releases it. */
  observe(call: PrimitiveCall): void {
    // The name first: every call comes here, and reading `args.dev` from args of a dozen shapes
    // is the slow part for the many calls that are none of these.
    const prim = call.prim;
    if (!followsPins(prim)) return;
    const dev = call.args.dev;
    if (typeof dev !== 'number') return;
    switch (prim) {
      case 'io_map':
        this.pinMapped(dev, Number(call.args.gpa), Number(call.args.hpa), Number(call.args.len), call.result === call.args.len);
        return;
      case 'io_unmap':
        this.unmapped(dev, Number(call.args.gpa), Number(call.args.len), call.result);
        return;
      case 'iommu_flush':
        this.releasePins(dev);
        return;
    }
  }

  /** An io_unmap of `len` bytes at `gpa` on `dev` that returned `result`: its pins wait for the flush. */
  private unmapped(dev: number, gpa: number, len: number, result: unknown): void {
    this.queueUnpin(dev, gpa, typeof result === 'number' ? Math.max(len, result) : len);
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
      this.addPins(run.pfn, run.frames, -1);
      this.releaseRange(run.pfn, run.frames);
    }
  }

  /**
   * The leaves the map installed over [gpa, gpa + len) at hpa.. pin their frames, if they are the
   * guest's: every part of the range that translates to hpa + offset (the new leaves, or a leaf
   * already there with the same output). iommu_map() rejects an unaligned range before it
   * installs anything, so that pins nothing.
   */
  private pinMapped(dev: number, gpa: number, hpa: number, len: number, whole: boolean): void {
    if (hpa + len <= VMM_RAM_BASE) return;
    if (offsetIn(gpa, SZ_4K) !== 0 || offsetIn(hpa, SZ_4K) !== 0 || offsetIn(len, SZ_4K) !== 0) return;
    const runs = this.runsOf(this.pins, dev);
    if (whole) {
      // The map installed the whole range just now: all of it translates to hpa + offset.
      this.pinOwned(runs, gpa, hpa / SZ_4K, len / SZ_4K);
      return;
    }
    const s2 = this.machine.device(dev).s2;
    const end = gpa + len;
    let at = gpa;
    while (at < end) {
      const linear = s2.linearEnd(at, end, hpa + (at - gpa));
      if (linear > at) {
        this.pinOwned(runs, at, (hpa + (at - gpa)) / SZ_4K, (linear - at) / SZ_4K);
        at = linear;
        continue;
      }
      // The leaf at `at` maps elsewhere (or nothing does): go on after it.
      const leaf = this.leafScratch;
      at = s2.leafInto(at, leaf) ? Math.min(end, leaf.iova + leaf.size) : s2.nextMapped(at, end);
    }
  }

  private readonly leafScratch = { iova: 0, pa: 0, size: 0 };

  /** Pins the frames of [pfn, pfn + frames) mapped at `iova` that are the guest's, run by run. */
  private pinOwned(runs: PinRun[], iova: number, pfn: number, frames: number): void {
    // Pinning a frame already back in the free pool does not make it the guest's again.
    const end = pfn + frames;
    let at = pfn;
    while (at < end) {
      const owned = this.isOwned(at);
      const next = this.sameOwnershipEnd(at, end, owned);
      if (owned) {
        const runIova = iova + (at - pfn) * SZ_4K;
        const last = runs[runs.length - 1];
        if (last !== undefined && last.iova + last.frames * SZ_4K === runIova && last.pfn + last.frames === at) last.frames += next - at;
        else runs.push({ iova: runIova, pfn: at, frames: next - at });
        this.addPins(at, next - at, 1);
      }
      at = next;
    }
  }

  /** Pin runs of `dev` inside [gpa, gpa + len) are no longer mapped: they wait for the flush. */
  private queueUnpin(dev: number, gpa: number, len: number): void {
    const runs = this.pins.get(dev);
    if (runs === undefined || runs.length === 0) return;
    const end = gpa + len;
    let touched = false;
    for (const run of runs) {
      if (run.iova + run.frames * SZ_4K > gpa && run.iova < end) {
        touched = true;
        break;
      }
    }
    if (!touched) return;
    const pending = this.runsOf(this.unpinPending, dev);
    const kept: PinRun[] = [];
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

  /** Whether two of `dev`'s pin runs that reach into [gpa, end) overlap each other. */
  private pinsOverlap(dev: number, gpa: number, end: number): boolean {
    const runs = this.pins.get(dev);
    if (runs === undefined) return false;
    const touching = this.touchingScratch;
    touching.length = 0;
    for (const run of runs) if (run.iova + run.frames * SZ_4K > gpa && run.iova < end) touching.push(run);
    // By address, then neighbours compared.
    sortByIova(touching, 0);
    let overlap = false;
    for (let i = 1; i < touching.length && !overlap; i++) overlap = touching[i - 1]!.iova + touching[i - 1]!.frames * SZ_4K > touching[i]!.iova;
    touching.length = 0;
    return overlap;
  }

  /** pinsOverlap()'s list, reused. */
  private readonly touchingScratch: PinRun[] = [];

  private runsOf(map: Map<number, PinRun[]>, dev: number): PinRun[] {
    let runs = map.get(dev);
    if (runs === undefined) {
      runs = [];
      map.set(dev, runs);
    }
    return runs;
  }

  /** Adds `delta` to the pin count of frames [pfn, pfn + frames) (a count never goes below 0). */
  private addPins(pfn: number, frames: number, delta: 1 | -1): void {
    const counts = this.pinCount;
    const end = pfn + frames;
    while (pfn < end) {
      // Stretch by stretch of equal counts: each takes one new count.
      const stop = Math.min(end, counts.stretchEnd(pfn));
      const count = Math.max(0, (counts.get(pfn) ?? 0) + delta);
      // A clear of frames no run covers returns at once (LinearRuns).
      if (count === 0) counts.clear(pfn, stop);
      else counts.set(pfn, stop, count, 0);
      pfn = stop;
    }
  }

  private isPinned(pfn: number): boolean {
    return (this.pinCount.get(pfn) ?? 0) > 0;
  }

  private isFree(pfn: number): boolean {
    return this.backingGfn(pfn) === undefined && !this.isPinned(pfn);
  }

  /** A frame of the VMM's memory that something backs or pins (the free pool's complement). */
  private isOwned(pfn: number): boolean {
    return pfn >= VMM_PFN && !this.isFree(pfn);
  }

  /**
   * The first frame in (pfn, end] whose ownership is not `owned` (end when none): stepped from one
   * boundary of the runs that decide it (frames handed out, pins, RAM discarded) to the next.
   */
  private sameOwnershipEnd(pfn: number, end: number, owned: boolean): number {
    let at = pfn + 1;
    if (at < VMM_PFN) return Math.min(end, VMM_PFN);
    const { backs, pinCount, ramDiscarded } = this;
    const ramEnd = VMM_PFN + this.ramFrames;
    while (at < end) {
      let next = Math.min(end, backs.stretchEnd(at), pinCount.stretchEnd(at));
      let isOwned = backs.get(at) !== undefined || pinCount.get(at) !== undefined;
      // A RAM block frame nothing discarded is owned: it backs its gfn.
      if (at < ramEnd) {
        const gfn = at - VMM_PFN;
        isOwned ||= ramDiscarded.get(gfn) === undefined;
        next = Math.min(next, ramEnd, VMM_PFN + ramDiscarded.stretchEnd(gfn));
      }
      if (isOwned !== owned) return at;
      at = next;
    }
    return end;
  }

  /** Back to the free pool, in order, each frame of the range that nothing backs or pins any more. */
  private releaseRange(pfn: number, frames: number): void {
    const end = pfn + frames;
    let at = Math.max(pfn, VMM_PFN);
    while (at < end) {
      const owned = this.isOwned(at);
      const next = this.sameOwnershipEnd(at, end, owned);
      if (!owned) this.pushFree(at, next - at);
      at = next;
    }
  }

  private pushFree(pfn: number, frames: number): void {
    const last = this.freeQueue[this.freeQueue.length - 1];
    if (last !== undefined && this.freeQueue.length > this.freeHead && last.pfn + last.frames === pfn) last.frames += frames;
    else this.freeQueue.push({ iova: 0, pfn, frames });
  }
}
