// What backs each guest page in the host's view (KVM memory attributes + guest_memfd + the VMM's
// shared memory), as runs: the state of each page (private, shared; none: not backed) as runs of
// pages in one state, and the VMM frame of each shared page as runs of pages whose frames follow
// each other. A 1 TiB guest's 1G swiotlb pool, shared at boot, is one run of each, where per 2M
// region it was 512 regions that every walk of the backing (runEnd(), collect(): the oracles, an
// attach's mirror of the whole backing) stepped through (issue 15). Which host frames exist, are
// pinned or are free is frames.ts's business.
//
// Private memory lives in guest_memfd at a fixed offset of the GPA (GMEM_BASE + gpa), in folios
// of 2M when the config asks for huge backing, until a conversion or host_split splits them.
// Shared memory is separate VMM memory: QEMU's RAM block at VMM_RAM_BASE + gpa is what a static
// VFIO map pins at start. Which frame a page gets when it becomes shared is the `discard` world's
// (frames.ts sharedFrameFor()): by default its RAM frame until its first conversion to private,
// then a NEW frame (QEMU kvm_convert_memory() discarded the old backing), which is exactly what
// leaves a static IO mapping stale (research/amd-snp.md section 7.4, AMDESE/AMDSEV #109).

import { LinearRuns } from '../model/linear-runs.ts';
import { FRAMES_PER_2M, offsetIn, type PageSize, SZ_2M, SZ_4K } from '../model/size.ts';
import type { HostBacking } from '../policies/types.ts';
import type { HostFrames } from './frames.ts';

import { GMEM_BASE, VMM_RAM_BASE } from '../model/layout.ts';

export { GMEM_BASE, VMM_RAM_BASE };

export const NOT_BACKED = 0;
export const PRIVATE = 1;
export const SHARED = 2;
export type PageBacking = typeof NOT_BACKED | typeof PRIVATE | typeof SHARED;

export interface BackedRun {
  gpa: number;
  len: number;
  hpa: number;
}

export class Backing {
  /** Each page's state (PRIVATE, SHARED) as runs of one state (step 0); no run: NOT_BACKED. */
  private readonly states = new LinearRuns();
  /** The VMM frame (HPA) of each shared page, as runs of frames 4K apart; exactly the shared pages. */
  private readonly frames = new LinearRuns();
  /**
   * The 2M VMM chunk (HPA) backing each 2M region (by index) shared as one (setSharedChunk()), as
   * runs of chunks 2M apart: until any of its pages changes, the host maps it with one 2M leaf.
   */
  private readonly chunks = new LinearRuns();
  private readonly split = new Set<number>();

  constructor(
    readonly guestMemory: number,
    readonly hugeBacking: boolean,
    private readonly hostFrames: HostFrames,
  ) {}

  state(gfn: number): PageBacking {
    return (this.states.get(gfn) ?? NOT_BACKED) as PageBacking;
  }

  /** Pages of the 2M region `index` (gpa / 2M) in the shared state. */
  sharedCount(index: number): number {
    return this.countIn(index, SHARED);
  }

  privateCount(index: number): number {
    return this.countIn(index, PRIVATE);
  }

  /** Pages of region `index` in state `want` (PRIVATE or SHARED), run by run. */
  private countIn(index: number, want: number): number {
    const states = this.states;
    const end = (index + 1) * FRAMES_PER_2M;
    let count = 0;
    for (let gfn = index * FRAMES_PER_2M; gfn < end; ) {
      const stop = Math.min(end, states.stretchEnd(gfn));
      if (states.get(gfn) === want) count += stop - gfn;
      gfn = stop;
    }
    return count;
  }

  /** The VMM frame of a shared page (its own, or its place in the 2M chunk of a region shared whole). */
  sharedFrame(gfn: number): number | undefined {
    return this.frames.get(gfn);
  }

  /** The 2M VMM chunk backing region `index` as a whole, if it has one. */
  chunk(index: number): number | undefined {
    return this.chunks.get(index);
  }

