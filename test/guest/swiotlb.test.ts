import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  IO_TLB_DEFAULT_SIZE,
  IO_TLB_SEGSIZE,
  IO_TLB_SHIFT,
  IO_TLB_SIZE,
  PAGE_SIZE,
  SwiotlbPool,
  swiotlbCocoSize,
  swiotlbGeometry,
  swiotlbMaxMappingSize,
  type SwiotlbAttrs,
  type SwiotlbMapping,
  type SwiotlbResult,
} from '../../src/guest/swiotlb.ts';
import { GraphCopy } from '../../src/model/graph-copy.ts';

const KiB = 1024;
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** A 2M-aligned guest physical address above 4 GiB, so no test leans on 32-bit addresses. */
const BASE = 0x1_4000_0000;

function ok(result: SwiotlbResult): SwiotlbMapping {
  if (!result.ok) throw new Error(`expected success, got ${result.error}: ${result.reason}`);
  const { ok: _ok, ...mapping } = result;
  return mapping;
}

/** Everything observable about the pool, to prove a failed call changed nothing. */
function snapshot(pool: SwiotlbPool): unknown {
  const slots = [];
  for (let i = 0; i < pool.nslabs; i++) slots.push(pool.slot(i));
  return { slots, areas: pool.areas, live: [...pool.liveMappings()], used: pool.slotsUsed };
}

/** Independent of checkInvariants(): live ranges disjoint, inside the pool, `used` matching. */
function expectConsistent(pool: SwiotlbPool): void {
  expect(pool.checkInvariants()).toEqual([]);
  const live = [...pool.liveMappings()];
  expect(live.length).toBe(pool.liveCount);
  const usedPerArea = new Array<number>(pool.nareas).fill(0);
  let previousEnd = 0;
  for (const m of live) {
    // The listed description is the allocation's current one (liveMappings() keeps the objects of
    // allocations that did not change from one list to the next).
    expect(pool.lookup(m.tlbAddr)).toEqual(m);
    expect(m.slotIndex).toBeGreaterThanOrEqual(previousEnd);
    expect(m.slotIndex + m.nslots).toBeLessThanOrEqual(pool.nslabs);
    previousEnd = m.slotIndex + m.nslots;
    const first = pool.slotAddr(m.slotIndex);
    expect(pool.contains(first)).toBe(true);
    expect(first + m.nslots * IO_TLB_SIZE).toBeLessThanOrEqual(pool.end);
    // tlbAddr lies in the head slot, after the padding slots, and the buffer fits the range.
    expect(m.tlbAddr).toBeGreaterThanOrEqual(first + m.padSlots * IO_TLB_SIZE);
    expect(m.tlbAddr + m.allocSize).toBeLessThanOrEqual(first + m.nslots * IO_TLB_SIZE);
    for (let s = m.slotIndex; s < m.slotIndex + m.nslots; s++) {
      const area = Math.floor(s / pool.areaNslabs);
      usedPerArea[area] = (usedPerArea[area] ?? 0) + 1;
    }
  }
  expect(pool.areas.map((a) => a.used)).toEqual(usedPerArea);
  expect(pool.slotsUsed).toBe(live.reduce((sum, m) => sum + m.nslots, 0));
}

