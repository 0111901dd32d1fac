// Unit tests of the IO page table model: the rules of research/iommupt.md sections 1-3, one
// at a time, with the numbers worked out by hand.
import { describe, expect, it } from 'vitest';
import { createPageTable, formatSize, formats } from '../../src/model/pagetable/index.ts';
import { G, K, M, T, leafTotal } from './pagetable-helpers.ts';

describe('formats and page sizes', () => {
  it('amdv1 offers every power of two from 4K to 2^51 except 512G', () => {
    const pt = createPageTable({ format: 'amdv1' });
    const expected: number[] = [];
    for (let lg2 = 12; lg2 <= 51; lg2++) if (lg2 !== 39) expected.push(2 ** lg2);
    expect(pt.pgsizes).toEqual(expected);
    expect(pt.pgsizes).toHaveLength(39);
    expect(pt.format).toBe('amdv1');
  });

  it('amdv1 per level: L0 4K-1M, L1 2M-512M, L2 1G-256G, L3 1T-128T, L4 256T+, nothing at L5', () => {
    const lg2 = formats.amdv1.leafLg2ByLevel.map((sizes) => [Math.min(...sizes), Math.max(...sizes)]);
    expect(lg2.slice(0, 5)).toEqual([[12, 20], [21, 29], [30, 38], [40, 47], [48, 51]]);
    expect(formats.amdv1.leafLg2ByLevel[5]).toEqual([]);
    // The L3 bitmap is 0xff0000000000.
    const l3 = formats.amdv1.leafLg2ByLevel[3]!.reduce((bitmap, n) => bitmap + 2 ** n, 0);
    expect(l3).toBe(0xff0000000000);
  });

  it('vtdss and x86_64 offer 4K, 2M, 1G at every depth', () => {
    for (const vaBits of [39, 48, 57]) expect(createPageTable({ format: 'vtdss', vaBits }).pgsizes).toEqual([4 * K, 2 * M, G]);
    for (const vaBits of [47, 48, 56, 57]) expect(createPageTable({ format: 'x86_64', vaBits }).pgsizes).toEqual([4 * K, 2 * M, G]);
  });

  it('the top level follows the VA width for fixed formats, and starts at 2 for amdv1', () => {
    expect(createPageTable({ format: 'vtdss', vaBits: 39 }).stats().topLevel).toBe(2);
    expect(createPageTable({ format: 'vtdss' }).stats().topLevel).toBe(3);
    expect(createPageTable({ format: 'vtdss', vaBits: 57 }).stats().topLevel).toBe(4);
    expect(createPageTable({ format: 'x86_64' }).stats().topLevel).toBe(3);
    expect(createPageTable({ format: 'x86_64', vaBits: 57 }).stats().topLevel).toBe(4);
    expect(createPageTable({ format: 'amdv1' }).stats()).toEqual({ leavesBySize: {}, tables: 1, pendingFree: 0, topLevel: 2 });
  });

  it('a pgsize bitmap restricts sizes, including bits above 2^32', () => {
    const pt = createPageTable({ format: 'amdv1', pgsizes: 2 ** 12 + 2 ** 21 + 2 ** 40 });
    expect(pt.pgsizes).toEqual([4 * K, 2 * M, T]);
    // Linux's GENMASK(51,12) & ~BIT(39) is the full amdv1 bitmap.
    const full = 2 ** 52 - 2 ** 12 - 2 ** 39;
    expect(createPageTable({ format: 'amdv1', pgsizes: full }).pgsizes).toHaveLength(39);
  });

  it('a list of sizes restricts sizes and is sorted', () => {
    expect(createPageTable({ format: 'vtdss', pgsizes: [G, 4 * K] }).pgsizes).toEqual([4 * K, G]);
  });

  it('rejects a size the format cannot hold, naming it', () => {
    expect(() => createPageTable({ format: 'amdv1', pgsizes: 2 ** 12 + 2 ** 39 })).toThrow(/512G/);
    expect(() => createPageTable({ format: 'vtdss', pgsizes: [4 * K, 8 * K] })).toThrow(/8K/);
    expect(() => createPageTable({ format: 'x86_64', pgsizes: [3 * K] })).toThrow(/3072/);
    // amdv1 with a 32-bit VA reaches levels 0-2 only (NS(get_info)()).
    expect(() => createPageTable({ format: 'amdv1', vaBits: 32, pgsizes: [T] })).toThrow(/1T/);
  });

  it('rejects an empty restriction, an unknown format and an unsupported VA width', () => {
    expect(() => createPageTable({ format: 'vtdss', pgsizes: [] })).toThrow(/empty/);
    expect(() => createPageTable({ format: 'vtdss', pgsizes: 0 })).toThrow(/empty/);
    expect(() => createPageTable({ format: 'armv8' as 'vtdss' })).toThrow(/armv8/);
    expect(() => createPageTable({ format: 'vtdss', vaBits: 40 })).toThrow(/40/);
  });

  it('formatSize writes sizes the kernel way', () => {
    expect([4 * K, 2 * M, G, 4 * M, 512 * G, T, 256 * T, 2 ** 50, 1536, 0].map(formatSize)).toEqual([
      '4K', '2M', '1G', '4M', '512G', '1T', '256T', '1P', '1536', '0',
    ]);
  });
});

