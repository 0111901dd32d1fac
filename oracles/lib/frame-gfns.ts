// A reverse index, host frame -> the guest frame (GFN) it backed when an oracle last looked, for
// the frames a later step touches (an RMPUPDATE, a new mapping onto the frame): which page to look
// at again. Entries are only ever set, never cleared: a stale one sends a check to a page that no
// longer needs it, which the check then finds fine. Kept as runs of frames backing consecutive
// GFNs (LinearRuns): guest memory and a swiotlb pool are backed in long stretches, so a world
// holds a few runs where it held a 4 KiB array per 2M region of frames it ever saw. A 1 TiB
// guest's next-fit swiotlb search walks its 1G pool, and those arrays grew with the walk (issue
// 15: ~240 KiB per 1 TiB world against ~50 KiB at 64 MiB, the same ops).

import { LinearRuns } from 'cocofuzz/api';

export class FrameGfns {
  private readonly runs = new LinearRuns();
  /** The first GFN of the stretch stretch() found last (-1: frames nobody set). */
  gfn = -1;

  /** Frame `pfn` backed guest frame `gfn`. */
  set(pfn: number, gfn: number): void {
    this.runs.set(pfn, pfn + 1, gfn, 1);
  }

  /** Frames [pfn, pfn + count) backed guest frames [gfn, gfn + count), in order. */
  setRun(pfn: number, gfn: number, count: number): void {
    if (count > 0) this.runs.set(pfn, pfn + count, gfn, 1);
  }

  /**
   * The end (at most `limit`) of the stretch of frames from `pfn` that either backed consecutive
   * GFNs from `this.gfn`, or that nobody set (`this.gfn` -1). Allocation-free: walk a frame range
   * by calling it again from the end it returned.
   */
  stretch(pfn: number, limit: number): number {
    this.gfn = this.runs.get(pfn) ?? -1;
    return Math.min(limit, this.runs.stretchEnd(pfn));
  }

  /** How many runs are stored (tests). */
  get runCount(): number {
    return this.runs.size;
  }
}
