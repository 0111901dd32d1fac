// What backs each guest page in the host's view (KVM memory attributes + guest_memfd + the VMM's
// shared memory). Sparse: one 512-entry state array per 2M region the case touched. Which host
// frames exist, are pinned or are free is frames.ts's business.
//
// Private memory lives in guest_memfd at a fixed offset of the GPA (GMEM_BASE + gpa), in folios
// of 2M when the config asks for huge backing, until a conversion or host_split splits them.
// Shared memory is separate VMM memory: QEMU's RAM block at VMM_RAM_BASE + gpa is what a static
// VFIO map pins at start. Which frame a page gets when it becomes shared is the `discard` world's
// (frames.ts sharedFrameFor()): by default its RAM frame until its first conversion to private,
// then a NEW frame (QEMU kvm_convert_memory() discarded the old backing), which is exactly what
// leaves a static IO mapping stale (research/amd-snp.md section 7.4, AMDESE/AMDSEV #109).

import { RegionMap } from '../model/regions.ts';
import { FRAMES_PER_2M, offsetIn, type PageSize, SZ_2M, SZ_4K } from '../model/size.ts';
import type { HostBacking } from '../policies/types.ts';
import type { HostFrames } from './frames.ts';

import { GMEM_BASE, VMM_RAM_BASE } from '../model/layout.ts';

export { GMEM_BASE, VMM_RAM_BASE };

export const NOT_BACKED = 0;
export const PRIVATE = 1;
export const SHARED = 2;
export type PageBacking = typeof NOT_BACKED | typeof PRIVATE | typeof SHARED;

class Region {
  readonly state = new Uint8Array(FRAMES_PER_2M);
  private: number = 0;
  shared: number = 0;
  /** HPA of a 2M-aligned VMM chunk backing the whole region when it was converted as one 2M entry. */
  chunk: number | undefined = undefined;
  /** The VMM frame of each shared page with its own frame (NaN: none), made on first use. */
  hpa: Float64Array | undefined = undefined;

  ownHpa(i: number): number | undefined {
    const hpa = this.hpa?.[i];
    return hpa === undefined || Number.isNaN(hpa) ? undefined : hpa;
  }

  /** The VMM frame of page `i` while shared: its own, or its place in the region's chunk. */
  sharedFrame(i: number): number | undefined {
    const own = this.ownHpa(i);
    if (own !== undefined) return own;
    return this.chunk !== undefined && this.state[i] === SHARED ? this.chunk + i * SZ_4K : undefined;
  }

  setHpa(i: number, hpa: number): void {
    if (this.hpa === undefined) this.hpa = new Float64Array(FRAMES_PER_2M).fill(NaN);
    this.hpa[i] = hpa;
  }
}

export interface BackedRun {
  gpa: number;
  len: number;
  hpa: number;
}

export class Backing {
  private readonly regions = new RegionMap<Region>();
  private readonly split = new Set<number>();

  constructor(
    readonly guestMemory: number,
    readonly hugeBacking: boolean,
    private readonly frames: HostFrames,
  ) {}

  state(gfn: number): PageBacking {
    return (this.regions.get(Math.floor(gfn / FRAMES_PER_2M))?.state[offsetIn(gfn, FRAMES_PER_2M)] ?? NOT_BACKED) as PageBacking;
  }

  /** Pages of the 2M region `index` (gpa / 2M) in the shared state. */
  sharedCount(index: number): number {
    return this.regions.get(index)?.shared ?? 0;
  }

  privateCount(index: number): number {
    return this.regions.get(index)?.private ?? 0;
  }

  /**
   * The VMM frame of a shared page: its own entry, or its place in the 2M chunk of a region that
   * was converted whole (those keep no per-page entries, so that sharing a 1G swiotlb pool at
   * boot costs 512 regions, not 262144 entries).
   */
  sharedFrame(gfn: number): number | undefined {
    return this.regions.get(Math.floor(gfn / FRAMES_PER_2M))?.sharedFrame(offsetIn(gfn, FRAMES_PER_2M));
  }