describe('map', () => {
  it('lays out greedily: the largest size both addresses are aligned to and the rest fits', () => {
    const pt = createPageTable({ format: 'vtdss' });
    // 2M-aligned va and pa, 4M + 8K: 2M, 2M, 4K, 4K.
    expect(pt.map(2 * M, 6 * M, 4 * M + 8 * K)).toEqual({ mapped: 4 * M + 8 * K });
    expect([...pt.leaves()].map((l) => [l.iova, l.pa, l.size])).toEqual([
      [2 * M, 6 * M, 2 * M],
      [4 * M, 8 * M, 2 * M],
      [6 * M, 10 * M, 4 * K],
      [6 * M + 4 * K, 10 * M + 4 * K, 4 * K],
    ]);
  });

  it('the pa alignment limits the size as much as the va', () => {
    const pt = createPageTable({ format: 'x86_64' });
    expect(pt.map(0, 4 * K, 2 * M)).toEqual({ mapped: 2 * M });
    expect(pt.stats().leavesBySize).toEqual({ '4K': 512 });
  });

  it('pgsizes restricted to 4K gives only 4K leaves', () => {
    const pt = createPageTable({ format: 'amdv1', pgsizes: [4 * K] });
    expect(pt.map(G, G, 4 * M)).toEqual({ mapped: 4 * M });
    expect(pt.stats().leavesBySize).toEqual({ '4K': 1024 });
    expect(pt.iovaToPhys(G + 3 * M + 5)).toBe(G + 3 * M + 5);
  });

  it('amdv1 uses contiguous sizes between the level sizes, and skips 512G', () => {
    const pt = createPageTable({ format: 'amdv1' });
    expect(pt.map(0, 0, 8 * K + 4 * M + 2 * M)).toEqual({ mapped: 8 * K + 4 * M + 2 * M });
    // From 0 with 6M + 8K left: 4M (largest power of two that fits), then 2M, then 8K.
    expect([...pt.leaves()].map((l) => formatSize(l.size))).toEqual(['4M', '2M', '8K']);
    const big = createPageTable({ format: 'amdv1' });
    expect(big.map(0, 0, 512 * G)).toEqual({ mapped: 512 * G });
    expect(big.stats().leavesBySize).toEqual({ '256G': 2 });
    expect(big.map(T, T, T)).toEqual({ mapped: T });
    expect(big.stats().leavesBySize).toEqual({ '256G': 2, '1T': 1 });
    expect(big.stats().topLevel).toBe(3);
  });

  it('a contiguous leaf occupies all its items: any overlap collides', () => {
    const pt = createPageTable({ format: 'amdv1' });
    expect(pt.map(0, 0, 64 * K)).toEqual({ mapped: 64 * K });
    expect(pt.stats().leavesBySize).toEqual({ '64K': 1 });
    expect(pt.leafAt(60 * K)).toEqual({ iova: 0, pa: 0, size: 64 * K });
    expect(pt.map(32 * K, 0, 4 * K)).toEqual({ mapped: 0, error: 'EADDRINUSE' });
    expect(pt.map(0, 0, 128 * K)).toEqual({ mapped: 0, error: 'EADDRINUSE' });
    // 4M = two 2M items of one L1 table; a 4K map inside its second half needs a table there.
    expect(pt.map(4 * M, 4 * M, 4 * M)).toEqual({ mapped: 4 * M });
    expect(pt.map(6 * M + 4 * K, 0, 4 * K)).toEqual({ mapped: 0, error: 'EADDRINUSE' });
  });

  it('collisions are -EADDRINUSE with the bytes done before: no split, no merge', () => {
    const pt = createPageTable({ format: 'vtdss' });
    expect(pt.map(8 * K, 8 * K, 4 * K)).toEqual({ mapped: 4 * K });
    // 0..16K: 4K at 0 and 4K at 4K go in, then 8K collides.
    expect(pt.map(0, 0, 16 * K)).toEqual({ mapped: 8 * K, error: 'EADDRINUSE' });
    // The caller rolls back what was mapped.
    expect(pt.unmap(0, 8 * K)).toEqual({ unmapped: 8 * K });
    expect(pt.iovaToPhys(8 * K)).toBe(8 * K);
    expect(pt.iovaToPhys(0)).toBeUndefined();

    // A leaf where a table is needed: a 4K map inside a 2M leaf.
    expect(pt.map(2 * M, 2 * M, 2 * M)).toEqual({ mapped: 2 * M });
    expect(pt.map(3 * M, 0, 4 * K)).toEqual({ mapped: 0, error: 'EADDRINUSE' });
    // A leaf where a table holding a leaf is: a 2M map over the 4K at 8K.
    expect(pt.map(0, 0, 2 * M)).toEqual({ mapped: 0, error: 'EADDRINUSE' });
    expect(pt.stats().leavesBySize).toEqual({ '4K': 1, '2M': 1 });
  });

  it('an empty table is replaced by a leaf; the map syncs its own gather (map_range()), not the driver\'s', () => {
    const pt = createPageTable({ format: 'x86_64' });
    expect(pt.map(0, 0, 4 * K)).toEqual({ mapped: 4 * K });
    expect(pt.stats().tables).toBe(4);
    expect(pt.unmap(0, 4 * K)).toEqual({ unmapped: 4 * K });
    // Not fully covered: the L0 table stays, empty.
    expect(pt.stats()).toMatchObject({ tables: 4, pendingFree: 0 });
    expect(pt.sync()).toEqual([{ iova: 0, len: 4 * K }]);

    expect(pt.map(0, 0, 2 * M)).toEqual({ mapped: 2 * M });
    // map_range() gathers the replaced item (its IOTLB and walk-cache entries) and the detached
    // table in a gather of its own, and syncs it before returning: the table is freed now, and
    // the caller invalidates the range; the driver's gather holds nothing of it.
    expect(pt.stats()).toMatchObject({ leavesBySize: { '2M': 1 }, tables: 3, pendingFree: 0 });
    expect(pt.takeMapInvalidations()).toEqual([{ iova: 0, len: 2 * M }]);
    expect(pt.takeMapInvalidations()).toEqual([]);
    expect(pt.sync()).toEqual([]);
  });

  it('a large leaf replaces a whole empty subtree, every table of it freed by the map\'s own sync', () => {
    const pt = createPageTable({ format: 'vtdss' });
    for (const va of [0, 4 * M, 8 * M]) pt.map(va, va, 4 * K);
    for (const va of [0, 4 * M, 8 * M]) pt.unmap(va, 4 * K);
    expect(pt.stats().tables).toBe(1 + 1 + 1 + 3);
    expect(pt.map(0, 0, G)).toEqual({ mapped: G });
    // The L1 table and its three L0 tables went; the unmaps' three ranges still wait for sync().
    expect(pt.stats()).toMatchObject({ leavesBySize: { '1G': 1 }, tables: 2, pendingFree: 0 });
    expect(pt.takeMapInvalidations()).toEqual([{ iova: 0, len: G }]);
    expect(pt.sync()).toHaveLength(3);
  });

  it('EINVAL: misaligned, zero or negative arguments', () => {
    const pt = createPageTable({ format: 'amdv1' });
    const einval = { mapped: 0, error: 'EINVAL' };
    expect(pt.map(2 * K, 0, 4 * K)).toEqual(einval);
    expect(pt.map(0, 2 * K, 4 * K)).toEqual(einval);
    expect(pt.map(0, 0, 6 * K)).toEqual(einval);
    expect(pt.map(0, 0, 0)).toEqual(einval);
    expect(pt.map(-4 * K, 0, 4 * K)).toEqual(einval);
    expect(pt.map(0.5, 0, 4 * K)).toEqual(einval);
    // The smallest allowed size decides: with 2M pages, a 4K-aligned range is invalid.
    const huge = createPageTable({ format: 'vtdss', pgsizes: [2 * M, G] });
    expect(huge.map(4 * K, 4 * K, 2 * M)).toEqual(einval);
    expect(huge.map(0, 0, 4 * K)).toEqual(einval);
    expect(leafTotal(pt) + leafTotal(huge)).toBe(0);
  });

  it('ERANGE: an OA beyond 52 bits, or a VA beyond the table', () => {
    const amd = createPageTable({ format: 'amdv1' });
    expect(amd.map(0, 2 ** 52, 4 * K)).toEqual({ mapped: 0, error: 'ERANGE' });
    expect(amd.map(0, 2 ** 52 - 4 * K, 8 * K)).toEqual({ mapped: 0, error: 'ERANGE' });
    expect(amd.map(2 ** 52, 0, 4 * K)).toEqual({ mapped: 0, error: 'ERANGE' });
    expect(createPageTable({ format: 'vtdss' }).map(2 ** 48, 0, 4 * K)).toEqual({ mapped: 0, error: 'ERANGE' });
    expect(createPageTable({ format: 'vtdss', vaBits: 39 }).map(2 ** 39 - 4 * K, 0, 8 * K)).toEqual({ mapped: 0, error: 'ERANGE' });
    expect(createPageTable({ format: 'x86_64', vaBits: 47 }).map(2 ** 47, 0, 4 * K)).toEqual({ mapped: 0, error: 'ERANGE' });
    expect(createPageTable({ format: 'amdv1', vaBits: 32 }).map(2 ** 32, 0, 4 * K)).toEqual({ mapped: 0, error: 'ERANGE' });
    // The last page below each limit is fine.
    expect(amd.map(2 ** 52 - 4 * K, 2 ** 52 - 4 * K, 4 * K)).toEqual({ mapped: 4 * K });
    expect(createPageTable({ format: 'vtdss' }).map(2 ** 48 - 4 * K, 0, 4 * K)).toEqual({ mapped: 4 * K });
  });

  it('ENXIO (no usable size) cannot happen behind the core alignment check: EINVAL comes first', () => {
    // pt_compute_best_pgsize() can only return 0 for an address not aligned to the smallest
    // size, which iommu_map() already rejected.
    const pt = createPageTable({ format: 'vtdss', pgsizes: [2 * M] });
    expect(pt.map(4 * K, 0, 2 * M).error).toBe('EINVAL');
    expect(pt.map(2 * M, 2 * M, 6 * M)).toEqual({ mapped: 6 * M });
    expect(pt.stats().leavesBySize).toEqual({ '2M': 3 });
  });

  it('amdv1 grows its top to reach a VA beyond the table, item 0 pointing to the old top', () => {
    const pt = createPageTable({ format: 'amdv1' });
    expect(pt.map(0, 0, 4 * K)).toEqual({ mapped: 4 * K });
    expect(pt.stats()).toMatchObject({ tables: 3, topLevel: 2 });
    expect(pt.map(2 ** 39, 0, 4 * K)).toEqual({ mapped: 4 * K });
    // One new top plus L2, L1, L0 under its item 1.
    expect(pt.stats()).toMatchObject({ tables: 7, topLevel: 3 });
    expect(pt.iovaToPhys(0)).toBe(0);
    expect(pt.iovaToPhys(2 ** 39 + 7)).toBe(7);
    // A single 256T leaf needs level 4 even though the range fits in 2^48.
    expect(pt.map(2 ** 48, 0, 2 ** 48)).toEqual({ mapped: 2 ** 48 });
    expect(pt.stats()).toMatchObject({ topLevel: 4, leavesBySize: { '4K': 2, '256T': 1 } });
  });

  it('a table spanning 2^48 with a handful of mappings has a handful of tables', () => {
    const pt = createPageTable({ format: 'vtdss' });
    const vas = [0, 2 ** 40, 2 ** 47, 2 ** 48 - 4 * K];
    for (const va of vas) expect(pt.map(va, va, 4 * K)).toEqual({ mapped: 4 * K });
    // The root plus an L2, L1 and L0 table per mapping (each in its own 512G item).
    expect(pt.stats().tables).toBe(1 + 3 * vas.length);
    expect([...pt.leaves()].map((l) => l.iova)).toEqual(vas);
  });
});

