// Ports of Linux drivers/iommu/generic_pt/kunit_iommu_pt.h and the io-pgtable-arm selftest
// (research/iommupt.md section 5), with their numbers, on every format they apply to.
import { describe, expect, it } from 'vitest';
import { createPageTable, formatSize, type PageTable, type PageTableOptions } from '../../src/model/pagetable/index.ts';
import { G, K, M, greedyLayout, leafTotal, reclaimEmptyTables, seededRandom } from './pagetable-helpers.ts';

const CONFIGS: PageTableOptions[] = [
  { format: 'amdv1' },
  { format: 'vtdss', vaBits: 39 },
  { format: 'vtdss', vaBits: 48 },
  { format: 'x86_64', vaBits: 47 },
  { format: 'x86_64', vaBits: 48 },
];
const name = (c: PageTableOptions): string => `${c.format}${c.vaBits ? `/${c.vaBits}` : ''}`;

/** The model's VA width: the format's, capped at 2^52 (MODEL_MAX_ADDRESS_BITS). */
function maxVaBits(c: PageTableOptions): number {
  return Math.min(c.vaBits ?? (c.format === 'amdv1' ? 64 : 48), 52);
}

/** kunit_iommu.h: safe_pgsize_bitmap keeps sizes below 2^(max_vasz - 1). */
function safeSizes(pt: PageTable, c: PageTableOptions): number[] {
  return pt.pgsizes.filter((s) => s < 2 ** (maxVaBits(c) - 1));
}

/** kunit_generic_pt.h: test OA = 0x74a71445deadbeef mod 2^max_oa, aligned down to the size. */
function testOa(size: number): number {
  const oa = 0x74a71445deadbeefn % (1n << 52n);
  return Number(oa - (oa % BigInt(size)));
}

const alignUp = (v: number, s: number): number => Math.ceil(v / s) * s;

/** check_iova(): every smallest page of [va, va + len) translates to pa + offset. */
function checkIova(pt: PageTable, va: number, pa: number, len: number): void {
  const step = pt.pgsizes[0]!;
  for (let off = 0; off < len; off += step) {
    if (pt.iovaToPhys(va + off) !== pa + off) expect(pt.iovaToPhys(va + off)).toBe(pa + off);
  }
}

/**
 * check_iova() at the cost of the leaves rather than of every 4K page: the leaves tile
 * [va, va + len) with pa + offset, and iova_to_phys agrees at each leaf's first and last
 * byte. Used where the kunit walk would take minutes (multi-GiB ranges, 1000 times).
 */
function checkIovaByLeaves(pt: PageTable, va: number, pa: number, len: number): void {
  let next = va;
  for (const leaf of pt.leaves(va, va + len)) {
    if (leaf.iova !== next || leaf.pa !== pa + (leaf.iova - va) || leaf.iova + leaf.size > va + len) {
      expect({ leaf, next }).toEqual({ leaf: { iova: next, pa: pa + (next - va) }, next });
    }
    const last = leaf.size - 1;
    if (pt.iovaToPhys(leaf.iova) !== leaf.pa) expect(pt.iovaToPhys(leaf.iova)).toBe(leaf.pa);
    if (pt.iovaToPhys(leaf.iova + last) !== leaf.pa + last) expect(pt.iovaToPhys(leaf.iova + last)).toBe(leaf.pa + last);
    next = leaf.iova + leaf.size;
  }
  expect(next).toBe(va + len);
}

// expect() costs microseconds; these run millions of times, so assert only on a mismatch.
function doMap(pt: PageTable, va: number, pa: number, len: number): void {
  const result = pt.map(va, pa, len);
  if (result.mapped !== len || result.error !== undefined) expect(result).toEqual({ mapped: len });
}

function doUnmap(pt: PageTable, va: number, len: number): void {
  const result = pt.unmap(va, len);
  if (result.unmapped !== len || result.error !== undefined) expect(result).toEqual({ unmapped: len });
}

/**
 * pt_kunit_iommu_exit() checks NR_SECONDARY_PAGETABLE after freeing the domain. Here: once
 * the empty tables are reclaimed, only the root is left (tops added by increase_top() sit
 * under item 0 of the root and go with the rest).
 */
function expectBaseline(pt: PageTable, from: number, to: number): void {
  reclaimEmptyTables(pt, from, to);
  expect(pt.stats()).toMatchObject({ leavesBySize: {}, tables: 1, pendingFree: 0 });
}