  set(gfn: number, next: PageBacking, sharedHpa?: number): void {
    const old = this.state(gfn);
    if (old === SHARED) this.leaveShared(gfn, gfn + 1);
    if (next === NOT_BACKED) {
      if (old !== NOT_BACKED) this.states.clear(gfn, gfn + 1);
      return;
    }
    if (next !== old) this.states.set(gfn, gfn + 1, next, 0);
    if (next === SHARED) this.frames.set(gfn, gfn + 1, sharedHpa ?? this.hostFrames.sharedFrameFor(gfn), SZ_4K);
  }

  /**
   * Shared pages [gfn, end) leave the shared state: their VMM frames are discarded, in page order
   * (kvm_convert_memory()), and their regions lose their chunk. The caller sets their new state.
   */
  private leaveShared(gfn: number, end: number): void {
    const frames = this.frames;
    this.chunks.clear(Math.floor(gfn / FRAMES_PER_2M), Math.floor((end - 1) / FRAMES_PER_2M) + 1);
    for (let at = gfn; at < end; ) {
      const stop = Math.min(end, frames.stretchEnd(at));
      const hpa = frames.get(at);
      // discardSharedRange(): discardShared() of each frame, in order.
      if (hpa !== undefined) this.hostFrames.discardSharedRange(hpa, stop - at);
      at = stop;
    }
    frames.clear(gfn, end);
  }

  /**
   * set(gfn, SHARED) for each page of [gfn, end) that is not shared yet, in order, appending each
   * page's new frame to `out` (extending the last run where it continues it in GPA and frame):
   * the host's page-by-page loop of a conversion to shared, a stretch of frames at a time.
   */
  shareEach(gfn: number, end: number, out: BackedRun[]): void {
    const states = this.states;
    while (gfn < end) {
      const stop = Math.min(end, states.stretchEnd(gfn));
      if (this.state(gfn) === SHARED) {
        gfn = stop;
        continue;
      }
      // Pages up to the next shared one, stretch by stretch of frames that follow each other
      // within a 2M region (HostFrames.sharedFrameRun(): what sharedFrameFor() gives them one by one).
      while (gfn < stop) {
        const n = this.hostFrames.sharedFrameRun(gfn, Math.min(stop, (Math.floor(gfn / FRAMES_PER_2M) + 1) * FRAMES_PER_2M) - gfn);
        const hpa = this.hostFrames.sharedRunHpa;
        states.set(gfn, gfn + n, SHARED, 0);
        this.frames.set(gfn, gfn + n, hpa, SZ_4K);
        appendRun(out, gfn * SZ_4K, n * SZ_4K, hpa);
        gfn += n;
      }
    }
  }

  /** set() for the pages [gfn, gfn + pages) in order, to PRIVATE or NOT_BACKED. */
  setRange(gfn: number, pages: number, next: typeof PRIVATE | typeof NOT_BACKED): void {
    const end = gfn + pages;
    if (!(pages > 0)) return;
    // Leaving the shared state discards the pages' VMM frames, in page order.
    this.leaveShared(gfn, end);
    if (next === NOT_BACKED) this.states.clear(gfn, end);
    else this.states.set(gfn, end, next, 0);
  }

  /** Region `index` (gpa / 2M) becomes shared as a whole, backed by the 2M VMM chunk at `hpa`. */
  setSharedChunk(index: number, hpa: number): void {
    const first = index * FRAMES_PER_2M;
    const end = first + FRAMES_PER_2M;
    // A page that was shared already gives up its own frame for its place in the chunk.
    this.leaveShared(first, end);
    this.states.set(first, end, SHARED, 0);
    this.frames.set(first, end, hpa, SZ_4K);
    this.chunks.set(index, index + 1, hpa, SZ_2M);
  }

  /**
   * A 2M-aligned run of frames for the whole 2M region `index`, about to be shared, or undefined
   * when the discard world backs the region page by page (frames.ts sharedChunkFor()).
   */
  allocSharedChunk(index: number): number | undefined {
    return this.hostFrames.sharedChunkFor(index);
  }

  folioSize(gpa: number): PageSize {
    if (!this.hugeBacking) return '4K';
    const index = Math.floor(gpa / SZ_2M);
    // A folio cannot reach past the end of guest memory.
    if ((index + 1) * SZ_2M > this.guestMemory) return '4K';
    return this.split.has(index) ? '4K' : '2M';
  }