  /** The 2M VMM chunk backing region `index` as a whole, if it has one. */
  chunk(index: number): number | undefined {
    return this.regions.get(index)?.chunk;
  }

  set(gfn: number, next: PageBacking, sharedHpa?: number): void {
    const index = Math.floor(gfn / FRAMES_PER_2M);
    let region = this.regions.writable(index);
    if (region === undefined) {
      if (next === NOT_BACKED) return;
      region = this.regions.add(index, new Region());
    }
    this.setIn(region, offsetIn(gfn, FRAMES_PER_2M), gfn, next, sharedHpa);
  }

  /** set() of page `i` of `region` (a writable one), page `gfn`. */
  private setIn(region: Region, i: number, gfn: number, next: PageBacking, sharedHpa?: number): void {
    const old = region.state[i] ?? NOT_BACKED;
    if (old === PRIVATE) region.private--;
    if (old === SHARED) {
      region.shared--;
      if (region.chunk !== undefined) this.unchunk(region);
      // Leaving the shared state discards the page's VMM frame (kvm_convert_memory()).
      const hpa = region.ownHpa(i);
      if (hpa !== undefined) {
        this.frames.discardShared(hpa);
        region.hpa![i] = NaN;
      }
    }
    region.state[i] = next;
    if (next === PRIVATE) region.private++;
    if (next === SHARED) {
      region.shared++;
      region.setHpa(i, sharedHpa ?? this.frames.sharedFrameFor(gfn));
    }
  }

  /**
   * set(gfn, SHARED) for each page of [gfn, end) that is not shared yet, in order, appending each
   * page's new frame to `out` (extending the last run where it continues it in GPA and frame):
   * the host's page-by-page loop of a conversion to shared, with one region look-up per 2M.
   */
  shareEach(gfn: number, end: number, out: BackedRun[]): void {
    while (gfn < end) {
      const index = Math.floor(gfn / FRAMES_PER_2M);
      const first = index * FRAMES_PER_2M;
      const stop = Math.min(end, first + FRAMES_PER_2M);
      // Taken writable at the first page that changes (a region all shared is not copied).
      let region: Region | undefined;
      while (gfn < stop) {
        if (this.state(gfn) === SHARED) {
          gfn++;
          continue;
        }
        region ??= this.regions.writable(index) ?? this.regions.add(index, new Region());
        // The pages up to the next shared one, stretch by stretch of frames that follow each
        // other (HostFrames.sharedFrameRun(): what sharedFrameFor() gives them one by one).
        let notShared = gfn + 1;
        while (notShared < stop && region.state[notShared - first] !== SHARED) notShared++;
        while (gfn < notShared) {
          const n = this.frames.sharedFrameRun(gfn, notShared - gfn);
          const hpa = this.frames.sharedRunHpa;
          for (let k = 0; k < n; k++) this.setIn(region, gfn + k - first, gfn + k, SHARED, hpa + k * SZ_4K);
          const gpa = gfn * SZ_4K;
          const last = out[out.length - 1];
          if (last !== undefined && last.gpa + last.len === gpa && last.hpa + last.len === hpa) last.len += n * SZ_4K;
          else out.push({ gpa, len: n * SZ_4K, hpa });
          gfn += n;
        }
      }
    }
  }

