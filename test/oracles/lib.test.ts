// The shared helpers of the built-in oracles: questions about the touched ranges, and the reused findings array.

import { describe, expect, it } from 'vitest';
import { Findings } from '../../oracles/lib/findings.ts';
import { overlaps, touchesRegion } from '../../oracles/lib/runs.ts';

const r = (start: number, end: number) => ({ start, end });

describe('range questions', () => {
  it('answers membership, overlap and 2M-region questions by binary search over the ranges', () => {
    const ranges = [r(3, 6), r(9, 10), r(1024, 1025)];
    expect([2, 3, 5, 6, 9, 10, 1024].map((f) => overlaps(ranges, f, f + 1))).toEqual([false, true, true, false, true, false, true]);
    expect(overlaps(ranges, 6, 9)).toBe(false);
    expect(overlaps(ranges, 6, 10)).toBe(true);
    expect([0, 1, 2, 3].map((region) => touchesRegion(ranges, region))).toEqual([true, false, true, false]);
    expect(overlaps([], 0, 1 << 30)).toBe(false);
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