describe('constants and geometry', () => {
  it('exports the Linux constants', () => {
    expect([IO_TLB_SHIFT, IO_TLB_SIZE, IO_TLB_SEGSIZE, IO_TLB_DEFAULT_SIZE]).toEqual([11, 2048, 128, 64 * MiB]);
  });

  it('rounds areas and slabs as swiotlb_adjust_nareas() and round_up_default_nslabs() do', () => {
    expect(swiotlbGeometry({ bytes: 64 * MiB, cpus: 2 })).toEqual({ nslabs: 32768, nareas: 2, areaNslabs: 16384, bytes: 64 * MiB });
    // Three CPUs make four areas; a non-power-of-two slab count grows to the next power of two.
    expect(swiotlbGeometry({ bytes: 64 * MiB, cpus: 3 }).nareas).toBe(4);
    expect(swiotlbGeometry({ bytes: 96 * MiB }).bytes).toBe(128 * MiB);
    // Every area holds at least IO_TLB_SEGSIZE slots.
    expect(swiotlbGeometry({ bytes: 1 * MiB, cpus: 16 })).toEqual({ nslabs: 2048, nareas: 16, areaNslabs: 128, bytes: 4 * MiB });
    // A sub-slot request still becomes whole segments.
    expect(swiotlbGeometry({ bytes: 3000 }).nslabs).toBe(IO_TLB_SEGSIZE);
    // Restricted pools: one area, no rounding (rmem_swiotlb_device_init()).
    expect(swiotlbGeometry({ bytes: 400 * KiB, cpus: 8, restricted: true })).toEqual({ nslabs: 200, nareas: 1, areaNslabs: 200, bytes: 400 * KiB });
  });

  it('sizes the CoCo pool at 6% of memory clamped to [64M, 1G], then rounds it up', () => {
    expect(swiotlbCocoSize(512 * MiB)).toBe(64 * MiB);
    expect(swiotlbCocoSize(64 * GiB)).toBe(GiB);
    expect(swiotlbCocoSize(4 * GiB)).toBe(Math.floor((4 * GiB * 6) / 100));
    // 245.76 MiB becomes 256 MiB once round_up_default_nslabs() has run.
    expect(swiotlbGeometry({ bytes: swiotlbCocoSize(4 * GiB), cpus: 4 }).bytes).toBe(256 * MiB);
  });

  it('holds a 1 GiB pool in typed arrays and allocates in it', () => {
    const pool = new SwiotlbPool({ base: 2 ** 51, bytes: GiB, cpus: 64 });
    expect(pool.nslabs).toBe(524288);
    expect(pool.end).toBe(2 ** 51 + GiB);
    const m = ok(pool.find(2 ** 51 + 3 * GiB + 0x123, 5000, { cpu: 63, minAlignMask: 0xfff }));
    expect(m.area).toBe(63);
    expect(m.tlbAddr % 4096).toBe(0x123);
    pool.release(m.tlbAddr, 5000);
    expect(pool.slotsUsed).toBe(0);
  });

  it('boots a 32 GiB pool without touching its 16M slots: slot state is stored where it was written', () => {
    const pool = new SwiotlbPool({ base: 2 ** 40, bytes: 32 * GiB, cpus: 4 });
    expect(pool.nslabs).toBe(16 * 1024 * 1024);
    // An untouched slot reads as Linux's initial state: free up to its segment end.
    expect(pool.freeRun(5)).toBe(IO_TLB_SEGSIZE - 5);
    expect(pool.slot(12_345_678)).toEqual({ list: IO_TLB_SEGSIZE - (12_345_678 % IO_TLB_SEGSIZE), origAddr: undefined, allocSize: 0, padSlots: 0 });
    const m = ok(pool.find(0x1234_5000, 3 * PAGE_SIZE, { cpu: 3 }));
    expect(m.area).toBe(3);
    expect([...pool.liveMappings()]).toEqual([m]);
    expect(pool.checkInvariants()).toEqual([]);
    pool.release(m.tlbAddr);
    expect(pool.checkInvariants()).toEqual([]);
    expect([...pool.liveMappings()]).toEqual([]);
    expect(pool.slotRuns).toBe(0);
  });

  it('lists every allocation as it is now when more were made and released between two lists than it keeps track of', () => {
    // liveMappings() describes again only the heads allocated or released since the last list;
    // past the log's bound (64) it describes them all. A full pool (64 allocations of 2 slots)
    // makes every new allocation land in the one slot pair just released.
    const pool = new SwiotlbPool({ base: BASE, bytes: 256 * KiB, cpus: 1 });
    const first = [];
    for (let i = 0; i < 64; i++) first.push(ok(pool.find(0x1000_0000 + i * 0x10000, PAGE_SIZE, {})));
    expectConsistent(pool);
    // 64 changes at the last head fill the log; then the first head is released and taken again.
    let last = first[63]!;
    for (let i = 0; i < 32; i++) {
      pool.release(last.tlbAddr);
      last = ok(pool.find(0x3000_0000 + i * 0x10000, PAGE_SIZE, {}));
      expect(last.slotIndex).toBe(first[63]!.slotIndex);
    }
    pool.release(first[0]!.tlbAddr);
    const again = ok(pool.find(0x2000_0000, 2 * KiB, {}));
    expect(again.slotIndex).toBe(first[0]!.slotIndex);
    expectConsistent(pool);
    expect(pool.liveMappings()[0]).toEqual(again);
  });

  it('rejects a pool base that is not page-aligned', () => {
    expect(() => new SwiotlbPool({ base: BASE + 2048, bytes: MiB })).toThrow(/page-aligned/);
  });
});