  /**
   * set() for the pages [gfn, gfn + pages) in order, to PRIVATE or NOT_BACKED: a whole region that
   * is all in one state changes at once (a 2M private fault, a 2M chunk unshared), anything else
   * page by page.
   */
  setRange(gfn: number, pages: number, next: typeof PRIVATE | typeof NOT_BACKED): void {
    const end = gfn + pages;
    while (gfn < end) {
      const index = Math.floor(gfn / FRAMES_PER_2M);
      const regionEnd = Math.min(end, (index + 1) * FRAMES_PER_2M);
      const region = this.regions.writable(index);
      const whole = gfn === index * FRAMES_PER_2M && regionEnd - gfn === FRAMES_PER_2M;
      if (region === undefined && next === NOT_BACKED) {
        gfn = regionEnd;
        continue;
      }
      if (whole && region === undefined) {
        const made = this.regions.add(index, new Region());
        made.state.fill(PRIVATE);
        made.private = FRAMES_PER_2M;
        gfn = regionEnd;
        continue;
      }
      if (whole && region !== undefined && (region.private === FRAMES_PER_2M || region.shared === FRAMES_PER_2M || region.private + region.shared === 0)) {
        // Leaving the shared state discards the region's VMM frames, in page order.
        if (region.shared === FRAMES_PER_2M) {
          if (region.chunk !== undefined && region.hpa === undefined) this.frames.discardSharedRange(region.chunk, FRAMES_PER_2M);
          else for (let i = 0; i < FRAMES_PER_2M; i++) this.discardPage(region, i);
        }
        region.state.fill(next);
        region.private = next === PRIVATE ? FRAMES_PER_2M : 0;
        region.shared = 0;
        region.chunk = undefined;
        region.hpa = undefined;
        gfn = regionEnd;
        continue;
      }
      for (; gfn < regionEnd; gfn++) this.set(gfn, next);
    }
  }

  /** The page's own frame, or its place in the region's chunk, is discarded. */
  private discardPage(region: Region, i: number): void {
    const hpa = region.ownHpa(i) ?? (region.chunk !== undefined ? region.chunk + i * SZ_4K : undefined);
    if (hpa !== undefined) this.frames.discardShared(hpa);
  }

  /** Region `index`, made empty if it was not there. */
  private wholeRegion(index: number): Region {
    return this.regions.writable(index) ?? this.regions.add(index, new Region());
  }

  /** Region `index` (gpa / 2M) becomes shared as a whole, backed by the 2M VMM chunk at `hpa`. */
  setSharedChunk(index: number, hpa: number): void {
    const region = this.wholeRegion(index);
    if (region.chunk !== undefined) this.unchunk(region);
    if (region.shared > 0 && region.hpa !== undefined) {
      for (let i = 0; i < FRAMES_PER_2M; i++) {
        // A page that was shared already gives up its own frame for its place in the chunk.
        const own = region.ownHpa(i);
        if (region.state[i] === SHARED && own !== undefined) this.frames.discardShared(own);
      }
    }
    region.hpa = undefined;
    region.state.fill(SHARED);
    region.private = 0;
    region.shared = FRAMES_PER_2M;
    region.chunk = hpa;
  }

  /** One page of a chunk-backed region changes: the others keep their frames, now per page. */
  private unchunk(region: Region): void {
    const chunk = region.chunk;
    if (chunk === undefined) return;
    region.chunk = undefined;
    for (let i = 0; i < FRAMES_PER_2M; i++) {
      if (region.state[i] === SHARED && region.ownHpa(i) === undefined) region.setHpa(i, chunk + i * SZ_4K);
    }
  }