describe('unmap', () => {
  it('from inside a leaf is EINVAL and removes nothing', () => {
    const pt = createPageTable({ format: 'vtdss' });
    pt.map(2 * M, 0, 2 * M);
    expect(pt.unmap(3 * M, 4 * K)).toEqual({ unmapped: 0, error: 'EINVAL' });
    expect(pt.unmap(2 * M + 4 * K, 2 * M)).toEqual({ unmapped: 0, error: 'EINVAL' });
    expect(pt.iovaToPhys(3 * M)).toBe(M);
    expect(pt.sync()).toEqual([]);
  });

  it('from inside an amdv1 contiguous leaf is EINVAL too', () => {
    const pt = createPageTable({ format: 'amdv1' });
    pt.map(0, 0, 16 * K);
    expect(pt.stats().leavesBySize).toEqual({ '16K': 1 });
    expect(pt.unmap(4 * K, 4 * K)).toEqual({ unmapped: 0, error: 'EINVAL' });
    expect(pt.unmap(0, 4 * K)).toEqual({ unmapped: 16 * K });
    expect(leafTotal(pt)).toBe(0);
  });

  it("at a leaf's first byte removes the whole leaf and reports its size", () => {
    const pt = createPageTable({ format: 'x86_64' });
    pt.map(G, 0, G);
    expect(pt.unmap(G, 4 * K)).toEqual({ unmapped: G });
    expect(pt.iovaToPhys(G + 5)).toBeUndefined();
    expect(pt.sync()).toEqual([{ iova: G, len: G }]);
  });

  it('spans several maps, stops at an empty item, never continues past the request', () => {
    const pt = createPageTable({ format: 'vtdss' });
    pt.map(0, 0, 8 * K);
    pt.map(8 * K, 100 * M, 2 * M - 8 * K);
    pt.map(2 * M, 2 * M, 2 * M);
    pt.map(8 * M, 8 * M, 4 * K);
    // Across the two first maps and the 2M leaf, then the hole at 4M stops the walk.
    expect(pt.unmap(0, 16 * M)).toEqual({ unmapped: 4 * M });
    expect(pt.iovaToPhys(8 * M)).toBe(8 * M);
    pt.map(0, 0, 16 * K);
    expect(pt.unmap(0, 8 * K)).toEqual({ unmapped: 8 * K });
    expect(pt.iovaToPhys(8 * K)).toBe(8 * K);
    // Nothing mapped at the start: nothing unmapped, no error.
    expect(pt.unmap(16 * M, 4 * K)).toEqual({ unmapped: 0 });
  });

  it('misaligned or out-of-range requests', () => {
    const pt = createPageTable({ format: 'vtdss' });
    pt.map(0, 0, 4 * K);
    expect(pt.unmap(2 * K, 4 * K)).toEqual({ unmapped: 0, error: 'EINVAL' });
    expect(pt.unmap(0, 2 * K)).toEqual({ unmapped: 0, error: 'EINVAL' });
    expect(pt.unmap(0, 0)).toEqual({ unmapped: 0 });
    // make_range() fails beyond the table: unmap_pages() returns 0.
    expect(pt.unmap(0, 2 ** 49)).toEqual({ unmapped: 0 });
    expect(pt.iovaToPhys(0)).toBe(0);
  });

  it('frees a table only when the range fully covers it, at sync', () => {
    const pt = createPageTable({ format: 'vtdss' });
    // pa only 4K-aligned: 512 4K leaves fill one L0 table.
    expect(pt.map(2 * M, 4 * K, 2 * M)).toEqual({ mapped: 2 * M });
    expect(pt.stats()).toMatchObject({ leavesBySize: { '4K': 512 }, tables: 4 });
    expect(pt.unmap(2 * M, 2 * M)).toEqual({ unmapped: 2 * M });
    expect(pt.stats()).toMatchObject({ leavesBySize: {}, tables: 3, pendingFree: 1 });
    expect(pt.sync()).toEqual([{ iova: 2 * M, len: 2 * M }]);
    expect(pt.stats()).toMatchObject({ tables: 3, pendingFree: 0 });
    expect(pt.sync()).toEqual([]);
  });

  it('a covering range that stops at an empty item frees nothing', () => {
    const pt = createPageTable({ format: 'vtdss' });
    pt.map(2 * M, 4 * K, 2 * M - 4 * K);
    expect(pt.unmap(2 * M, 2 * M)).toEqual({ unmapped: 2 * M - 4 * K });
    expect(pt.stats()).toMatchObject({ tables: 4, pendingFree: 0 });
  });

  it('frees every fully covered level in one call', () => {
    const pt = createPageTable({ format: 'x86_64', pgsizes: [2 * M] });
    // 512 2M leaves fill one L1 table; the 1G range covers it.
    expect(pt.map(G, 0, G)).toEqual({ mapped: G });
    expect(pt.stats()).toMatchObject({ leavesBySize: { '2M': 512 }, tables: 3 });
    expect(pt.unmap(G, G)).toEqual({ unmapped: G });
    expect(pt.stats()).toMatchObject({ tables: 2, pendingFree: 1 });
  });

  it('gathers invalidation ranges, merging adjacent ones, until sync', () => {
    const pt = createPageTable({ format: 'amdv1' });
    pt.map(0, 0, 8 * K);
    pt.map(8 * K, 8 * K, 8 * K);
    pt.map(M, M, 4 * K);
    pt.unmap(0, 8 * K);
    pt.unmap(8 * K, 8 * K);
    pt.unmap(M, 4 * K);
    // A 4K request at the start of a 2M leaf gathers the whole leaf.
    pt.map(4 * M, 4 * M, 2 * M);
    pt.unmap(4 * M, 4 * K);
    expect(pt.sync()).toEqual([
      { iova: 0, len: 16 * K },
      { iova: M, len: 4 * K },
      { iova: 4 * M, len: 2 * M },
    ]);
    expect(pt.sync()).toEqual([]);
  });

  it('a freed table stays pending until sync while a new one is allocated beside it', () => {
    const pt = createPageTable({ format: 'vtdss', pgsizes: [4 * K] });
    pt.map(0, 0, 2 * M);
    pt.unmap(0, 2 * M);
    expect(pt.stats()).toMatchObject({ tables: 3, pendingFree: 1 });
    // A new table while the old page is pending is a fresh page: both are counted.
    pt.map(0, 0, 4 * K);
    expect(pt.stats()).toMatchObject({ tables: 4, pendingFree: 1 });
    pt.sync();
    expect(pt.stats()).toMatchObject({ tables: 4, pendingFree: 0 });
  });
});