describe('alignment (swiotlb_search_pool_area)', () => {
  it('keeps the original low bits under min_align_mask', () => {
    for (const mask of [0x7ff, 0xfff, 0x3fff]) {
      const pool = new SwiotlbPool({ base: BASE, bytes: 4 * MiB, cpus: 2 });
      for (let i = 0; i < 40; i++) {
        const orig = 0x2_0000_0000 + i * 0x1357;
        const m = ok(pool.find(orig, 100 + i * 997, { minAlignMask: mask, cpu: i }));
        expect(m.tlbAddr % (mask + 1)).toBe(orig % (mask + 1));
        expect(m.origAddr).toBe(orig);
      }
      expectConsistent(pool);
    }
  });

  it('ignores min_align_mask for an original address of 0, as Linux does (orig_addr && ...)', () => {
    const pool = new SwiotlbPool({ base: BASE, bytes: MiB });
    ok(pool.find(0x1000, 2048)); // area->index 1
    const zero = ok(pool.find(0, 2048, { minAlignMask: 0x3fff }));
    expect(zero.slotIndex).toBe(1);
    expect(zero.tlbAddr % 0x4000).not.toBe(0);
    // The same request for any other address keeps the bits (0x4000 & 0x3fff = 0: slot 8).
    expect(ok(pool.find(0x4000, 2048, { minAlignMask: 0x3fff })).slotIndex).toBe(8);
  });

  it('page-aligns mappings of a page or more only when nothing else is asked (Reinstate page-alignment)', () => {
    const pool = new SwiotlbPool({ base: BASE, bytes: MiB });
    ok(pool.find(0x1000, 100)); // leaves area->index at the odd slot 1
    // With a min_align_mask the page alignment is not forced: only the masked bits are kept.
    const slotOnly = ok(pool.find(0x9000, 4096, { minAlignMask: 0x7ff }));
    expect(slotOnly.slotIndex).toBe(1);
    expect(slotOnly.tlbAddr % PAGE_SIZE).not.toBe(0);
    // Without one, a page or more skips the odd slot 3 left by the last mapping.
    expect(pool.areas[0]?.index).toBe(3);
    const page = ok(pool.find(0x5123, 4096));
    expect(page.slotIndex).toBe(4);
    expect(page.tlbAddr % PAGE_SIZE).toBe(0);
    // Below a page nothing is forced either.
    const small = ok(pool.find(0xa000, 2048));
    expect(small.nslots).toBe(1);
    expectConsistent(pool);
  });

  it('aligns the first slot to alloc_align_mask and pads to keep min_align_mask bits', () => {
    const pool = new SwiotlbPool({ base: BASE, bytes: 4 * MiB });
    ok(pool.find(0x777, 300)); // unaligned area->index
    for (const orig of [0x3_0000_0000, 0x3_0000_0abc, 0x3_0000_0fff, 0x3_0000_1800]) {
      const m = ok(pool.find(orig, 20000, { minAlignMask: 0xfff, allocAlignMask: 0xffff }));
      expect(pool.slotAddr(m.slotIndex) % 0x10000).toBe(0);
      expect(m.tlbAddr % 0x1000).toBe(orig % 0x1000);
      const offset = orig % 0x1000;
      expect(m.padSlots).toBe(Math.floor(offset / IO_TLB_SIZE));
      expect(m.tlbAddr).toBe(pool.slotAddr(m.slotIndex) + offset);
      // ALIGN(mapping_size + offset, alloc_align_mask + 1): whole 64K granules.
      expect(m.nslots).toBe(Math.ceil((20000 + offset) / 0x10000) * (0x10000 / IO_TLB_SIZE));
    }
    expectConsistent(pool);
  });

  it('computes swiotlb_max_mapping_size(), and serves larger mappings while the padded size fits a segment', () => {
    expect(swiotlbMaxMappingSize()).toBe(256 * KiB);
    expect(swiotlbMaxMappingSize(1)).toBe(256 * KiB - 2 * KiB);
    expect(swiotlbMaxMappingSize(0x7ff)).toBe(254 * KiB);
    expect(swiotlbMaxMappingSize(0xfff)).toBe(252 * KiB);
    expect(swiotlbMaxMappingSize(0x3fff)).toBe(240 * KiB);
    const pool = new SwiotlbPool({ base: BASE, bytes: 4 * MiB });
    expect(pool.maxMappingSize(0xfff)).toBe(252 * KiB);
    for (const mask of [0, 0x7ff, 0xfff, 0x3fff]) {
      const max = swiotlbMaxMappingSize(mask);
      // The worst original offset (all masked bits set) still fits at the maximum size...
      const m = ok(pool.find(0x4_0000_0000 + mask, max, { minAlignMask: mask }));
      expect(m.tlbAddr % (mask + 1)).toBe(mask);
      pool.release(m.tlbAddr, max);
      // ...and one byte more is served like the kernel serves it (swiotlb_tbl_map_single() has no
      // size check) when the original's low bits need no padding slot...
      if (mask === 0) continue;
      const over = ok(pool.find(0x4_0000_0000, max + 1, { minAlignMask: mask }));
      expect(over.nslots).toBeLessThanOrEqual(IO_TLB_SEGSIZE);
      pool.release(over.tlbAddr, max + 1);
    }
    // ...but not when the padded size needs more than the aligned slots a segment has (128 slots
    // from an odd slot, to keep bit 11 of the original): "buffer is full",
    // without touching the pool.
    const before = snapshot(pool);
    const tooBig = pool.find(0x4_0000_0000 + 0xfff, 254 * KiB + 1, { minAlignMask: 0xfff });
    expect(tooBig).toMatchObject({ ok: false, error: 'ENOMEM' });
    expect(snapshot(pool)).toEqual(before);
    expect(pool.find(0x4_0000_0000, 256 * KiB + 1)).toMatchObject({ ok: false, error: 'ENOMEM' });
  });

  it('wraps swiotlb_max_mapping_size() around size_t for a min_align_mask above 254K, as the kernel does', () => {
    expect(swiotlbMaxMappingSize(0x3f7ff)).toBe(2 * KiB);
    expect(swiotlbMaxMappingSize(0x3ffff)).toBe(0);
    // roundup(0x40001, 2K) = 258K: 256K - 258K in size_t is SIZE_MAX - 2K + 1, no limit at all.
    expect(swiotlbMaxMappingSize(0x40001)).toBe(2 ** 64 - 2 * KiB);
    expect(swiotlbMaxMappingSize(0x40001)).toBeGreaterThan(2 ** 63);
  });

  it('never crosses the device segment boundary', () => {
    // A base that is not 64K-aligned, so the boundary is not at a segment start.
    const pool = new SwiotlbPool({ base: BASE + 0x3000, bytes: 2 * MiB, cpus: 2 });
    const boundary = 0xffff;
    let sizes = 0;
    for (let i = 0; sizes < 1.5 * MiB; i++) {
      const size = 2048 + ((i * 7919) % (60 * KiB));
      const m = pool.find(0x5_0000_0000 + i * 0x800, size, { segmentBoundaryMask: boundary, cpu: i });
      if (!m.ok) continue;
      sizes += size;
      const first = pool.slotAddr(m.slotIndex);
      const last = first + m.nslots * IO_TLB_SIZE - 1;
      expect(Math.floor(first / 0x10000)).toBe(Math.floor(last / 0x10000));
    }
    // 64 KiB + 1 slot can never fit between two 64 KiB boundaries.
    expect(pool.find(0x6_0000_0000, 66 * KiB, { segmentBoundaryMask: boundary })).toMatchObject({ ok: false, error: 'ENOMEM' });
    expectConsistent(pool);
  });
});

