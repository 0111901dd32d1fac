// LinearRuns (model/linear-runs.ts) against a plain map of every index it was given, under random
// sets and clears: every index reads what the map holds, stretchEnd() says where each stretch
// ends, and no two neighbouring runs are left that one run could hold (a set joins the stretch it
// writes to a neighbour it continues).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LinearRuns } from '../../src/model/linear-runs.ts';

const SPAN = 64;

/** cont: a set that goes on from where the last set ended, on its line (a copy chunk by chunk). */
type Write = { clear: boolean; cont: boolean; from: number; len: number; value: number; step: number };

const writeArb: fc.Arbitrary<Write> = fc.record({
  clear: fc.boolean(),
  cont: fc.boolean(),
  from: fc.integer({ min: 0, max: SPAN - 1 }),
  len: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 24 })),
  // Few values and steps, so that writes often continue each other; addresses near 2^52 too.
  value: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 1 }), weight: 4 }, { arbitrary: fc.constantFrom(-3, 5, 2 ** 52 - 2048), weight: 1 }),
  step: fc.oneof({ arbitrary: fc.constantFrom(0, -1), weight: 4 }, { arbitrary: fc.constantFrom(1, 2048, -2048), weight: 1 }),
});

function runsOf(runs: LinearRuns): { start: number; end: number; value: number; step: number }[] {
  const out: { start: number; end: number; value: number; step: number }[] = [];
  runs.forEachRun((start) => {
    const k = runs.runIndexAt(start);
    out.push({ start, end: runs.runEnd(k), value: runs.runValue(k), step: runs.runStep(k) });
  });
  return out;
}

describe('LinearRuns', () => {
  it('reads what was written, index by index, and keeps no two runs one run could hold', () => {
    fc.assert(
      fc.property(fc.array(writeArb, { maxLength: 60 }), fc.array(fc.integer({ min: -5, max: SPAN + 45 }), { maxLength: 30 }), (writes, probes) => {
        const runs = new LinearRuns();
        const reference = new Map<number, number>();
        let last: Write | undefined;
        for (let w of writes) {
          if (w.cont && !w.clear && last !== undefined && !last.clear) {
            const lastTo = Math.min(SPAN + 40, last.from + last.len);
            w = { ...w, from: lastTo, value: last.value + (lastTo - last.from) * last.step, step: last.step };
          }
          last = w;
          const to = Math.min(SPAN + 40, w.from + w.len);
          if (w.clear) runs.clear(w.from, to);
          else {
            runs.set(w.from, to, w.value, w.step);
            // lastSetRun(): the run that now holds the whole range written.
            const k = runs.lastSetRun();
            expect(runs.runStart(k) <= w.from && runs.runEnd(k) >= to).toBe(true);
          }
          for (let i = w.from; i < to; i++) {
            if (w.clear) reference.delete(i);
            else reference.set(i, w.value + (i - w.from) * w.step);
          }
          // In any order of look-ups (the hint must never answer for the wrong run).
          for (const i of probes) {
            expect(runs.get(i)).toBe(reference.get(i));
            // stretchEnd(): where the line through i ends (i covered), or the next covered index.
            let end = i + 1;
            const at = reference.get(i);
            if (at === undefined) while (end < SPAN + 50 && !reference.has(end)) end++;
            else while (reference.get(end) !== undefined && runs.runIndexAt(end) === runs.runIndexAt(i)) end++;
            expect(runs.stretchEnd(i), `stretchEnd(${i})`).toBe(at === undefined && end === SPAN + 50 ? Infinity : end);
          }
        }
        for (let i = -2; i < SPAN + 42; i++) expect(runs.get(i)).toBe(reference.get(i));
        const list = runsOf(runs);
        expect(list.length).toBe(runs.size);
        for (let k = 0; k < list.length; k++) {
          const run = list[k]!;
          expect(run.start).toBeLessThan(run.end);
          const next = list[k + 1];
          if (next === undefined) continue;
          expect(next.start).toBeGreaterThanOrEqual(run.end);
          const continues = next.start === run.end && next.step === run.step && run.value + (run.end - run.start) * run.step === next.value;
          expect(continues).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('moves many runs up and down when a write near the front adds or removes runs', () => {
    // More runs than a short move copies number by number: the rest go through copyWithin().
    const runs = new LinearRuns();
    const reference = new Map<number, number>();
    for (let i = 0; i < 400; i += 2) {
      runs.set(i, i + 1, 1000 + i, 0);
      reference.set(i, 1000 + i);
    }
    const check = (): void => {
      for (let i = -1; i < 402; i++) expect(runs.get(i), `index ${i}`).toBe(reference.get(i));
    };
    // A split inside the first run's neighbourhood: two runs more, everything after them moves up.
    runs.set(1, 2, 7, 0);
    reference.set(1, 7);
    check();
    runs.clear(0, 6);
    for (let i = 0; i < 6; i++) reference.delete(i);
    check();
    runs.set(3, 11, 50, 1);
    for (let i = 3; i < 11; i++) reference.set(i, 50 + i - 3);
    check();
    expect(runs.size).toBe(reference.size - 7);
  });

  it('stores a stretch written slot by slot, counting on, as one run', () => {
    const runs = new LinearRuns();
    // As swiotlb_release_slots() renumbers a free run: from its end, one slot at a time.
    for (let i = 99; i >= 50; i--) runs.set(i, i + 1, 100 - i, -1);
    for (let i = 0; i < 50; i++) runs.set(i, i + 1, 2 ** 52 - 4096 + i * 2048, 2048);
    expect(runs.size).toBe(2);
    expect(runs.get(50)).toBe(50);
    expect(runs.get(99)).toBe(1);
    expect(runs.get(49)).toBe(2 ** 52 - 4096 + 49 * 2048);
    runs.clear(10, 60);
    expect(runs.size).toBe(2);
    expect(runs.get(10)).toBeUndefined();
    expect(runs.get(60)).toBe(40);
  });

  it('changes nothing for a set inside a run on its line, and still writes one that reaches past it', () => {
    const runs = new LinearRuns();
    runs.set(0, 10, 5, 1);
    runs.set(20, 30, 0, 0);
    runs.set(2, 6, 7, 1);
    expect(runs.size).toBe(2);
    expect(runs.runStart(runs.lastSetRun())).toBe(0);
    runs.set(0, 11, 5, 1);
    expect(runs.get(10)).toBe(15);
    expect(runs.size).toBe(2);
    runs.set(20, 25, 1, 0);
    expect([runs.get(24), runs.get(25), runs.size]).toEqual([1, 0, 3]);
    // A clear of nothing stored leaves the runs alone.
    runs.clear(12, 19);
    expect(runs.size).toBe(3);
  });

  it('joins a run that grows up to the next run on its line, and never grows over one that is not', () => {
    const runs = new LinearRuns();
    runs.set(10, 20, 110, 1);
    runs.set(0, 5, 100, 1);
    // Grows [0, 5) up to 10, where the run of 110.. goes on: one run.
    runs.set(5, 10, 105, 1);
    expect(runs.size).toBe(1);
    expect(runs.get(19)).toBe(119);
    runs.set(30, 40, 0, 0);
    runs.set(20, 35, 120, 1);
    expect(runs.size).toBe(2);
    expect(runs.get(34)).toBe(134);
    expect(runs.get(35)).toBe(0);
  });
});
