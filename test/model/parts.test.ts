// Memory tokens, the IOTLB and the step recorder on their own.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Recorder, createCounters } from '../../src/model/events.ts';
import { Iotlb } from '../../src/model/iotlb.ts';
import { Memory } from '../../src/model/memory.ts';
import { SZ_2K, SZ_2M, SZ_4K } from '../../src/model/size.ts';

describe('Memory', () => {
  it('gives every written chunk a fresh, deterministic token; 0 means never written', () => {
    const memory = new Memory();
    expect(memory.token(0x1000)).toBe(0);
    expect(memory.write(0x1000, SZ_4K)).toEqual([1, 2]);
    expect(memory.write(0x1000 + 10, 1)).toEqual([3]);
    expect(memory.read(0x1000, SZ_4K)).toEqual([3, 2]);
    expect(memory.token(0x1000 + SZ_2K)).toBe(2);
    expect(memory.chunkCount).toBe(2);
    // A write straddling a chunk boundary covers both chunks.
    expect(memory.write(0x1000 + SZ_2K - 1, 2)).toEqual([4, 5]);
  });

  it('copies tokens chunk by chunk', () => {
    const memory = new Memory();
    const written = memory.write(0x10_0000, 3 * SZ_2K);
    expect(memory.copy(0x10_0000, 0x80_0000, 3 * SZ_2K)).toEqual(written);
    expect(memory.read(0x80_0000, 3 * SZ_2K)).toEqual(written);
    // Copying never-written memory forgets the destination.
    memory.copy(0x90_0000, 0x80_0000, SZ_2K);
    expect(memory.token(0x80_0000)).toBe(0);
  });
});

