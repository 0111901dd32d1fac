// A reverse index, host frame -> the guest frame (GFN) it backed when an oracle last looked, for
// the frames a later step touches (an RMPUPDATE, a new mapping onto the frame): which page to look
// at again. Entries are only ever set, never cleared: a stale one sends a check to a page that no
// longer needs it, which the check then finds fine. Per 2M region of frames, one Float64Array
// (1 + the GFN, 0: none) and the lowest and highest GFN the region ever held: a step whose touched
// GFNs hold all of a region's GFNs has already looked at every page the region's frames lead to,
// so it need not read them frame by frame.

import { FRAMES_PER_2M } from 'cocofuzz/api';
import { RegionArrays } from './regions.ts';
import { regionOf, slotOf } from './region-slot.ts';

export interface FrameGfnRegion {
  /** 1 + the GFN each frame of the region backed (0: none). */
  readonly gfns: Float64Array;
  /** The lowest and highest GFN ever set in the region. */
  min: number;
  max: number;
}

export class FrameGfns {
  private readonly regions = new RegionArrays<FrameGfnRegion>(() => ({ gfns: new Float64Array(FRAMES_PER_2M), min: Infinity, max: -Infinity }));

  /** Frame `pfn` backed guest frame `gfn`. */
  set(pfn: number, gfn: number): void {
    const region = this.regions.getOrCreate(regionOf(pfn));
    region.gfns[slotOf(pfn)] = gfn + 1;
    if (gfn < region.min) region.min = gfn;
    if (gfn > region.max) region.max = gfn;
  }

  /** Frames [pfn, pfn + count) backed guest frames [gfn, gfn + count), in order. */
  setRun(pfn: number, gfn: number, count: number): void {
    for (let i = 0; i < count; ) {
      const region = this.regions.getOrCreate(regionOf(pfn + i));
      const first = slotOf(pfn + i);
      const stop = Math.min(count, i + (FRAMES_PER_2M - first));
      if (gfn + i < region.min) region.min = gfn + i;
      if (gfn + stop - 1 > region.max) region.max = gfn + stop - 1;
      for (let slot = first; i < stop; i++, slot++) region.gfns[slot] = gfn + i + 1;
    }
  }

  /** The record of 2M region `index` (frame / 512), or undefined when no frame there was set. */
  region(index: number): FrameGfnRegion | undefined {
    return this.regions.get(index);
  }
}