describe('areas', () => {
  it('starts at the area of the CPU and moves to the next one when it is full', () => {
    const pool = new SwiotlbPool({ base: BASE, bytes: MiB, cpus: 2 }); // areas: slots 0..255, 256..511
    expect(ok(pool.find(0x1000, 256 * KiB, { cpu: 0 })).slotIndex).toBe(0);
    expect(ok(pool.find(0x1000, 256 * KiB, { cpu: 2 })).slotIndex).toBe(128);
    expect(pool.areas[0]?.used).toBe(256);
    // Area 0 is full: the search wraps around to area 1.
    const spilled = ok(pool.find(0x1000, 2048, { cpu: 0 }));
    expect(spilled.area).toBe(1);
    expect(spilled.slotIndex).toBe(256);
    // cpu 3 & (nareas - 1) = 1.
    expect(ok(pool.find(0x1000, 2048, { cpu: 3 })).slotIndex).toBe(257);
    expectConsistent(pool);
  });

  it('wraps the search around the end of the area', () => {
    const pool = new SwiotlbPool({ base: BASE, bytes: MiB }); // one area of 512 slots
    const segs = [0, 1, 2, 3].map(() => ok(pool.find(0x1000, 256 * KiB)));
    expect(segs.map((m) => m.slotIndex)).toEqual([0, 128, 256, 384]);
    pool.release(segs[1]!.tlbAddr);
    const x = ok(pool.find(0x1000, 2048)); // first free slot from index 0: 128
    expect(x.slotIndex).toBe(128);
    expect(pool.areas[0]?.index).toBe(129);
    pool.release(x.tlbAddr);
    pool.release(segs[0]!.tlbAddr);
    // From index 129 the scan meets no 128-slot run before the area end, wraps, and takes slot 0.
    expect(ok(pool.find(0x1000, 256 * KiB)).slotIndex).toBe(0);
    expectConsistent(pool);
  });
});

