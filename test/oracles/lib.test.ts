// The shared helpers of the built-in oracles: questions about the touched ranges, and the reused findings array.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Oracle, View } from '../../src/api.ts';
import { argAt, callsIn, type CallRecord } from '../../src/model/types.ts';
import { runCase } from '../../src/engine/run.ts';
import { resolvePolicies } from '../../src/engine/select.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import { caseSeed, generateCase } from '../../src/ops/generate.ts';
import { markCallPages } from '../../oracles/lib/call-pages.ts';
import { Float64Slab } from '../../oracles/lib/slab.ts';
import { CpuFrames } from '../../oracles/lib/cpu-frames.ts';
import { Findings } from '../../oracles/lib/findings.ts';
import { FrameGfns } from '../../oracles/lib/frame-gfns.ts';
import { NumberList } from '../../oracles/lib/number-list.ts';
import { RangeSet } from '../../oracles/lib/range-set.ts';
import { firstOutside, holdsAll, outsideEnd, overlaps, rangeHolding, touchesRegion } from '../../oracles/lib/runs.ts';

const r = (start: number, end: number) => ({ start, end });

describe('range questions', () => {
  it('answers membership, overlap and 2M-region questions by binary search over the ranges', () => {
    const ranges = [r(3, 6), r(9, 10), r(1024, 1025)];
    expect([2, 3, 5, 6, 9, 10, 1024].map((f) => overlaps(ranges, f, f + 1))).toEqual([false, true, true, false, true, false, true]);
    expect(overlaps(ranges, 6, 9)).toBe(false);
    expect(overlaps(ranges, 6, 10)).toBe(true);
    expect([0, 1, 2, 3].map((region) => touchesRegion(ranges, region))).toEqual([true, false, true, false]);
    expect(overlaps([], 0, 1 << 30)).toBe(false);
    expect([2, 3, 5, 6, 9, 10, 1024].map((f) => rangeHolding(ranges, f))).toEqual([undefined, r(3, 6), r(3, 6), undefined, r(9, 10), undefined, r(1024, 1025)]);
    expect(rangeHolding([], 0)).toBeUndefined();
  });

  it('walks the stretches outside the ranges, and tells whether one range holds a stretch', () => {
    const ranges = [r(3, 6), r(9, 10), r(1024, 1025)];
    const outside: number[][] = [];
    for (let at = firstOutside(ranges, 0, 1030); at < 1030; at = firstOutside(ranges, at, 1030)) {
      const end = outsideEnd(ranges, at, 1030);
      outside.push([at, end]);
      at = end;
    }
    expect(outside).toEqual([[0, 3], [6, 9], [10, 1024], [1025, 1030]]);
    expect(firstOutside(ranges, 3, 5)).toBe(5);
    expect(outsideEnd(ranges, 6, 8)).toBe(8);
    expect([holdsAll(ranges, 3, 6), holdsAll(ranges, 4, 5), holdsAll(ranges, 3, 7), holdsAll(ranges, 5, 10), holdsAll([], 0, 1)]).toEqual([true, true, false, false, false]);
  });
});

describe('RangeSet', () => {
  it('holds what was added, as merged ranges, in any order of additions (against a plain Set)', () => {
    let seed = 12345;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 200; round++) {
      const set = new RangeSet();
      const reference = new Set<number>();
      for (let op = 0; op < 12; op++) {
        const from = random(64);
        const to = from + random(8);
        set.add(from, to);
        for (let f = from; f < to; f++) reference.add(f);
        for (let f = 0; f < 80; f++) expect(set.has(f)).toBe(reference.has(f));
        // The stretches outside the set, as firstOutside() and outsideEnd() walk them, are what the reference leaves out.
        const outside: number[] = [];
        for (let at = set.firstOutside(0, 80); at < 80; at = set.firstOutside(at, 80)) {
          const end = set.outsideEnd(at, 80);
          expect(end).toBeGreaterThan(at);
          for (let f = at; f < end; f++) outside.push(f);
          at = end;
        }
        expect(outside).toEqual([...Array(80).keys()].filter((f) => !reference.has(f)));
      }
      set.clear();
      expect(set.has(random(64))).toBe(false);
    }
  });
});

