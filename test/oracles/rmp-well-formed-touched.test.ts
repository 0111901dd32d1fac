// rmp-well-formed judges the 2M rules in a step for every region of the frames the step touched
// that an assigned 2M entry governs, walking the touched frames run by run: a touched range over a
// stretch of 2M entries is one run, and each of its regions must still be judged. The model's RMP
// cannot break the rules (a 2M update needs an aligned GPA), so the test breaks one entry behind
// its back, as a buggy RMP model would.

import { describe, expect, it } from 'vitest';
import type { RmpEntry, Step, View } from '../../src/api.ts';
import { Rmp } from '../../src/model/rmp.ts';
import { oracleNamed } from './cases.ts';

const SZ_4K = 4096;
const SZ_2M = 2 * 1024 * 1024;
const HPA = 0x1_0000_0000;
const GPA = 0x4000_0000;
const oracle = oracleNamed('rmp-well-formed');

describe('rmp-well-formed over touched frames', () => {
  it('judges every region of a run of 2M entries a touched range covers', () => {
    const rmp = new Rmp();
    for (let k = 0; k < 8; k++) expect(rmp.rmpUpdate(HPA + k * SZ_2M, { assigned: true, asid: 1, gpa: GPA + k * SZ_2M, size: '2M' })).toBe(0);
    const counters = { rmpUpdate: 8, psmash: 0 };
    const view = { rmp, counters } as unknown as View;
    const step = (start: number, end: number): Step => ({ op: { op: 'touch' }, frameRanges: [{ start, end }], gfnRanges: [], calls: [] }) as unknown as Step;
    const first = HPA / SZ_4K;
    // The first check sweeps: all eight are well formed.
    expect(oracle.check(view, step(first, first + 1)) ?? []).toEqual([]);
    // Region 5's head moves off its 2M-aligned GPA.
    const region = (rmp as unknown as { regions: { get(key: number): { gpa0: number } } }).regions.get(first / 512 + 5);
    region.gpa0 += SZ_4K;
    const found = oracle.check(view, step(first, first + 8 * 512)) ?? [];
    expect(found.map((f) => f.message)).toEqual([expect.stringMatching(/^RMP\[2M\] at hpa 0x100a00000 for gpa 0x40a01000 ==> FAIL \(2M entry not 2M-aligned\)$/)]);
    // A range that stops short of region 5 does not reach it.
    expect(oracle.check(view, step(first, first + 5 * 512)) ?? []).toEqual([]);
  });
});

describe('rmp-well-formed over touched frames, with frames that disagree with their head', () => {
  it('judges the region a touched range starts in, whatever its frames read', () => {
    // Four private 2M entries; an RMP view that reads frames 1..511 of region 2 as 4K entries
    // while its head says 2M (a review's input: the old region-by-region check found it).
    const rmp = new Rmp();
    for (let k = 0; k < 4; k++) expect(rmp.rmpUpdate(HPA + k * SZ_2M, { assigned: true, asid: 1, gpa: GPA + k * 4 * SZ_2M, size: '2M' })).toBe(0);
    const first = HPA / SZ_4K;
    const broken = first + 2 * 512;
    const rmpView = {
      load(pfn: number, out: RmpEntry): RmpEntry {
        rmp.load(pfn, out);
        if (pfn > broken && pfn < broken + 512) out.size = '4K';
        return out;
      },
      // Runs as the view reads them: the broken region's head alone, then its other frames.
      runEnd(pfn: number, limit: number): number {
        if (pfn < broken) return Math.min(rmp.runEnd(pfn, limit), broken);
        if (pfn >= broken + 512) return rmp.runEnd(pfn, limit);
        return Math.min(limit, pfn === broken ? broken + 1 : broken + 512);
      },
    };
    const view = { rmp: rmpView, counters: { rmpUpdate: 4, psmash: 0 } } as unknown as View;
    const step = (start: number, end: number): Step => ({ op: { op: 'touch' }, frameRanges: [{ start, end }], gfnRanges: [], calls: [] }) as unknown as Step;
    // The first check sweeps the whole view, which finds the broken region; the next ones look at what they touch.
    expect((oracle.check(view, step(first, first + 1)) ?? []).length).toBe(1);
    const found = oracle.check(view, step(broken + 5, broken + 9)) ?? [];
    expect(found.map((f) => f.message)).toEqual([expect.stringMatching(/^RMP\[2M\] at hpa 0x100400000 .* frame 0x100401000 reads RMP\[4K\] .*==> FAIL \(2M entry does not govern its region\)$/)]);
  });
});