describe('kunit_iommu_pt.h', () => {
  describe('test_increase_level (amdv1, PT_FEAT_DYNAMIC_TOP)', () => {
    for (const vaBits of [52, 48]) {
      it(`grows the top one level per map at top.last_va + 1 up to ${vaBits} bits`, () => {
        const pt = createPageTable({ format: 'amdv1', vaBits });
        expect(pt.stats().topLevel).toBe(2);
        let growths = 0;
        for (let top = 2; 2 ** (12 + 9 * (top + 1)) < 2 ** vaBits; top++) {
          const lastVa = 2 ** (12 + 9 * (top + 1)) - 1;
          doMap(pt, lastVa + 1, 0, 4 * K);
          expect(pt.stats().topLevel).toBe(top + 1);
          growths++;
        }
        expect(growths).toBe(vaBits === 52 ? 2 : 1);
        // Each growth adds one top; each mapping adds its own lower tables below it.
        expect(pt.stats().tables).toBe(growths + 1 + (vaBits === 52 ? 3 + 4 : 3));
      });
    }

    it('cannot grow when the VA fits the starting level ({start=2, va=32})', () => {
      const pt = createPageTable({ format: 'amdv1', vaBits: 32 });
      doMap(pt, 2 ** 32 - 4 * K, 0, 4 * K);
      expect(pt.map(2 ** 32, 0, 4 * K)).toEqual({ mapped: 0, error: 'ERANGE' });
      expect(pt.stats().topLevel).toBe(2);
    });
  });

  for (const c of CONFIGS) {
    describe(name(c), () => {
      it('test_map_simple: one leaf per size, translated, unmapped by size', () => {
        const pt = createPageTable(c);
        const sizes = safeSizes(pt, c);
        const start = 4 * K * 256;
        let va = start;
        for (const size of sizes) {
          va = alignUp(va, size);
          doMap(pt, va, testOa(size), size);
          if (size <= 2 * G) checkIova(pt, va, testOa(size), size);
          va += size;
        }
        const end = va;
        const bySize = pt.stats().leavesBySize;
        expect(Object.values(bySize).every((n) => n === 1)).toBe(true);
        expect(leafTotal(pt)).toBe(sizes.length);

        va = start;
        for (const size of sizes) {
          va = alignUp(va, size);
          doUnmap(pt, va, size);
          va += size;
        }
        expect(leafTotal(pt)).toBe(0);
        expectBaseline(pt, 0, end);
      });

      it('test_map_table_to_oa: pieces of every size fill the largest page below 16G', () => {
        const pt = createPageTable(c);
        const max = Math.max(...pt.pgsizes.filter((s) => s < 16 * G));
        expect(max).toBe(c.format === 'amdv1' ? 8 * G : 1 * G);
        const va = alignUp(4 * K * 256, max);
        for (const len of pt.pgsizes.filter((s) => s <= max)) {
          const pa = testOa(len);
          for (let off = 0; off !== max; off += len) doMap(pt, va + off, pa + off, len);
          checkIovaByLeaves(pt, va, pa, max);
          expect(pt.stats().leavesBySize).toEqual({ [formatSize(len)]: max / len });
          if (len === max) {
            doUnmap(pt, va, max);
          } else {
            doUnmap(pt, va, max / 2);
            for (let off = max / 2; off !== max; off += len) doUnmap(pt, va + off, len);
          }
          expect(leafTotal(pt)).toBe(0);
          // iommu_unmap() ends with iommu_iotlb_sync(): the freed tables go back now.
          pt.sync();
          expect(pt.stats().pendingFree).toBe(0);
        }
        expectBaseline(pt, va, va + max);
      });

      it('test_unmap_split: a small unmap at a large leaf removes the whole leaf and stops there', () => {
        const pt = createPageTable(c);
        const sizes = safeSizes(pt, c);
        let pairs = 0;
        for (const small of sizes) {
          for (const large of sizes.filter((s) => s > small)) {
            doMap(pt, 0, 0, large);
            expect(pt.unmap(0, small)).toEqual({ unmapped: large });

            doMap(pt, 0, 0, large);
            doMap(pt, large, 0, large);
            expect(pt.unmap(0, small)).toEqual({ unmapped: large });
            expect(pt.unmap(large, large)).toEqual({ unmapped: large });
            pairs++;
          }
        }
        expect(pairs).toBe((sizes.length * (sizes.length - 1)) / 2);
        expect(leafTotal(pt)).toBe(0);
      });

      it('test_random_map: 1000 random ranges in a 1G window, EADDRINUSE resolved by unmapping', () => {
        const pt = createPageTable(c);
        const random = seededRandom(0x1000 + CONFIGS.indexOf(c));
        const below = (n: number): number => Math.floor(random() * n);
        // clamp_range(): [MAPLE_RESERVED_RANGE (aligned), va + 1G]
        const rangeVa = 4 * K;
        const lastVa = 1 * G;
        const live: { start: number; end: number }[] = [];
        let collisions = 0;
        let mappedRanges = 0;

        const unmapCollisions = (start: number, last: number): void => {
          for (let i = live.length - 1; i >= 0; i--) {
            const r = live[i]!;
            if (r.start > last || r.end - 1 < start) continue;
            live.splice(i, 1);
            checkIovaByLeaves(pt, r.start, r.start, r.end - r.start);
            doUnmap(pt, r.start, r.end - r.start);
          }
        };

        for (let iter = 0; iter !== 1000; iter++) {
          let start = below(lastVa - rangeVa);
          let end = below(lastVa - start);
          start = Math.floor(start / (4 * K)) * 4 * K;
          end = alignUp(end, 4 * K);
          start += rangeVa;
          end += start;
          if (start < rangeVa || end > lastVa + 1 || start >= end) continue;

          const pa = start;
          const result = pt.map(start, pa, end - start);
          if (result.error !== undefined) {
            expect(result.error).toBe('EADDRINUSE');
            collisions++;
            // iommu_map() rolls back what map_pages() managed before the collision.
            if (result.mapped > 0) doUnmap(pt, start, result.mapped);
            unmapCollisions(start, end - 1);
            doMap(pt, start, pa, end - start);
          }
          live.push({ start, end });
          mappedRanges++;
          checkIovaByLeaves(pt, start, pa, end - start);
        }
        expect(mappedRanges).toBeGreaterThan(900);
        expect(collisions).toBeGreaterThan(100);

        unmapCollisions(0, Number.MAX_SAFE_INTEGER);
        expect(leafTotal(pt)).toBe(0);
        expectBaseline(pt, 0, lastVa);
      });

      it('test_pgsize_boundary: va 0xfef80000, pa 0x208b95d000, len 0x20000 maps', () => {
        const pt = createPageTable(c);
        doMap(pt, 0xfef80000, 0x208b95d000, 0xfef9ffff - 0xfef80000 + 1);
        // pa is only 4K-aligned, so every leaf is 4K whatever the format offers.
        expect(pt.stats().leavesBySize).toEqual({ '4K': 32 });
        checkIova(pt, 0xfef80000, 0x208b95d000, 0x20000);
      });

      it('io-pgtable-arm selftest: map, overlapping map fails, iova_to_phys(iova + 42), remap', () => {
        const pt = createPageTable(c);
        const sizes = [4 * K, 2 * M, 1 * G].filter((s) => pt.pgsizes.includes(s));
        for (const iova of [42, 1 * G + 42, 2 * G + 42]) expect(pt.iovaToPhys(iova)).toBeUndefined();

        sizes.forEach((size, k) => {
          const iova = k * G;
          doMap(pt, iova, iova, size);
          expect(pt.map(iova, iova + size, size)).toEqual({ mapped: 0, error: 'EADDRINUSE' });
          expect(pt.iovaToPhys(iova + 42)).toBe(iova + 42);
        });
        sizes.forEach((size, k) => {
          const iova = k * G;
          doUnmap(pt, iova, size);
          expect(pt.iovaToPhys(iova + 42)).toBeUndefined();
          doMap(pt, iova, iova, size);
          expect(pt.iovaToPhys(iova + 42)).toBe(iova + 42);
        });

        // The last largest page of the input address space.
        const largest = pt.pgsizes[pt.pgsizes.length - 1]!;
        const iova = 2 ** maxVaBits(c) - largest;
        doMap(pt, iova, 0, largest);
        expect(pt.iovaToPhys(iova + 42)).toBe(42);
        doUnmap(pt, iova, largest);
      });
    });
  }

  for (const c of CONFIGS.filter((x) => x.format !== 'amdv1')) {
    it(`test_mixed on ${name(c)}: 0x3fe400000 + 0xc2200000 is 14x2M, 3x1G, 3x2M`, () => {
      const pt = createPageTable(c);
      const start = 0x3fe400 * 4 * K;
      const len = 0x4c0600 * 4 * K - start;
      expect([start, len]).toEqual([0x3fe400000, 0xc2200000]);
      doMap(pt, start, start, len);
      const leaves = [...pt.leaves()];
      expect(leaves).toHaveLength(20);
      expect(leaves.map((l) => l.size)).toEqual([...Array<number>(14).fill(2 * M), G, G, G, 2 * M, 2 * M, 2 * M]);
      expect(leaves).toEqual(greedyLayout(start, start, len, pt.pgsizes));
      checkIova(pt, start, start, len);
      expect(pt.iovaToPhys(start - 1)).toBeUndefined();
      expect(pt.iovaToPhys(start + len)).toBeUndefined();
    });
  }

  it('test_mixed is skipped on amdv1 (4M..512M sizes between 2M and 1G), which lays it out with them', () => {
    const pt = createPageTable({ format: 'amdv1' });
    doMap(pt, 0x3fe400000, 0x3fe400000, 0xc2200000);
    expect([...pt.leaves()]).toEqual(greedyLayout(0x3fe400000, 0x3fe400000, 0xc2200000, pt.pgsizes));
    expect(leafTotal(pt)).toBeLessThan(20);
  });
});