describe('lookups', () => {
  it('iovaToPhys and leafAt give the leaf with its full size and exact offset', () => {
    const pt = createPageTable({ format: 'amdv1' });
    pt.map(32 * M, 64 * M, 32 * M);
    expect(pt.leafAt(40 * M + 123)).toEqual({ iova: 32 * M, pa: 64 * M, size: 32 * M });
    expect(pt.iovaToPhys(40 * M + 123)).toBe(72 * M + 123);
    expect(pt.iovaToPhys(64 * M)).toBeUndefined();
    expect(pt.leafAt(64 * M)).toBeUndefined();
    expect(pt.iovaToPhys(-1)).toBeUndefined();
    expect(pt.iovaToPhys(2 ** 60)).toBeUndefined();
  });

  it('leaves() lists leaves intersecting [from, to) in address order, a contiguous leaf once', () => {
    const pt = createPageTable({ format: 'amdv1' });
    pt.map(0, 0, 4 * K);
    pt.map(64 * K, 0, 64 * K);
    pt.map(2 * G, 2 * G, 2 * G);
    pt.map(2 ** 40, 0, 4 * K);
    expect([...pt.leaves()].map((l) => [l.iova, l.size])).toEqual([
      [0, 4 * K],
      [64 * K, 64 * K],
      [2 * G, 2 * G],
      [2 ** 40, 4 * K],
    ]);
    expect([...pt.leaves(96 * K, 3 * G)].map((l) => [l.iova, l.pa, l.size])).toEqual([
      [64 * K, 0, 64 * K],
      [2 * G, 2 * G, 2 * G],
    ]);
    expect([...pt.leaves(4 * K, 64 * K)]).toEqual([]);
    expect([...pt.leaves(5 * G, 4 * G)]).toEqual([]);
  });
});