describe('markCallPages', () => {
  /** The pages every call covers, call by call (argAt), in the window. */
  function byCall(record: CallRecord, pages: number, first: number): number[] {
    const out = new Set<number>();
    for (let i = 0; i < callsIn(record); i++) {
      const page = Math.floor(argAt(record, 'hpa', i) / 4096);
      for (let p = page; p < page + pages; p++) if (p >= first && p < first + 512) out.add(p);
    }
    return [...out].sort((a, b) => a - b);
  }
  function marked(record: CallRecord, pages: number, first: number): number[] {
    const marks = new Uint8Array(512);
    markCallPages(record, 'hpa', pages, first, marks);
    const out: number[] = [];
    marks.forEach((m, i) => m === 1 && out.push(first + i));
    return out;
  }
  const run = (hpa: number, count: number, stride: number, strided = ['hpa']): CallRecord => ({ prim: 'rmpupdate', args: { hpa }, result: 0, count, stride, strided });

  it('marks the pages of the calls that reach the window, as the calls one by one would', () => {
    const first = 1024;
    const records: [CallRecord, number][] = [
      [run(1000 * 4096, 253, 4096), 1],
      [run(1300 * 4096, 253, 4096), 1],
      [run(1530 * 4096, 10, 4096), 1],
      [run(0, 6, 512 * 4096), 512],
      [run(1023 * 4096 + 100, 40, 3 * 4096), 1],
      [run(1100 * 4096, 30, 4096, []), 1],
      [run(1200 * 4096, 30, -4096), 1],
      [{ prim: 'rmpupdate', args: { hpa: 1030 * 4096 }, result: 0 }, 1],
    ];
    for (const [record, pages] of records) {
      for (const window of [first, first - 512, first + 512]) expect(marked(record, pages, window)).toEqual(byCall(record, pages, window));
    }
    expect(marked(run(1000 * 4096, 253, 4096), 1, first)).toHaveLength(253 - 24);
  });
});

describe('Float64Slab', () => {
  it('hands out zeroed slices of one size that share no element, across buffers', () => {
    const slab = new Float64Slab(4, 3);
    const slices = Array.from({ length: 7 }, () => slab.take());
    slices.forEach((slice, k) => {
      expect([...slice]).toEqual([0, 0, 0, 0]);
      slice.fill(k + 1);
    });
    slices.forEach((slice, k) => expect([...slice]).toEqual([k + 1, k + 1, k + 1, k + 1]));
  });
});

describe('FrameGfns', () => {
  /** The GFN of each frame and where each stretch ends, read back by walking stretch() from `from`. */
  const readBack = (index: FrameGfns, from: number, to: number): { gfns: number[]; ends: number[] } => {
    const gfns: number[] = [];
    const ends: number[] = [];
    for (let pfn = from; pfn < to; ) {
      const end = index.stretch(pfn, to);
      expect(end).toBeGreaterThan(pfn);
      for (let i = 0; i < end - pfn; i++) gfns.push(index.gfn < 0 ? -1 : index.gfn + i);
      ends.push(end);
      pfn = end;
    }
    return { gfns, ends };
  };

  it('answers the GFN each frame backed last, stretch by stretch, as a per-frame map would', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ pfn: fc.integer({ min: 0, max: 1100 }), gfn: fc.integer({ min: 0, max: 5000 }), count: fc.integer({ min: 0, max: 600 }) }), { maxLength: 30 }),
        fc.integer({ min: 0, max: 1200 }),
        (writes, from) => {
          const index = new FrameGfns();
          const reference = new Map<number, number>();
          for (const { pfn, gfn, count } of writes) {
            if (count === 1) index.set(pfn, gfn);
            else index.setRun(pfn, gfn, count);
            for (let i = 0; i < count; i++) reference.set(pfn + i, gfn + i);
          }
          const to = from + 800;
          const { gfns } = readBack(index, from, to);
          expect(gfns).toEqual(Array.from({ length: to - from }, (_, i) => reference.get(from + i) ?? -1));
        },
      ),
    );
  });

  it('keeps frames backing consecutive GFNs as one stretch, however they were set', () => {
    const index = new FrameGfns();
    index.setRun(1000, 7000, 512);
    for (let i = 0; i < 512; i++) index.set(1512 + i, 7512 + i);
    index.set(5, 100);
    expect(index.runCount).toBe(2);
    expect(readBack(index, 0, 3000).ends).toEqual([5, 6, 1000, 2024, 3000]);
  });
});

