// Shared by the pagetable tests: sizes, a seeded RNG, an independent greedy layout, a flat
// reference model, and a way to give empty tables back so table counts can be compared.
import type { Leaf, MapResult, PageTable, UnmapResult } from '../../src/model/pagetable/index.ts';

export const K = 1024;
export const M = 1024 * K;
export const G = 1024 * M;
export const T = 1024 * G;

/** mulberry32: a small deterministic PRNG returning floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function leafTotal(pt: PageTable): number {
  return Object.values(pt.stats().leavesBySize).reduce((a, b) => a + b, 0);
}

/**
 * The greedy layout written the way the core's iommu_pgsize() states it, on BigInts: the
 * largest allowed size not above the lowest set bit of (va | pa) nor the highest power of
 * two in the remaining length. Independent of the model's own scan.
 */
export function greedyLayout(iova: number, pa: number, len: number, sizes: readonly number[]): Leaf[] {
  const allowed = sizes.map(BigInt).sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
  const out: Leaf[] = [];
  let va = BigInt(iova);
  let oa = BigInt(pa);
  let rest = BigInt(len);
  while (rest > 0n) {
    const bits = va | oa;
    const alignCap = bits === 0n ? 1n << 64n : bits & -bits;
    let lenCap = 1n;
    while (lenCap * 2n <= rest) lenCap *= 2n;
    const cap = alignCap < lenCap ? alignCap : lenCap;
    const size = allowed.find((s) => s <= cap);
    if (size === undefined) throw new Error(`no page size fits at ${va.toString(16)}`);
    out.push({ iova: Number(va), pa: Number(oa), size: Number(size) });
    va += size;
    oa += size;
    rest -= size;
  }
  return out;
}

/**
 * The semantics of research/iommupt.md sections 2-3 on a flat map from smallest-page index to
 * its leaf: no tables, no levels.
 */
export class FlatReference {
  private readonly unit: number;
  private readonly pages = new Map<number, Leaf>();
  readonly leafByStart = new Map<number, Leaf>();

  constructor(private readonly sizes: readonly number[]) {
    this.unit = Math.min(...sizes);
  }

  /** `cap`: leaves no larger than it (PageTable.map()'s maxLeaf). */
  map(iova: number, pa: number, len: number, cap = Infinity): MapResult {
    let mapped = 0;
    for (const leaf of greedyLayout(iova, pa, len, this.sizes.filter((size) => size <= cap))) {
      for (let a = leaf.iova; a < leaf.iova + leaf.size; a += this.unit) {
        if (this.pages.has(a / this.unit)) return { mapped, error: 'EADDRINUSE' };
      }
      for (let a = leaf.iova; a < leaf.iova + leaf.size; a += this.unit) this.pages.set(a / this.unit, leaf);
      this.leafByStart.set(leaf.iova, leaf);
      mapped += leaf.size;
    }
    return { mapped };
  }

  unmap(iova: number, len: number): UnmapResult {
    let pos = iova;
    let unmapped = 0;
    while (pos < iova + len) {
      const leaf = this.pages.get(pos / this.unit);
      if (leaf === undefined) break;
      if (leaf.iova !== pos) return { unmapped, error: 'EINVAL' };
      for (let a = leaf.iova; a < leaf.iova + leaf.size; a += this.unit) this.pages.delete(a / this.unit);
      this.leafByStart.delete(leaf.iova);
      unmapped += leaf.size;
      pos += leaf.size;
    }
    return { unmapped };
  }

  iovaToPhys(iova: number): number | undefined {
    const leaf = this.pages.get(Math.floor(iova / this.unit));
    return leaf === undefined ? undefined : leaf.pa + (iova - leaf.iova);
  }

  sortedLeaves(): Leaf[] {
    return [...this.leafByStart.values()].sort((a, b) => a.iova - b.iova);
  }
}

/**
 * Unmap frees a table only when the range covers it and every item in it was mapped, so
 * tables emptied piecemeal stay. To return to the baseline, map each top-level item in
 * [from, to) whole (which turns the empty tables below into leaves, freeing them), unmap it
 * (freeing what the map had to create) and sync. Expects no leaves there.
 */
export function reclaimEmptyTables(pt: PageTable, from: number, to: number): void {
  const itemSize = 2 ** (12 + 9 * pt.stats().topLevel);
  for (let item = Math.floor(from / itemSize) * itemSize; item < to; item += itemSize) {
    const mapped = pt.map(item, 0, itemSize);
    if (mapped.error !== undefined) throw new Error(`reclaim map at ${item.toString(16)}: ${mapped.error}`);
    const unmapped = pt.unmap(item, itemSize);
    if (unmapped.unmapped !== itemSize) throw new Error(`reclaim unmap at ${item.toString(16)}: ${unmapped.unmapped}`);
  }
  pt.sync();
}
