// The shared helpers of the built-in oracles: touched frames as runs, and the reused findings array.

import { describe, expect, it } from 'vitest';
import { Findings } from '../../oracles/lib/findings.ts';
import { Runs, runsOf } from '../../oracles/lib/runs.ts';

const r = (start: number, end: number) => ({ start, end });

describe('runsOf', () => {
  it("copies the step's ranges into reused buffers", () => {
    const runs = new Runs();
    runsOf([r(3, 6), r(9, 10), r(511, 514)], runs);
    expect(runs.count).toBe(3);
    expect([runs.start.slice(0, runs.count), runs.end.slice(0, runs.count)]).toEqual([
      [3, 9, 511],
      [6, 10, 514],
    ]);
    const { start } = runs;
    runsOf([r(7, 8)], runs);
    expect(runs.count).toBe(1);
    expect(runs.start).toBe(start);
    expect([runs.start[0], runs.end[0]]).toEqual([7, 8]);
    runsOf([], runs);
    expect(runs.count).toBe(0);
  });

  it('answers membership, overlap and 2M-region questions', () => {
    const runs = runsOf([r(3, 6), r(9, 10), r(1024, 1025)], new Runs());
    expect([2, 3, 5, 6, 9, 10, 1024].map((f) => runs.has(f))).toEqual([false, true, true, false, true, false, true]);
    expect(runs.overlaps(6, 9)).toBe(false);
    expect(runs.overlaps(6, 10)).toBe(true);
    expect([0, 1, 2, 3].map((r) => runs.touchesRegion(r))).toEqual([true, false, true, false]);
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
