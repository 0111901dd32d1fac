// The guest kernel's per-4K-page state (accepted, shared, validated, converting), sparse, per 2M
// region the guest touched: a region whose 512 pages agree is one flags value; per-page bytes only
// where they differ. The flags are the guest's beliefs (its unaccepted-memory bitmap, its
// encryption attributes and what it last PVALIDATEd), which the oracles compare with the
// hardware's truth. Range updates and run queries cost per region, not per page, so a 2M
// conversion costs about what a 4K one does.

import { GUEST_PAGE_ACCEPTED, GUEST_PAGE_CONVERTING, GUEST_PAGE_SHARED, GUEST_PAGE_VALIDATED, type GuestPage } from '../api.ts';
import { RegionMap } from '../model/regions.ts';
import { FRAMES_PER_2M, offsetIn } from '../model/size.ts';

export const ACCEPTED = GUEST_PAGE_ACCEPTED;
export const SHARED = GUEST_PAGE_SHARED;
export const VALIDATED = GUEST_PAGE_VALIDATED;
export const CONVERTING = GUEST_PAGE_CONVERTING;

/** One 2M region: all pages alike (`bytes` undefined, their flags in `uniform`) or a byte each. */
interface Region {
  uniform: number;
  bytes: Uint8Array | undefined;
  /** `bytes` seen 4 pages at a time, to tell cheaply whether they agree again. */
  words: Uint32Array | undefined;
}

export class PageStates {
  private readonly regions = new RegionMap<Region>();

  flags(gfn: number): number {
    const region = this.regions.get(Math.floor(gfn / FRAMES_PER_2M));
    if (region === undefined) return 0;
    return region.bytes === undefined ? region.uniform : (region.bytes[offsetIn(gfn, FRAMES_PER_2M)] ?? 0);
  }

  has(gfn: number, flag: number): boolean {
    return (this.flags(gfn) & flag) !== 0;
  }

  update(gfn: number, set: number, clear: number): void {
    this.updateRange(gfn, gfn + 1, set, clear);
  }

  /** Set the bits `set` and clear the bits `clear` of every page of [start, end) (gfns). */
  updateRange(start: number, end: number, set: number, clear: number): void {
    for (let gfn = start; gfn < end; ) {
      const key = Math.floor(gfn / FRAMES_PER_2M);
      const regionStart = key * FRAMES_PER_2M;
      const stop = Math.min(end, regionStart + FRAMES_PER_2M);
      let region = this.regions.writable(key);
      if (region === undefined) {
        if (set === 0) {
          gfn = stop;
          continue;
        }
        region = this.regions.add(key, { uniform: 0, bytes: undefined, words: undefined });
      }
      const whole = gfn === regionStart && stop === regionStart + FRAMES_PER_2M;
      if (region.bytes === undefined) {
        const next = (region.uniform & ~clear) | set;
        if (whole || next === region.uniform) {
          region.uniform = next;
          gfn = stop;
          continue;
        }
        region.bytes = new Uint8Array(FRAMES_PER_2M).fill(region.uniform);
        region.words = new Uint32Array(region.bytes.buffer);
      }
      const bytes = region.bytes;
      for (let i = gfn - regionStart; i < stop - regionStart; i++) bytes[i] = ((bytes[i] ?? 0) & ~clear) | set;
      // A region whose pages agree again goes back to one value (compared 4 pages at a time). The
      // comparison starts just past the pages changed: a per-page sweep through a region (a PSC
      // or PVALIDATE loop over a smashed 2M range) leaves the next page unchanged, so the region
      // is told apart at the first word instead of after all the words the sweep already did.
      const value = bytes[gfn - regionStart] ?? 0;
      const words = region.words ?? new Uint32Array(bytes.buffer);
      const word = value * 0x01010101;
      const WORDS = FRAMES_PER_2M / 4;
      const from = Math.floor((stop - regionStart) / 4) % WORDS;
      let alike = true;
      for (let i = 0; i < WORDS && alike; i++) alike = words[(from + i) % WORDS] === word;
      if (alike) {
        region.uniform = value;
        region.bytes = undefined;
        region.words = undefined;
      }
      gfn = stop;
    }
  }

  /**
   * The end of the run of pages from `gfn` whose flags equal those of `gfn`, at most `limit`
   * (exclusive): with flags(), an allocation-free way to walk [gfn, limit) run by run.
   */
  runEnd(gfn: number, limit: number): number {
    const flags = this.flags(gfn);
    const regions = this.regions;
    let at = gfn;
    // The first held region at or after at's (regions walked in order, not looked up one by one).
    let position = regions.seek(Math.floor(at / FRAMES_PER_2M));
    while (at < limit) {
      const key = Math.floor(at / FRAMES_PER_2M);
      const regionStart = key * FRAMES_PER_2M;
      const held = regions.keyAt(position);
      if (held !== key) {
        if (flags !== 0) return at;
        // Untouched regions are all 0: jump to the next region the guest touched.
        if (held === undefined) return limit;
        at = Math.max(at, held * FRAMES_PER_2M);
        continue;
      }
      const region = regions.valueAt(position++)!;
      const stop = Math.min(limit, regionStart + FRAMES_PER_2M);
      if (region.bytes === undefined) {
        if (region.uniform !== flags) return at;
        at = stop;
        continue;
      }
      const bytes = region.bytes;
      // Four pages at a time where aligned (the words view of the same bytes), then page by page.
      for (; at < stop && (at - regionStart) % 4 !== 0; at++) if (bytes[at - regionStart] !== flags) return at;
      const words = region.words;
      if (words !== undefined) {
        const word = flags * 0x01010101;
        while (at + 4 <= stop && words[(at - regionStart) / 4] === word) at += 4;
      }
      for (; at < stop; at++) if (bytes[at - regionStart] !== flags) return at;
    }
    return limit;
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
    for (const key of this.regions.keys()) {
      const region = this.regions.get(key);
      if (region === undefined) continue;
      const first = key * FRAMES_PER_2M;
      if (region.bytes === undefined) {
        if (region.uniform !== 0) for (let i = 0; i < FRAMES_PER_2M; i++) yield first + i;
        continue;
      }
      for (let i = 0; i < FRAMES_PER_2M; i++) if ((region.bytes[i] ?? 0) !== 0) yield first + i;
    }
  }
}