  /**
   * A 2M-aligned run of frames for the whole 2M region `index`, about to be shared, or undefined
   * when the discard world backs the region page by page (frames.ts sharedChunkFor()).
   */
  allocSharedChunk(index: number): number | undefined {
    return this.frames.sharedChunkFor(index);
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
      const index = Math.floor(gfn / FRAMES_PER_2M);
      const regionEnd = Math.min(end, (index + 1) * FRAMES_PER_2M);
      const region = this.regions.get(index);
      const count = region === undefined ? 0 : want === PRIVATE ? region.private : want === SHARED ? region.shared : FRAMES_PER_2M - region.private - region.shared;
      const all = region === undefined ? want === NOT_BACKED : count === FRAMES_PER_2M;
      if (!all) {
        if (count === 0 && region !== undefined) return false;
        for (; gfn < regionEnd; gfn++) if (this.state(gfn) !== want) return false;
      }
      gfn = regionEnd;
    }
    return true;
  }

  /**
   * The end (exclusive, at most `limit`) of the run of pages from `gfn` in the state of `gfn`
   * whose backing frames advance 4K per page (backingHpa() linear; -1 throughout when not
   * backed). Private memory, untouched memory and a region shared as one 2M chunk are one step
   * per region, and the untouched regions between held ones are jumped over: a 1G swiotlb pool
   * shared at boot is 512 steps, not 262144.
   */
  runEnd(gfn: number, limit: number): number {
    const state = this.state(gfn);
    const first = this.backingHpa(gfn * SZ_4K);
    const regions = this.regions;
    let at = gfn + 1;
    // The first held region at or after at's (regions walked in order, not looked up one by one).
    let position = regions.seek(Math.floor(at / FRAMES_PER_2M));
    while (at < limit) {
      const index = Math.floor(at / FRAMES_PER_2M);
      const stop = Math.min(limit, (index + 1) * FRAMES_PER_2M);
      const held = regions.keyAt(position);
      if (held !== index) {
        if (state !== NOT_BACKED) return at;
        if (held === undefined) return limit;
        at = Math.max(at, held * FRAMES_PER_2M);
        continue;
      }
      const region = regions.valueAt(position++)!;
      if (region.private === FRAMES_PER_2M || region.private + region.shared === 0) {
        // One state across the region (private frames are GMEM_BASE + gpa, always linear).
        if ((region.private === 0 ? NOT_BACKED : PRIVATE) !== state) return at;
        at = stop;
        continue;
      }
      if (region.shared === FRAMES_PER_2M && region.chunk !== undefined && region.hpa === undefined) {
        // Shared as one 2M chunk: linear frames, so its first page answers for the rest.
        if (state !== SHARED || region.chunk + (at - index * FRAMES_PER_2M) * SZ_4K !== first + (at - gfn) * SZ_4K) return at;
        at = stop;
        continue;
      }
      // Page by page, reading the region's arrays directly (not state() and backingHpa(), three
      // look-ups a page): the oracles walk backing this way.
      const base = index * FRAMES_PER_2M;
      const states = region.state;
      if (state !== SHARED) {
        // Private frames are GMEM_BASE + gpa, always linear; unbacked pages have none.
        for (; at < stop; at++) if (states[at - base] !== state) return at;
        continue;
      }
      for (; at < stop; at++) {
        const i = at - base;
        if (states[i] !== SHARED || (region.sharedFrame(i) ?? 0) !== first + (at - gfn) * SZ_4K) return at;
      }
    }
    return limit;
  }

  /**
   * Appends to `out` the maximal runs of pages in [gfn, end) in `want` (PRIVATE: their guest_memfd
   * frames, SHARED: their VMM frames) whose frames are contiguous, in GPA order; a region whose
   * pages all agree is one step.
   */
  collect(gfn: number, end: number, want: typeof PRIVATE | typeof SHARED, out: BackedRun[]): BackedRun[] {
    const regions = this.regions;
    // Held regions walked in order; the untouched ones between them back nothing.
    for (let position = regions.seek(Math.floor(gfn / FRAMES_PER_2M)); gfn < end; position++) {
      const index = regions.keyAt(position);
      if (index === undefined) break;
      gfn = Math.max(gfn, index * FRAMES_PER_2M);
      if (gfn >= end) break;
      const regionEnd = Math.min(end, (index + 1) * FRAMES_PER_2M);
      const region = regions.valueAt(position)!;
      const count = want === PRIVATE ? region.private : region.shared;
      if (count === 0) {
        gfn = regionEnd;
        continue;
      }
      if (count === FRAMES_PER_2M && (want === PRIVATE || (region.chunk !== undefined && region.hpa === undefined))) {
        const hpa = want === PRIVATE ? GMEM_BASE + gfn * SZ_4K : region.chunk! + (gfn - index * FRAMES_PER_2M) * SZ_4K;
        appendRun(out, gfn * SZ_4K, (regionEnd - gfn) * SZ_4K, hpa);
        gfn = regionEnd;
        continue;
      }
      for (; gfn < regionEnd; gfn++) {
        const i = gfn - index * FRAMES_PER_2M;
        if (region.state[i] !== want) continue;
        appendRun(out, gfn * SZ_4K, SZ_4K, want === PRIVATE ? GMEM_BASE + gfn * SZ_4K : (region.sharedFrame(i) ?? 0));
      }
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
