// One device's IOTLB: cached S2 translations GPA -> HPA at the size the RMP check used (4K or
// 2M). For IO leaves of 2M or more the IOMMU installs a 2M entry, for 4K..1M leaves a 4K entry
// (Alexey, seed thread, lore 5a3dfc0a-eca4-4de1-96cd-b4034f0b8e06@amd.com). An entry stays until
// the host invalidates it: a stale entry keeps sending DMA to the old frame (DOMAIN.md, IOTLB).
//
// UNCONFIRMED (research/amd-snp.md section 8): the entry size for S1 4K over S2 2M. Alexey says
// 2M, Jason disputes it; we cache the S2 translation at the checked size, keyed by GPA, and do not
// cache S1 (the guest's vIOMMU invalidations are not modelled, so S1 changes act at once).

import type { IotlbEntry, IotlbView } from '../api.ts';
import { FRAMES_PER_2M, SZ_2M, SZ_4K, type PageSize } from './size.ts';

/** The result of probe(): reused, read it before the next probe. */
export interface IotlbHit {
  /** The cached entry's GPA (aligned to its size) and HPA. */
  addr: number;
  hpa: number;
  size: PageSize;
}

export class Iotlb implements IotlbView {
  /** gfn -> hpa of the 4K frame. */
  private readonly small = new Map<number, number>();
  /**
   * 4K entries per 2M region (gfn / 512), so that a range question looks at the regions holding
   * entries, not at every frame of the range nor every entry (a host policy asks, for each 2M
   * region it smashes, whether a device caches anything in it).
   */
  private readonly smallPerRegion = new Map<number, number>();
  /** gpa / 2M -> hpa of the 2M region. */
  private readonly large = new Map<number, number>();
  private readonly hit: IotlbHit = { addr: 0, hpa: 0, size: '4K' };
  /** entries() as last listed, until the next insert or invalidation (oracles list them per step). */
  private listed: readonly IotlbEntry[] | undefined = undefined;

  constructor(readonly dev: number) {}

  get size(): number {
    return this.small.size + this.large.size;
  }

  /**
   * The entry translating `gpa`, in a reused object (no allocation on the DMA path). When both a
   * 4K and a 2M entry cover `gpa` the 4K one is used; which one real hardware picks is not
   * documented, and a consistent host never creates both.
   */
  probe(gpa: number): IotlbHit | undefined {
    const gfn = Math.floor(gpa / SZ_4K);
    const small = this.small.get(gfn);
    if (small !== undefined) {
      this.hit.addr = gfn * SZ_4K;
      this.hit.hpa = small;
      this.hit.size = '4K';
      return this.hit;
    }
    const index = Math.floor(gpa / SZ_2M);
    const large = this.large.get(index);
    if (large !== undefined) {
      this.hit.addr = index * SZ_2M;
      this.hit.hpa = large;
      this.hit.size = '2M';
      return this.hit;
    }
    return undefined;
  }

  /** IotlbView: a copy of the entry translating `addr`. */
  lookup(addr: number): IotlbEntry | undefined {
    const hit = this.probe(addr);
    return hit === undefined ? undefined : { dev: this.dev, addr: hit.addr, hpa: hit.hpa, size: hit.size };
  }

  /** Cache `addr` (aligned to `size`) -> `hpa`. */
  insert(addr: number, hpa: number, size: PageSize): void {
    if (size === '2M') {
      const index = Math.floor(addr / SZ_2M);
      // The same entry again changes nothing: entries() stays listed.
      if (this.large.get(index) === hpa) return;
      this.listed = undefined;
      this.large.set(index, hpa);
      return;
    }
    const gfn = Math.floor(addr / SZ_4K);
    if (this.small.get(gfn) === hpa) return;
    this.listed = undefined;
    if (!this.small.has(gfn)) {
      const region = Math.floor(gfn / FRAMES_PER_2M);
      this.smallPerRegion.set(region, (this.smallPerRegion.get(region) ?? 0) + 1);
    }
    this.small.set(gfn, hpa);
  }

  /**
   * Drop every entry overlapping [addr, addr + len), or everything without arguments (the AMD
   * INVALIDATE_IOMMU_PAGES command with the S bit, or the whole domain). Returns how many went.
   * Walks whichever is smaller: the range's frames or the cached entries.
   */
  invalidate(addr?: number, len?: number): number {
    if (addr === undefined) {
      const removed = this.size;
      this.small.clear();
      this.smallPerRegion.clear();
      this.large.clear();
      if (removed > 0) this.listed = undefined;
      return removed;
    }
    const end = addr + (len ?? SZ_4K);
    if (end <= addr) return 0;
    const removed = this.smallIn(Math.floor(addr / SZ_4K), Math.ceil(end / SZ_4K), true) + dropKeysIn(this.large, Math.floor(addr / SZ_2M), Math.ceil(end / SZ_2M));
    // entries() stays valid when nothing went (a flush of a device that caches nothing there).
    if (removed > 0) this.listed = undefined;
    return removed;
  }

