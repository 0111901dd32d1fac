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

import { FRAMES_PER_2M, SZ_2M, SZ_4K, type PageSize } from '../model/size.ts';
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
}

export interface BackedRun {
  gpa: number;
  len: number;
  hpa: number;
}

export class Backing {
  private readonly regions = new Map<number, Region>();
  private readonly sharedHpa = new Map<number, number>();
  private readonly split = new Set<number>();

  constructor(
    readonly guestMemory: number,
    readonly hugeBacking: boolean,
    private readonly frames: HostFrames,
  ) {}

  state(gfn: number): PageBacking {
    return (this.regions.get(Math.floor(gfn / FRAMES_PER_2M))?.state[gfn % FRAMES_PER_2M] ?? NOT_BACKED) as PageBacking;
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
   * boot costs 512 regions, not 262144 map entries).
   */
  sharedFrame(gfn: number): number | undefined {
    const own = this.sharedHpa.get(gfn);
    if (own !== undefined) return own;
    const region = this.regions.get(Math.floor(gfn / FRAMES_PER_2M));
    const i = gfn % FRAMES_PER_2M;
    return region?.chunk !== undefined && region.state[i] === SHARED ? region.chunk + i * SZ_4K : undefined;
  }

  /** The 2M VMM chunk backing region `index` as a whole, if it has one. */
  chunk(index: number): number | undefined {
    return this.regions.get(index)?.chunk;
  }

  set(gfn: number, next: PageBacking, sharedHpa?: number): void {
    const index = Math.floor(gfn / FRAMES_PER_2M);
    let region = this.regions.get(index);
    if (region === undefined) {
      if (next === NOT_BACKED) return;
      region = new Region();
      this.regions.set(index, region);
    }
    const i = gfn % FRAMES_PER_2M;
    const old = region.state[i] ?? NOT_BACKED;
    if (old === PRIVATE) region.private--;
    if (old === SHARED) {
      region.shared--;
      if (region.chunk !== undefined) this.unchunk(index, region);
      // Leaving the shared state discards the page's VMM frame (kvm_convert_memory()).
      const hpa = this.sharedHpa.get(gfn);
      if (hpa !== undefined) this.frames.discardShared(hpa);
      this.sharedHpa.delete(gfn);
    }
    region.state[i] = next;
    if (next === PRIVATE) region.private++;
    if (next === SHARED) {
      region.shared++;
      this.sharedHpa.set(gfn, sharedHpa ?? this.frames.sharedFrameFor(gfn));
    }
  }

  /** Region `index` (gpa / 2M) becomes shared as a whole, backed by the 2M VMM chunk at `hpa`. */
  setSharedChunk(index: number, hpa: number): void {
    let region = this.regions.get(index);
    if (region === undefined) {
      region = new Region();
      this.regions.set(index, region);
    }
    if (region.chunk !== undefined) this.unchunk(index, region);
    for (let i = 0; i < FRAMES_PER_2M; i++) {
      if (region.state[i] !== SHARED) continue;
      // A page that was shared already gives up its own frame for its place in the chunk.
      const gfn = index * FRAMES_PER_2M + i;
      const hpa = this.sharedHpa.get(gfn);
      if (hpa !== undefined) this.frames.discardShared(hpa);
      this.sharedHpa.delete(gfn);
    }
    region.state.fill(SHARED);
    region.private = 0;
    region.shared = FRAMES_PER_2M;
    region.chunk = hpa;
  }

  /** One page of a chunk-backed region changes: the others keep their frames, now per page. */
  private unchunk(index: number, region: Region): void {
    const chunk = region.chunk;
    if (chunk === undefined) return;
    region.chunk = undefined;
    for (let i = 0; i < FRAMES_PER_2M; i++) {
      const gfn = index * FRAMES_PER_2M + i;
      if (region.state[i] === SHARED && !this.sharedHpa.has(gfn)) this.sharedHpa.set(gfn, chunk + i * SZ_4K);
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
    if (!Number.isFinite(gpa) || gpa < 0) return undefined;
    const gfn = Math.floor(gpa / SZ_4K);
    const state = this.state(gfn);
    if (state === NOT_BACKED) return undefined;
    const folioSize = this.folioSize(gpa);
    if (state === SHARED) return { hpa: (this.sharedFrame(gfn) ?? 0) + (gpa % SZ_4K), shared: true, folioSize };
    return { hpa: GMEM_BASE + gpa, shared: false, folioSize };
  }

  /** Maximal runs of pages in `view` whose frames are contiguous, in GPA order. */
  *runs(view: 'private' | 'shared'): Generator<BackedRun> {
    const want = view === 'private' ? PRIVATE : SHARED;
    const keys = [...this.regions.keys()].sort((a, b) => a - b);
    let run: BackedRun | undefined;
    for (const index of keys) {
      const region = this.regions.get(index);
      if (region === undefined || (want === PRIVATE ? region.private : region.shared) === 0) continue;
      for (let i = 0; i < FRAMES_PER_2M; i++) {
        if (region.state[i] !== want) continue;
        const gfn = index * FRAMES_PER_2M + i;
        const gpa = gfn * SZ_4K;
        const hpa = want === PRIVATE ? GMEM_BASE + gpa : (this.sharedFrame(gfn) ?? 0);
        if (run !== undefined && run.gpa + run.len === gpa && run.hpa + run.len === hpa) {
          run.len += SZ_4K;
          continue;
        }
        if (run !== undefined) yield run;
        run = { gpa, len: SZ_4K, hpa };
      }
    }
    if (run !== undefined) yield run;
  }
}
