// The recorder hands over touched frames as sorted, merged, half-open ranges (API v2): whatever
// the order of the touches, the ranges cover exactly the touched frames, and adjoining or
// overlapping touches become one range.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Recorder, expandRanges } from '../../src/model/events.ts';
import { SZ_4K } from '../../src/model/size.ts';

describe('Recorder ranges', () => {
  it('cover exactly the touched frames, sorted, disjoint and non-adjacent', () => {
    const touch = fc.record({ start: fc.integer({ min: 0, max: 2000 }), len: fc.integer({ min: 1, max: 600 }) });
    fc.assert(
      fc.property(fc.array(touch, { maxLength: 30 }), (touches) => {
        const recorder = new Recorder();
        recorder.beginStep();
        const expected = new Set<number>();
        for (const { start, len } of touches) {
          recorder.touchFrameRange(start * SZ_4K, len * SZ_4K);
          recorder.touchGfn(start);
          for (let frame = start; frame < start + len; frame++) expected.add(frame);
        }
        const events = recorder.endStep();
        const ranges = events.frameRanges;
        for (let i = 0; i < ranges.length; i++) {
          expect(ranges[i]!.start).toBeLessThan(ranges[i]!.end);
          if (i > 0) expect(ranges[i - 1]!.end).toBeLessThan(ranges[i]!.start);
        }
        expect(expandRanges(ranges)).toEqual([...expected].sort((a, b) => a - b));
        expect(events.frames).toEqual([...expected].sort((a, b) => a - b));
        expect(events.gfns).toEqual([...new Set(touches.map((t) => t.start))].sort((a, b) => a - b));
      }),
      { numRuns: 300 },
    );
  });

  it('makes a 2M touch one range, and the per-frame arrays only on demand', () => {
    const recorder = new Recorder();
    recorder.beginStep();
    recorder.touchFrameRange(0x200000, 0x200000);
    recorder.touchFrameRange(0x200000, 0x1000);
    const events = recorder.endStep();
    expect(events.frameRanges).toEqual([{ start: 512, end: 1024 }]);
    expect(Object.keys(events)).not.toContain('frames');
    expect(events.frames).toHaveLength(512);
    expect(events.frames).toBe(events.frames);
  });
});