  /**
   * IotlbView: some entry overlaps [addr, addr + len). Like invalidate(), walks whichever is
   * smaller, the range's frames or the cached entries, and allocates nothing.
   */
  overlaps(addr: number, len: number): boolean {
    const end = addr + len;
    if (end <= addr) return false;
    return this.smallIn(Math.floor(addr / SZ_4K), Math.ceil(end / SZ_4K), false) > 0 || hasKeyIn(this.large, Math.floor(addr / SZ_2M), Math.ceil(end / SZ_2M));
  }

  /**
   * The 4K entries of gfns [first, end), counted (`drop`: and removed) region by region: only the
   * regions that hold entries are visited (walking whichever is smaller, the regions of the range
   * or those with entries), and a region the range covers whole is answered from its count when
   * nothing is removed. Without `drop` it stops at the first entry found.
   */
  private smallIn(first: number, end: number, drop: boolean): number {
    if (this.small.size === 0) return 0;
    const firstRegion = Math.floor(first / FRAMES_PER_2M);
    const endRegion = Math.ceil(end / FRAMES_PER_2M);
    let found = 0;
    if (endRegion - firstRegion <= this.smallPerRegion.size) {
      for (let region = firstRegion; region < endRegion && (drop || found === 0); region++) {
        const count = this.smallPerRegion.get(region);
        if (count !== undefined) found += this.smallInRegion(region, count, first, end, drop);
      }
    } else {
      // (A Map may lose its current key while iterated: smallInRegion deletes emptied regions.)
      for (const [region, count] of this.smallPerRegion) {
        if (!drop && found > 0) break;
        if (region >= firstRegion && region < endRegion) found += this.smallInRegion(region, count, first, end, drop);
      }
    }
    return found;
  }

  /** smallIn() for one region holding `count` entries. */
  private smallInRegion(region: number, count: number, first: number, end: number, drop: boolean): number {
    const from = Math.max(first, region * FRAMES_PER_2M);
    const to = Math.min(end, (region + 1) * FRAMES_PER_2M);
    if (!drop && to - from === FRAMES_PER_2M) return count;
    let found = 0;
    for (let gfn = from; gfn < to; gfn++) {
      if (!this.small.has(gfn)) continue;
      found++;
      if (!drop) return found;
      this.small.delete(gfn);
    }
    if (found === count) this.smallPerRegion.delete(region);
    else if (found > 0) this.smallPerRegion.set(region, count - found);
    return found;
  }

  /**
   * IotlbView: every cached entry, by address. Frozen and kept until the IOTLB changes: most
   * steps change no entry, and the oracles and the coverage signal list them after every step.
   */
  entries(): Iterable<IotlbEntry> {
    if (this.listed !== undefined) return this.listed;
    const all: IotlbEntry[] = [];
    for (const [gfn, hpa] of this.small) all.push(Object.freeze({ dev: this.dev, addr: gfn * SZ_4K, hpa, size: '4K' }));
    for (const [index, hpa] of this.large) all.push(Object.freeze({ dev: this.dev, addr: index * SZ_2M, hpa, size: '2M' }));
    all.sort((a, b) => a.addr - b.addr || a.hpa - b.hpa);
    this.listed = Object.freeze(all);
    return this.listed;
  }
}

// Both walk whichever is smaller, the key range [first, end) or the map's keys, so neither a huge
// range over a few entries nor a small range over many costs more than it must.

/** Delete every key in [first, end) from `map`; returns how many went. */
function dropKeysIn(map: Map<number, number>, first: number, end: number): number {
  let removed = 0;
  if (end - first <= map.size) {
    for (let key = first; key < end; key++) if (map.delete(key)) removed++;
  } else {
    for (const key of map.keys()) {
      if (key >= first && key < end) {
        map.delete(key);
        removed++;
      }
    }
  }
  return removed;
}

/** Some key of `map` lies in [first, end). */
function hasKeyIn(map: Map<number, number>, first: number, end: number): boolean {
  if (end - first <= map.size) {
    for (let key = first; key < end; key++) if (map.has(key)) return true;
  } else {
    for (const key of map.keys()) if (key >= first && key < end) return true;
  }
  return false;
}