  splitFolio(gpa: number): boolean {
    const index = Math.floor(gpa / SZ_2M);
    if (this.folioSize(gpa) === '4K') return false;
    this.split.add(index);
    return true;
  }

  backing(gpa: number): HostBacking | undefined {
    const hpa = this.backingHpa(gpa);
    if (hpa < 0) return undefined;
    return { hpa, shared: this.state(Math.floor(gpa / SZ_4K)) === SHARED, folioSize: this.folioSize(gpa) };
  }

  /** The shared frame backing `gpa` (backing(gpa) with shared: true), else -1; allocates nothing. */
  sharedHpa(gpa: number): number {
    return Number.isFinite(gpa) && gpa >= 0 && this.state(Math.floor(gpa / SZ_4K)) === SHARED ? this.backingHpa(gpa) : -1;
  }

  /** backing(gpa)'s hpa without the object: -1 when the host does not back `gpa`. */
  backingHpa(gpa: number): number {
    if (!Number.isFinite(gpa) || gpa < 0) return -1;
    const gfn = Math.floor(gpa / SZ_4K);
    const state = this.state(gfn);
    if (state === NOT_BACKED) return -1;
    if (state === SHARED) return (this.sharedFrame(gfn) ?? 0) + offsetIn(gpa, SZ_4K);
    return GMEM_BASE + gpa;
  }

  /** Pages [gfn, end) are all in `want`. */
  allIn(gfn: number, end: number, want: PageBacking): boolean {
    while (gfn < end) {
      if (this.state(gfn) !== want) return false;
      gfn = this.states.stretchEnd(gfn);
    }
    return true;
  }

  /**
   * The end (exclusive, at most `limit`) of the run of pages from `gfn` in the state of `gfn`
   * whose backing frames advance 4K per page (backingHpa() linear; -1 throughout when not
   * backed): the run of states, and for shared pages the run of frames, holding `gfn`.
   */
  runEnd(gfn: number, limit: number): number {
    // Unbacked pages have no frame, and private frames are GMEM_BASE + gpa, always linear.
    const end = Math.min(limit, this.states.stretchEnd(gfn));
    return this.state(gfn) === SHARED ? Math.min(end, this.frames.stretchEnd(gfn)) : end;
  }

  /**
   * Appends to `out` the maximal runs of pages in [gfn, end) in `want` (PRIVATE: their guest_memfd
   * frames, SHARED: their VMM frames) whose frames are contiguous, in GPA order.
   */
  collect(gfn: number, end: number, want: typeof PRIVATE | typeof SHARED, out: BackedRun[]): BackedRun[] {
    while (gfn < end) {
      const stop = Math.min(end, this.states.stretchEnd(gfn));
      if (this.state(gfn) === want && want === PRIVATE) appendRun(out, gfn * SZ_4K, (stop - gfn) * SZ_4K, GMEM_BASE + gfn * SZ_4K);
      else if (this.state(gfn) === want) {
        for (let at = gfn; at < stop; ) {
          const next = Math.min(stop, this.frames.stretchEnd(at));
          const hpa = this.frames.get(at);
          if (hpa === undefined) throw new Error(`backing: shared gfn ${at} has no frame`);
          appendRun(out, at * SZ_4K, (next - at) * SZ_4K, hpa);
          at = next;
        }
      }
      gfn = stop;
    }
    return out;
  }

  /** Maximal runs of pages in `view` whose frames are contiguous, in GPA order. */
  *runs(view: 'private' | 'shared'): Generator<BackedRun> {
    yield* this.collect(0, Number.MAX_SAFE_INTEGER, view === 'private' ? PRIVATE : SHARED, []);
  }
}

/** Extends the last run of `out` when [gpa, gpa + len) at hpa continues it, else starts a new one. */
function appendRun(out: BackedRun[], gpa: number, len: number, hpa: number): void {
  const last = out[out.length - 1];
  if (last !== undefined && last.gpa + last.len === gpa && last.hpa + last.len === hpa) last.len += len;
  else out.push({ gpa, len, hpa });
}