describe('exhaustion and release', () => {
  it('fails when full without corrupting state, and recovers after a release', () => {
    const pool = new SwiotlbPool({ base: BASE, bytes: MiB, cpus: 2 });
    const maps: SwiotlbMapping[] = [];
    // Mixed sizes until one fails, then single slots to fill the holes page alignment left.
    let size = (i: number): number => 2048 + (i % 3) * 2048;
    for (let i = 0; ; i++) {
      const r = pool.find(0x7_0000_0000 + i * 0x2000, size(i), { cpu: i });
      if (r.ok) {
        maps.push(r);
        continue;
      }
      expect(r.error).toBe('ENOMEM');
      if (size(i) === 2048 && size(i + 1) === 2048) break;
      size = () => 2048;
    }
    expect(pool.slotsUsed).toBe(pool.nslabs);
    const before = snapshot(pool);
    for (let cpu = 0; cpu < 4; cpu++) expect(pool.find(0x1000, 2048, { cpu }).ok).toBe(false);
    expect(snapshot(pool)).toEqual(before);
    const freed = maps[17]!;
    pool.release(freed.tlbAddr, freed.allocSize);
    const again = ok(pool.find(0x1000, 2048, { cpu: 1 }));
    expect(again.slotIndex).toBe(freed.slotIndex);
    expectConsistent(pool);
  });

  it('throws on releasing something that is not a live allocation', () => {
    const pool = new SwiotlbPool({ base: BASE, bytes: MiB });
    const m = ok(pool.find(0x1234, 5000, { minAlignMask: 0xfff }));
    expect(() => pool.release(m.tlbAddr + 1)).toThrow(/not a live/);
    expect(() => pool.release(pool.slotAddr(m.slotIndex + 1))).toThrow(/not a live/);
    expect(() => pool.release(BASE - 4096)).toThrow(/not a live/);
    expect(() => pool.release(m.tlbAddr, 4999)).toThrow(/size 4999/);
    pool.release(m.tlbAddr, 5000);
    expect(() => pool.release(m.tlbAddr)).toThrow(/not a live/);
    expectConsistent(pool);
  });

  it('refuses freeRun() of a slot outside the pool, written or not (a chooser reading past the end)', () => {
    const pool = new SwiotlbPool({ base: 0xf_ffe0_0000, bytes: 600 * KiB, restricted: true });
    expect(() => pool.freeRun(pool.nslabs)).toThrow(/slot index/);
    ok(pool.find(0x1000, 4096, {}));
    expect(() => pool.freeRun(pool.nslabs + 10)).toThrow(/slot index/);
    expect(() => pool.freeRun(-1)).toThrow(/slot index/);
    expect(pool.freeRun(pool.nslabs - 1)).toBe(1);
  });

  it('merges free runs back: after freeing everything in any order, every segment is whole again', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 64 * KiB }), { minLength: 1, maxLength: 60 }),
        fc.infiniteStream(fc.nat()),
        (sizes, order) => {
          const pool = new SwiotlbPool({ base: BASE, bytes: MiB, cpus: 2 });
          const fresh = snapshot(pool);
          const maps: SwiotlbMapping[] = [];
          sizes.forEach((size, i) => {
            const r = pool.find(0x8_0000_0000 + i * 0x1000 + (size % 2048), size, { cpu: i, minAlignMask: i % 2 ? 0xfff : 0 });
            if (r.ok) maps.push(r);
          });
          const picks = order.take(maps.length);
          while (maps.length > 0) {
            const pick = (picks.next().value as number) % maps.length;
            const [m] = maps.splice(pick, 1);
            pool.release(m!.tlbAddr);
          }
          // Same lists as a fresh pool (area indices moved, nothing else).
          const after = snapshot(pool) as { slots: unknown };
          expect(after.slots).toEqual((fresh as { slots: unknown }).slots);
          expect(pool.slotRuns).toBe(0);
          // So the largest mapping fits in every segment.
          for (let s = 0; s < pool.nslabs / IO_TLB_SEGSIZE; s++) ok(pool.find(0x1000, 256 * KiB, { cpu: s }));
          expect(pool.slotsUsed).toBe(pool.nslabs);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('counts the read past the slot array when a short tail segment is freed (restricted pool)', () => {
    const pool = new SwiotlbPool({ base: BASE, bytes: 400 * KiB, restricted: true }); // 200 slots
    expect(pool.slot(199).list).toBe(1);
    expect(pool.slot(128).list).toBe(72);
    ok(pool.find(0x1000, 256 * KiB));
    const tail = ok(pool.find(0x1000, 72 * 2048));
    expect(tail.slotIndex + tail.nslots).toBe(200);
    pool.release(tail.tlbAddr);
    expect(pool.tailOverreads).toBe(1);
    expectConsistent(pool);
  });
});