describe('map with a leaf size cap', () => {
  it('lays the range out greedily with no leaf above the cap (amdv1 contiguous leaves included)', () => {
    const pt = createPageTable({ format: 'amdv1' });
    expect(pt.map(4 * M, 4 * M, 4 * M, 64 * K)).toEqual({ mapped: 4 * M });
    expect(pt.stats().leavesBySize).toEqual({ '64K': 64 });
    expect(pt.leafAt(4 * M + 100 * K)).toEqual({ iova: 4 * M + 64 * K, pa: 4 * M + 64 * K, size: 64 * K });
    // Without the cap the same range is one contiguous 4M leaf.
    const whole = createPageTable({ format: 'amdv1' });
    expect(whole.map(4 * M, 4 * M, 4 * M)).toEqual({ mapped: 4 * M });
    expect(whole.stats().leavesBySize).toEqual({ '4M': 1 });
  });

  it('stops at a collision inside the table it is filling and reports what it placed', () => {
    const pt = createPageTable({ format: 'x86_64' });
    pt.map(G + 8 * K, 8 * G, 4 * K);
    expect(pt.map(G, 0, 2 * M, 4 * K)).toEqual({ mapped: 8 * K, error: 'EADDRINUSE' });
    expect(pt.leafAt(G + 4 * K)).toEqual({ iova: G + 4 * K, pa: 4 * K, size: 4 * K });
  });
});