describe('Iotlb', () => {
  it('caches 4K and 2M translations and answers lookups inside them', () => {
    const iotlb = new Iotlb(3);
    iotlb.insert(0x20_0000, 0x4000_0000, '2M');
    iotlb.insert(0x1000, 0x7000, '4K');
    expect(iotlb.lookup(0x20_0000 + 0x1234)).toEqual({ dev: 3, addr: 0x20_0000, hpa: 0x4000_0000, size: '2M' });
    expect(iotlb.lookup(0x1fff)).toEqual({ dev: 3, addr: 0x1000, hpa: 0x7000, size: '4K' });
    expect(iotlb.lookup(0x2000)).toBeUndefined();
    expect([...iotlb.entries()].map((e) => e.addr)).toEqual([0x1000, 0x20_0000]);
  });

  it('answers whether an entry overlaps a range, both ways of walking, as entries() would', () => {
    const iotlb = new Iotlb(0);
    iotlb.insert(3 * SZ_4K, 0x10_0000, '4K');
    iotlb.insert(2 * SZ_2M, 0x40_0000, '2M');
    const byEntries = (addr: number, len: number): boolean =>
      [...iotlb.entries()].some((e) => e.addr < addr + len && addr < e.addr + (e.size === '2M' ? SZ_2M : SZ_4K));
    // Small ranges probe frame by frame; the 2M and larger ones walk the cached entries.
    for (const [addr, len] of [[0, SZ_4K], [3 * SZ_4K + 7, 1], [4 * SZ_4K, SZ_4K], [0, SZ_2M], [SZ_2M, SZ_2M], [2 * SZ_2M - 1, 2], [3 * SZ_2M, SZ_2M], [SZ_4K, 8 * SZ_2M]] as const) {
      expect(iotlb.overlaps(addr, len)).toBe(byEntries(addr, len));
    }
    expect(iotlb.overlaps(3 * SZ_4K, SZ_4K)).toBe(true);
    expect(iotlb.overlaps(SZ_2M + SZ_4K, SZ_4K)).toBe(false);
    expect(iotlb.size).toBe(2);
  });

  it('invalidates ranges (overlap removes the whole entry) or everything', () => {
    const iotlb = new Iotlb(0);
    iotlb.insert(0, 0x10_0000, '4K');
    iotlb.insert(SZ_4K, 0x20_0000, '4K');
    iotlb.insert(SZ_2M, 0x40_0000, '2M');
    iotlb.insert(2 * SZ_2M, 0x60_0000, '2M');
    expect(iotlb.invalidate(SZ_4K + 5, 1)).toBe(1);
    expect(iotlb.invalidate(SZ_2M + SZ_2M - 1, 2)).toBe(2);
    expect(iotlb.size).toBe(1);
    expect(iotlb.invalidate()).toBe(1);
    expect(iotlb.size).toBe(0);
  });

  it('lists the same frozen entries until an insert or invalidation changes them', () => {
    const iotlb = new Iotlb(0);
    iotlb.insert(SZ_2M, 0x40_0000, '2M');
    const first = iotlb.entries();
    expect(iotlb.entries()).toBe(first);
    expect(Object.isFrozen([...first][0])).toBe(true);
    iotlb.insert(0, 0x10_0000, '4K');
    expect([...iotlb.entries()].map((e) => e.addr)).toEqual([0, SZ_2M]);
    const second = iotlb.entries();
    expect(iotlb.invalidate(3 * SZ_2M, SZ_4K)).toBe(0);
    expect(iotlb.entries()).toBe(second);
    expect([...iotlb.entries()].map((e) => e.addr)).toEqual([0, SZ_2M]);
    iotlb.invalidate(0, SZ_4K);
    expect(iotlb.entries()).not.toBe(second);
    expect([...iotlb.entries()].map((e) => e.addr)).toEqual([SZ_2M]);
    iotlb.invalidate();
    expect([...iotlb.entries()]).toEqual([]);
  });

  it('answers overlaps and invalidates ranges as a per-frame reference does, over random inserts', () => {
    const gfnArb = fc.integer({ min: 0, max: 6 * 512 });
    const opArb = fc.oneof(
      fc.record({ kind: fc.constant('insert' as const), gfn: gfnArb, large: fc.boolean() }),
      fc.record({ kind: fc.constantFrom('invalidate' as const, 'overlaps' as const), gfn: gfnArb, pages: fc.integer({ min: 1, max: 3 * 512 }) }),
      fc.record({ kind: fc.constant('clear' as const) }),
    );
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 10, maxLength: 80, size: 'max' }), (ops) => {
        const iotlb = new Iotlb(0);
        const small = new Set<number>();
        const large = new Set<number>();
        for (const op of ops) {
          if (op.kind === 'clear') {
            expect(iotlb.invalidate()).toBe(small.size + large.size);
            small.clear();
            large.clear();
          } else if (op.kind === 'insert') {
            if (op.large) large.add(Math.floor(op.gfn / 512));
            else small.add(op.gfn);
            iotlb.insert(op.large ? Math.floor(op.gfn / 512) * SZ_2M : op.gfn * SZ_4K, 0x1000, op.large ? '2M' : '4K');
          } else {
            const end = op.gfn + op.pages;
            const hitSmall = [...small].filter((g) => g >= op.gfn && g < end);
            const hitLarge = [...large].filter((r) => r * 512 < end && op.gfn < (r + 1) * 512);
            if (op.kind === 'overlaps') {
              expect(iotlb.overlaps(op.gfn * SZ_4K, op.pages * SZ_4K)).toBe(hitSmall.length + hitLarge.length > 0);
            } else {
              expect(iotlb.invalidate(op.gfn * SZ_4K, op.pages * SZ_4K)).toBe(hitSmall.length + hitLarge.length);
              for (const g of hitSmall) small.delete(g);
              for (const r of hitLarge) large.delete(r);
            }
          }
          expect(iotlb.size).toBe(small.size + large.size);
        }
      }),
      { numRuns: 300, seed: 15 },
    );
  });

  it('forgets a region whose 4K entries went one invalidation at a time', () => {
    const iotlb = new Iotlb(0);
    for (const gfn of [0, 5, 3 * 512]) iotlb.insert(gfn * SZ_4K, 0x1000, '4K');
    expect(iotlb.invalidate(0, SZ_4K)).toBe(1);
    expect(iotlb.overlaps(0, SZ_2M)).toBe(true);
    expect(iotlb.invalidate(5 * SZ_4K, SZ_4K)).toBe(1);
    expect(iotlb.overlaps(0, SZ_2M)).toBe(false);
    expect(iotlb.overlaps(0, 4 * SZ_2M)).toBe(true);
  });

  it('a large range over few entries walks the entries, not the range', () => {
    const iotlb = new Iotlb(0);
    iotlb.insert(2 ** 40, 0x1000, '4K');
    iotlb.insert(2 ** 41, 0x20_0000, '2M');
    expect(iotlb.invalidate(0, 2 ** 50)).toBe(2);
  });
});

describe('Recorder', () => {
  it('collects calls, faults and deduplicated, sorted frames and gfns per step', () => {
    const recorder = new Recorder();
    recorder.beginStep();
    recorder.call('psmash', { hpa: 0x200000 }, 0);
    recorder.touchFrame(9);
    recorder.touchFrameRange(0x1000, 2 * SZ_4K);
    recorder.touchFrame(1);
    recorder.touchGfnRange(0x1800, 0x1000);
    recorder.fault({ kind: 'vc', addr: 0, write: false, reason: 'not validated' });
    const step = recorder.endStep();
    expect(step.calls).toEqual([{ prim: 'psmash', args: { hpa: 0x200000 }, result: 0 }]);
    expect(step.frames).toEqual([1, 2, 9]);
    expect(step.gfns).toEqual([1, 2]);
    // As ranges: sorted and merged (touch 1 joins [1, 3)), half-open.
    expect(step.frameRanges).toEqual([{ start: 1, end: 3 }, { start: 9, end: 10 }]);
    expect(step.gfnRanges).toEqual([{ start: 1, end: 3 }]);
    expect(step.faults).toHaveLength(1);
    // The next step starts empty, and the previous step's arrays are left alone.
    recorder.touchFrame(4);
    expect(recorder.endStep()).toMatchObject({ calls: [], faults: [], frameRanges: [{ start: 4, end: 5 }], gfnRanges: [], frames: [4], gfns: [] });
    expect(step.frames).toEqual([1, 2, 9]);
  });

  it('counters start at zero', () => {
    expect(Object.values(createCounters()).every((v) => v === 0)).toBe(true);
  });
});