describe('coherent allocations (swiotlb_alloc)', () => {
  it('CVE-2024-35814: an unaligned area->index no longer yields an unaligned, double-allocated slot', () => {
    // The vsock report: a restricted pool, a 2K streaming mapping leaves area->index odd, then
    // dma_alloc_coherent(8K) searched with stride 2 and no alignment check for orig_addr 0.
    const pool = new SwiotlbPool({ base: BASE, bytes: 2 * MiB, restricted: true });
    const stream = ok(pool.find(0x9_0000_0800, 2048));
    expect(pool.areas[0]?.index).toBe(1);
    const coherent = ok(pool.allocCoherent(8192));
    expect(coherent.tlbAddr % 8192).toBe(0); // PAGE_SIZE << get_order(8K)
    expect(coherent.slotIndex).toBe(4);
    expect(coherent.slotIndex).toBeGreaterThanOrEqual(stream.slotIndex + stream.nslots);
    expect(coherent.origAddr).toBeUndefined();
    // swiotlb_free() releases by the page address: exactly the coherent slots come back.
    pool.release(coherent.tlbAddr, 8192);
    expect([...pool.liveMappings()]).toEqual([stream]);
    expectConsistent(pool);
  });

  it('aligns every coherent buffer to its order, whatever the streaming traffic before it', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ stream: fc.integer({ min: 1, max: 20 * KiB }), coherent: fc.integer({ min: 1, max: 256 * KiB }) }), { maxLength: 30 }),
        (steps) => {
          const pool = new SwiotlbPool({ base: BASE, bytes: 4 * MiB, restricted: true });
          for (const [i, step] of steps.entries()) {
            pool.find(0xa_0000_0000 + i * 0x10000 + (step.stream % 4096), step.stream, { minAlignMask: 0xfff });
            const r = pool.allocCoherent(step.coherent);
            if (!r.ok) continue;
            const bytes = Math.ceil(step.coherent / PAGE_SIZE) * PAGE_SIZE;
            const align = PAGE_SIZE * 2 ** Math.ceil(Math.log2(bytes / PAGE_SIZE));
            expect(r.tlbAddr % align).toBe(0);
            expect(r.allocSize).toBe(bytes);
          }
          expectConsistent(pool);
        },
      ),
      { numRuns: 50 },
    );
  });

  it('cannot serve more than 256 KiB, and 256 KiB only from a 256K-aligned pool', () => {
    const aligned = new SwiotlbPool({ base: BASE, bytes: 4 * MiB, restricted: true });
    expect(aligned.allocCoherent(512 * KiB)).toMatchObject({ ok: false, error: 'ENOMEM' });
    expect(aligned.allocCoherent(2 * MiB)).toMatchObject({ ok: false, error: 'ENOMEM' });
    expect(ok(aligned.allocCoherent(256 * KiB)).nslots).toBe(IO_TLB_SEGSIZE);
    // A page-aligned base puts every 256K-aligned address mid-segment: never 128 free slots there.
    const paged = new SwiotlbPool({ base: BASE + 4096, bytes: 4 * MiB, restricted: true });
    expect(paged.allocCoherent(256 * KiB)).toMatchObject({ ok: false, error: 'ENOMEM' });
    expect(paged.slotsUsed).toBe(0);
    expect(ok(paged.allocCoherent(128 * KiB)).tlbAddr % (128 * KiB)).toBe(0);
  });

  it('honours alignBytes for 2M-aligned starts', () => {
    const pool = new SwiotlbPool({ base: BASE + 64 * KiB, bytes: 8 * MiB, restricted: true });
    const a = ok(pool.allocCoherent(16 * KiB, { alignBytes: 2 * MiB }));
    const b = ok(pool.allocCoherent(16 * KiB, { alignBytes: 2 * MiB }));
    expect(a.tlbAddr % (2 * MiB)).toBe(0);
    expect(b.tlbAddr % (2 * MiB)).toBe(0);
    expect(b.tlbAddr).not.toBe(a.tlbAddr);
    expectConsistent(pool);
  });

  it('is only for for_alloc pools', () => {
    const boot = new SwiotlbPool({ base: BASE, bytes: 4 * MiB });
    expect(() => boot.allocCoherent(4096)).toThrow(/for_alloc/);
    const forced = new SwiotlbPool({ base: BASE, bytes: 4 * MiB, forAlloc: true, cpus: 2 });
    expect(ok(forced.allocCoherent(4096, { cpu: 1 })).area).toBe(1);
  });
});

describe('chunk mode (not Linux: 2M blocks for the 2M-aligned coherent pool proposal)', () => {
  it('reserves whole aligned 2M blocks across segments and areas, and gives them back', () => {
    const pool = new SwiotlbPool({ base: BASE + 4096, bytes: 8 * MiB, cpus: 16, forAlloc: true }); // areas of 256 slots
    const stream = ok(pool.find(0xb_0000_0000, 3000, { cpu: 0 }));
    const fresh = new SwiotlbPool({ base: BASE + 4096, bytes: 8 * MiB, cpus: 16, forAlloc: true });
    const chunk = ok(pool.allocChunk(2 * MiB));
    expect(chunk.kind).toBe('chunk');
    expect(chunk.tlbAddr % (2 * MiB)).toBe(0);
    expect(chunk.nslots).toBe(1024);
    expect(chunk.slotIndex).toBeGreaterThanOrEqual(stream.slotIndex + stream.nslots);
    // The page-aligned base puts the first 2M boundary at slot 1022: the chunk covers slots
    // 1022..2045, in areas 3 to 7, and the stream sits in area 0.
    expect(chunk.slotIndex).toBe(1022);
    expect(pool.areas.map((a) => a.used)).toEqual([2, 0, 0, 2, 256, 256, 256, 254, 0, 0, 0, 0, 0, 0, 0, 0]);
    expectConsistent(pool);
    // Streaming mappings and coherent allocations keep out of it.
    for (let i = 0; i < 100; i++) {
      const m = ok(pool.find(0xb_0000_0000 + i * 4096, 4096, { cpu: i }));
      expect(m.slotIndex + m.nslots <= chunk.slotIndex || m.slotIndex >= chunk.slotIndex + chunk.nslots).toBe(true);
    }
    pool.release(chunk.tlbAddr, 2 * MiB);
    expectConsistent(pool);
    for (const m of [...pool.liveMappings()]) pool.release(m.tlbAddr);
    for (let i = 0; i < pool.nslabs; i++) expect(pool.slot(i)).toEqual(fresh.slot(i));
  });

  it('fails cleanly when no aligned block is free', () => {
    const pool = new SwiotlbPool({ base: BASE, bytes: 4 * MiB, restricted: true });
    ok(pool.find(0x1000, 2048)); // slot 0 taken: the first 2M block is no longer whole
    ok(pool.allocChunk(2 * MiB));
    const before = snapshot(pool);
    expect(pool.allocChunk(2 * MiB)).toMatchObject({ ok: false, error: 'ENOMEM' });
    expect(snapshot(pool)).toEqual(before);
  });
});

