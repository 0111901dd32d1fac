// The guest kernel's per-4K-page state (accepted, shared, validated, converting), as runs of
// pages with equal flags. The flags are the guest's beliefs (its unaccepted-memory bitmap, its
// encryption attributes and what it last PVALIDATEd), which the oracles compare with the
// hardware's truth. Range updates and run queries cost per run, not per page or per 2M region, so
// a 2M conversion costs about what a 4K one does, and so does sharing a 1G pool.

import { GUEST_PAGE_ACCEPTED, GUEST_PAGE_CONVERTING, GUEST_PAGE_SHARED, GUEST_PAGE_VALIDATED, type GuestPage } from '../api.ts';
import { LinearRuns } from '../model/linear-runs.ts';

export const ACCEPTED = GUEST_PAGE_ACCEPTED;
export const SHARED = GUEST_PAGE_SHARED;
export const VALIDATED = GUEST_PAGE_VALIDATED;
export const CONVERTING = GUEST_PAGE_CONVERTING;

export class PageStates {
  /**
   * The flags as runs of pages with equal flags (step 0); pages with no flags hold no run. The
   * runs are kept joined (LinearRuns), so a run's end is where the flags change. A 1 TiB guest's
   * 1G swiotlb pool, shared at boot, is one run: kept per 2M region it was 512 regions, which
   * every walk of the guest's pages (runEnd(): the oracles' boot snapshots and sweeps) stepped
   * through one by one (issue 15).
   */
  private readonly runs = new LinearRuns();

  flags(gfn: number): number {
    return this.runs.get(gfn) ?? 0;
  }

  has(gfn: number, flag: number): boolean {
    return (this.flags(gfn) & flag) !== 0;
  }

  update(gfn: number, set: number, clear: number): void {
    this.updateRange(gfn, gfn + 1, set, clear);
  }

  /** Set the bits `set` and clear the bits `clear` of every page of [start, end) (gfns). */
  updateRange(start: number, end: number, set: number, clear: number): void {
    const runs = this.runs;
    for (let gfn = start; gfn < end; ) {
      // Stretch by stretch of equal flags: each takes one new value.
      const stop = Math.min(end, runs.stretchEnd(gfn));
      const flags = this.flags(gfn);
      const next = (flags & ~clear) | set;
      if (next !== flags) {
        if (next === 0) runs.clear(gfn, stop);
        else runs.set(gfn, stop, next, 0);
      }
      gfn = stop;
    }
  }

  /**
   * The end of the run of pages from `gfn` whose flags equal those of `gfn`, at most `limit`
   * (exclusive): with flags(), an allocation-free way to walk [gfn, limit) run by run.
   */
  runEnd(gfn: number, limit: number): number {
    return Math.min(limit, this.runs.stretchEnd(gfn));
  }

  page(gfn: number): GuestPage | undefined {
    const flags = this.flags(gfn);
    if (flags === 0) return undefined;
    return {
      accepted: (flags & ACCEPTED) !== 0,
      shared: (flags & SHARED) !== 0,
      validated: (flags & VALIDATED) !== 0,
      converting: (flags & CONVERTING) !== 0,
    };
  }

  *pages(): Generator<number> {
    const runs = this.runs;
    for (let k = 0; k < runs.size; k++) for (let gfn = runs.runStart(k); gfn < runs.runEnd(k); gfn++) yield gfn;
  }
}