describe('tables of linear 4K leaves (the per-table summary)', () => {
  // A pool mapped 4K by 4K: each last-level table is one linear run, answered per table.
  const pool = (): ReturnType<typeof createPageTable> => {
    const pt = createPageTable({ format: 'amdv1', pgsizes: [4 * K] });
    expect(pt.map(2 * M, 64 * G + 2 * M, 6 * M)).toEqual({ mapped: 6 * M });
    return pt;
  };

  it('answers range questions over whole tables as over their leaves', () => {
    const pt = pool();
    const out: number[] = [];
    expect(pt.leafRuns(0, G, out)).toBe(1);
    expect(out).toEqual([2 * M, 64 * G + 2 * M, 6 * M]);
    expect(pt.leafRuns(3 * M + 4 * K, 5 * M + 1, out)).toBe(1);
    expect(out).toEqual([3 * M + 4 * K, 64 * G + 3 * M + 4 * K, 2 * M]);
    expect(pt.linearEnd(2 * M + 8 * K, G, 64 * G + 2 * M + 8 * K)).toBe(8 * M);
    expect(pt.linearEnd(2 * M + 8 * K, 5 * M, 64 * G + 2 * M + 8 * K)).toBe(5 * M);
    // A wrong pa at the start, or at the start of a later table, ends the linear prefix there.
    expect(pt.linearEnd(4 * M, G, 64 * G)).toBe(4 * M);
    expect(pt.nextMapped(0, G)).toBe(2 * M);
  });

  it('an unmap, a remap elsewhere and a remap in place each change the answer', () => {
    const pt = pool();
    const out: number[] = [];
    expect(pt.unmap(5 * M, 4 * K)).toEqual({ unmapped: 4 * K });
    expect(pt.linearEnd(2 * M, G, 64 * G + 2 * M)).toBe(5 * M);
    expect(pt.leafRuns(0, G, out)).toBe(2);
    expect(out).toEqual([2 * M, 64 * G + 2 * M, 3 * M, 5 * M + 4 * K, 64 * G + 5 * M + 4 * K, 3 * M - 4 * K]);
    // Full again, but one item maps elsewhere: two breaks in the output.
    expect(pt.map(5 * M, 4 * K, 4 * K)).toEqual({ mapped: 4 * K });
    expect(pt.linearEnd(2 * M, G, 64 * G + 2 * M)).toBe(5 * M);
    expect(pt.linearEnd(5 * M + 4 * K, G, 64 * G + 5 * M + 4 * K)).toBe(8 * M);
    expect(pt.leafRuns(4 * M, 6 * M, out)).toBe(3);
    expect(out).toEqual([4 * M, 64 * G + 4 * M, M, 5 * M, 4 * K, 4 * K, 5 * M + 4 * K, 64 * G + 5 * M + 4 * K, M - 4 * K]);
    // Back in place: one run again, though the table was filled item by item.
    expect(pt.unmap(5 * M, 4 * K)).toEqual({ unmapped: 4 * K });
    expect(pt.map(5 * M, 64 * G + 5 * M, 4 * K)).toEqual({ mapped: 4 * K });
    expect(pt.leafRuns(0, G, out)).toBe(1);
    expect(pt.linearEnd(2 * M, G, 64 * G + 2 * M)).toBe(8 * M);
  });

  it('a table id reused after sync starts with no summary of its previous life', () => {
    const pt = pool();
    const out: number[] = [];
    expect(pt.linearEnd(2 * M, G, 64 * G + 2 * M)).toBe(8 * M);
    expect(pt.unmap(2 * M, 6 * M)).toEqual({ unmapped: 6 * M });
    pt.sync();
    // Half a table, in a freed id: not linear, whatever the id said before.
    expect(pt.map(2 * M, 64 * G + 2 * M, M)).toEqual({ mapped: M });
    expect(pt.linearEnd(2 * M, G, 64 * G + 2 * M)).toBe(3 * M);
    expect(pt.leafRuns(0, G, out)).toBe(1);
    expect(out).toEqual([2 * M, 64 * G + 2 * M, M]);
  });
});