describe('random find/release sequences (property)', () => {
  type Op =
    | { op: 'map'; orig: number; size: number; min: number; alloc: number; boundary: number | undefined; cpu: number }
    | { op: 'coherent'; size: number; align: number; cpu: number }
    | { op: 'chunk'; size: number }
    | { op: 'release'; pick: number };

  const opArb: fc.Arbitrary<Op> = fc.oneof(
    {
      arbitrary: fc.record({
        op: fc.constant('map' as const),
        orig: fc.integer({ min: 0, max: 2 ** 52 - 1 }),
        size: fc.oneof(fc.integer({ min: 1, max: 8 * KiB }), fc.integer({ min: 1, max: 256 * KiB })),
        min: fc.constantFrom(0, 0x7ff, 0xfff, 0x3fff),
        alloc: fc.constantFrom(0, 0, 0xfff, 0xffff),
        boundary: fc.constantFrom(undefined, 0xffff, 0xfffff, 0xffffffff),
        cpu: fc.nat(7),
      }),
      weight: 6,
    },
    { arbitrary: fc.record({ op: fc.constant('coherent' as const), size: fc.integer({ min: 1, max: 300 * KiB }), align: fc.constantFrom(4096, 4096, 64 * KiB, 2 * MiB), cpu: fc.nat(7) }), weight: 2 },
    { arbitrary: fc.record({ op: fc.constant('chunk' as const), size: fc.integer({ min: 1, max: 2 * MiB }) }), weight: 1 },
    { arbitrary: fc.record({ op: fc.constant('release' as const), pick: fc.nat() }), weight: 5 },
  );

  const poolArb = fc.constantFrom(
    { base: BASE, bytes: 2 * MiB, cpus: 4, forAlloc: true },
    { base: BASE + 12 * KiB, bytes: MiB, cpus: 1, forAlloc: true },
    { base: 0xf_ffe0_0000, bytes: 600 * KiB, restricted: true },
  );

  function checkResult(pool: SwiotlbPool, op: Op, r: SwiotlbMapping): void {
    const first = pool.slotAddr(r.slotIndex);
    if (op.op === 'map') {
      expect(r.origAddr).toBe(op.orig);
      // Linux compares the masked bits only for a non-zero orig_addr (see the quirk test above).
      if (op.min && op.orig !== 0) expect(r.tlbAddr % (op.min + 1)).toBe(op.orig % (op.min + 1));
      if (op.alloc) expect(first % (op.alloc + 1)).toBe(0);
      if (!op.min && !op.alloc && op.size >= PAGE_SIZE) expect(r.tlbAddr % PAGE_SIZE).toBe(0);
      if (op.boundary !== undefined) {
        const span = op.boundary + 1;
        expect(Math.floor(first / span)).toBe(Math.floor((first + r.nslots * IO_TLB_SIZE - 1) / span));
      }
      expect(r.nslots).toBeLessThanOrEqual(IO_TLB_SEGSIZE);
    } else if (op.op === 'coherent') {
      expect(r.tlbAddr % Math.max(op.align, PAGE_SIZE)).toBe(0);
      expect(r.nslots).toBeLessThanOrEqual(IO_TLB_SEGSIZE);
    } else if (op.op === 'chunk') {
      expect(r.tlbAddr % (2 * MiB)).toBe(0);
    }
  }

  it('never overlaps, stays in the pool, and keeps used equal to the live slots', () => {
    fc.assert(
      fc.property(poolArb, fc.array(opArb, { minLength: 20, maxLength: 150, size: 'max' }), (options, ops) => {
        const pool = new SwiotlbPool(options);
        const live: SwiotlbMapping[] = [];
        // SwiotlbView.generation: while it stays the same, so do the live mappings (oracles skip the walk).
        let seen = { generation: pool.generation, live: JSON.stringify([...pool.liveMappings()]) };
        for (const op of ops) {
          const now = JSON.stringify([...pool.liveMappings()]);
          if (pool.generation === seen.generation) expect(now).toBe(seen.live);
          seen = { generation: pool.generation, live: now };
          if (op.op === 'release') {
            if (live.length === 0) continue;
            const [m] = live.splice(op.pick % live.length, 1);
            expect(pool.release(m!.tlbAddr, m!.allocSize)).toEqual(m);
          } else {
            const usedBefore = pool.slotsUsed;
            const liveBefore = pool.liveCount;
            let r: SwiotlbResult;
            if (op.op === 'map') {
              const attrs: SwiotlbAttrs = { minAlignMask: op.min, allocAlignMask: op.alloc, cpu: op.cpu };
              if (op.boundary !== undefined) attrs.segmentBoundaryMask = op.boundary;
              r = pool.find(op.orig, op.size, attrs);
            } else if (op.op === 'coherent') {
              r = pool.allocCoherent(op.size, { alignBytes: op.align, cpu: op.cpu });
            } else {
              r = pool.allocChunk(op.size);
            }
            if (r.ok) {
              const m = ok(r);
              checkResult(pool, op, m);
              live.push(m);
              expect(pool.slotsUsed).toBe(usedBefore + m.nslots);
            } else {
              expect(pool.slotsUsed).toBe(usedBefore);
              expect(pool.liveCount).toBe(liveBefore);
            }
          }
          expectConsistent(pool);
        }
        if (pool.generation === seen.generation) expect(JSON.stringify([...pool.liveMappings()])).toBe(seen.live);
        const byStart = (a: SwiotlbMapping, b: SwiotlbMapping): number => a.slotIndex - b.slotIndex;
        expect([...pool.liveMappings()]).toEqual([...live].sort(byStart));
        // Everything released, the slots hold what they held at boot, and nothing is stored for them:
        // the pool weighs what is live (swiotlb-slots.ts), not what its cursors walked over.
        for (const m of live) pool.release(m.tlbAddr);
        expectConsistent(pool);
        expect(pool.slotRuns).toBe(0);
      }),
      { numRuns: 150 },
    );
  });
  /** The numbers changesSince() gives for `m` allocated (1) or released (-1). */
  const change = (sign: number, m: SwiotlbMapping): number[] => [sign, m.slotIndex, m.nslots, m.tlbAddr, m.allocSize];

  it('changesSince() gives exactly the allocations and releases since any generation a reader saw, or -1 past the 64 it keeps', () => {
    fc.assert(
      fc.property(poolArb, fc.array(opArb, { minLength: 20, maxLength: 200, size: 'max' }), fc.array(fc.nat(), { minLength: 4, maxLength: 4 }), (options, ops, picks) => {
        const pool = new SwiotlbPool(options);
        const live: SwiotlbMapping[] = [];
        // The brute-force reference: every change with the generation just after the op that made it.
        const changes: { generation: number; numbers: number[] }[] = [];
        // Readers: the generation seen after each op and the live ranges then.
        const seen: { generation: number; live: SwiotlbMapping[]; changes: number }[] = [{ generation: pool.generation, live: [], changes: 0 }];
        const out: number[] = [];
        for (const [step, op] of ops.entries()) {
          if (op.op === 'release') {
            if (live.length === 0) continue;
            const [m] = live.splice(op.pick % live.length, 1);
            pool.release(m!.tlbAddr);
            changes.push({ generation: pool.generation, numbers: change(-1, m!) });
          } else {
            const r = op.op === 'map' ? pool.find(op.orig, op.size, { minAlignMask: op.min, cpu: op.cpu }) : op.op === 'coherent' ? pool.allocCoherent(op.size, { cpu: op.cpu }) : pool.allocChunk(op.size);
            if (r.ok) {
              live.push(ok(r));
              changes.push({ generation: pool.generation, numbers: change(1, ok(r)) });
            }
          }
          seen.push({ generation: pool.generation, live: [...live], changes: changes.length });
          // A few readers at once, each at a generation of its own: asking never consumes.
          for (const pick of [...picks, step]) {
            const reader = seen[pick % seen.length]!;
            const n = pool.changesSince(reader.generation, out);
            const since = changes.slice(reader.changes);
            if (since.length > 64) {
              expect(n).toBe(-1);
              continue;
            }
            expect(out.slice(0, n)).toEqual(since.flatMap((c) => c.numbers));
            // Replayed on what the reader saw, they give the live ranges now.
            const replayed = reader.live.map((m) => change(1, m).join());
            for (let i = 0; i < n; i += 5) {
              const key = [1, ...out.slice(i + 1, i + 5)].join();
              if (out[i] === 1) replayed.push(key);
              else replayed.splice(replayed.indexOf(key), 1);
            }
            expect(replayed.sort()).toEqual(live.map((m) => change(1, m).join()).sort());
          }
        }
        expect(pool.changesSince(pool.generation, out)).toBe(0);
        expect(pool.changesSince(pool.generation + 1, out)).toBe(-1);
      }),
      { numRuns: 120 },
    );
  });

  it('changesSince() of a copied pool (the boot cache) leaves the template log as it was', () => {
    const template = new SwiotlbPool({ base: BASE, bytes: 2 * MiB, cpus: 2, forAlloc: true });
    const a = ok(template.find(0x1000_0000, 3 * KiB));
    const g = template.generation;
    const b = ok(template.allocCoherent(8 * KiB));
    const out: number[] = [];
    expect(template.changesSince(0, out)).toBe(10);
    expect(out.slice(0, 10)).toEqual([...change(1, a), ...change(1, b)]);
    const copy = new GraphCopy().copy(template);
    // The copy carries on from the template's log, and writes only its own.
    copy.release(b.tlbAddr);
    for (let i = 0; i < 70; i++) copy.release(ok(copy.find(0x2000_0000 + i * 0x10000, 5 * KiB)).tlbAddr);
    expect(copy.changesSince(g, out)).toBe(-1);
    expect(template.changesSince(g, out)).toBe(5);
    expect(out.slice(0, 5)).toEqual(change(1, b));
    expect(template.changesSince(0, out)).toBe(10);
    expect([...template.liveMappings()]).toEqual([a, b]);
    expect([...copy.liveMappings()]).toEqual([a]);
  });
});