describe('CpuFrames', () => {
  /** The frame behind `gpa` as the oracles wrote it by hand: the NPT translation, else the host's backing. */
  const reference = (view: View, gpa: number): number => view.npt.iovaToPhys(gpa) ?? view.host.backingHpa(gpa);

  it('answers the NPT translation, else the host backing, and linearEnd() runs only where the answers advance 4K per page', async () => {
    const cpu = new CpuFrames();
    let runs = 0;
    let pages = 0;
    let viaBacking = 0;
    const wrong: string[] = [];
    const probe: Oracle = {
      name: 'cpu-frames-probe',
      description: 'compares CpuFrames with the page-by-page reference',
      severity: 'correctness',
      check(view) {
        cpu.forget();
        const last = view.config.guestMemory / 4096;
        for (let gfn = 0; gfn < last; ) {
          const hpa = cpu.hpa(view, gfn * 4096);
          if (hpa !== reference(view, gfn * 4096)) wrong.push(`gfn ${gfn}: ${hpa}`);
          if (hpa < 0) {
            gfn++;
            continue;
          }
          const viaNpt = cpu.viaNpt;
          if (!viaNpt) viaBacking++;
          const end = cpu.linearEnd(view, gfn, last);
          if (end <= gfn) wrong.push(`gfn ${gfn}: linearEnd ${end}`);
          for (let g = gfn + 1; g < end; g++) {
            if (reference(view, g * 4096) !== hpa + (g - gfn) * 4096 || (view.npt.iovaToPhys(g * 4096) !== undefined) !== viaNpt) wrong.push(`gfn ${g} in the run from ${gfn}`);
          }
          runs++;
          pages += end - gfn;
          gfn = Math.max(end, gfn + 1);
        }
        return undefined;
      },
    };
    const config = defaultConfig({ hostPolicy: 'quiesce-dma', guestPolicy: 'linux-2m-pool', guestMemory: '16M' });
    const policies = await resolvePolicies('quiesce-dma', 'linux-2m-pool');
    for (let i = 0; i < 6; i++) {
      const result = runCase(generateCase(config, caseSeed('cpu-frames', i), { steps: 24 }), policies, { oracles: [probe] });
      expect(result.oracleErrors).toEqual([]);
    }
    expect(wrong.slice(0, 5)).toEqual([]);
    expect(runs).toBeGreaterThan(50);
    expect(pages).toBeGreaterThan(10 * runs);
    expect(viaBacking).toBeGreaterThan(0);
  });
});

describe('Findings', () => {
  it('hands findings over once, and undefined when there are none', () => {
    const found = new Findings();
    expect(found.take()).toBeUndefined();
    found.push({ message: 'a' });
    found.push({ message: 'b' });
    expect(found.length).toBe(2);
    const taken = found.take();
    expect(taken).toEqual([{ message: 'a' }, { message: 'b' }]);
    expect(found.take()).toBeUndefined();
    expect(taken).toHaveLength(2);
  });
});

describe('NumberList', () => {
  it('holds what was pushed since the last clear(), once with pushOnce()', () => {
    const list = new NumberList();
    list.push(7);
    list.pushOnce(7);
    list.pushOnce(2 ** 40);
    expect([list.count, list.at(0), list.at(1), list.includes(2 ** 40), list.includes(8)]).toEqual([2, 7, 2 ** 40, true, false]);
    list.clear();
    // Numbers left over in the array from before clear() are not held.
    expect([list.count, list.includes(7)]).toEqual([0, false]);
    list.pushOnce(3);
    expect([list.count, list.at(0), list.includes(2 ** 40)]).toEqual([1, 3, false]);
  });
});
