import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { ACCEPTED, CONVERTING, PageStates, SHARED, VALIDATED } from '../../src/guest/pages.ts';

describe('PageStates', () => {
  it('agrees with a per-page model on random range updates, runs and iteration', () => {
    const random = seedrandom('page-states');
    const states = new PageStates();
    const model = new Map<number, number>();
    const span = 4 * 512;
    const bits = [ACCEPTED, SHARED, VALIDATED, CONVERTING];
    for (let round = 0; round < 400; round++) {
      // Whole 2M regions half the time, so long runs and their joins are exercised.
      const whole = random() < 0.5;
      const start = whole ? Math.floor(random() * 4) * 512 : Math.floor(random() * span);
      const end = whole ? start + 512 * (1 + Math.floor(random() * 2)) : Math.min(span + 512, start + 1 + Math.floor(random() * 700));
      const set = random() < 0.5 ? (bits[Math.floor(random() * 4)] ?? 0) : 0;
      const clear = random() < 0.5 ? (bits[Math.floor(random() * 4)] ?? 0) : 0;
      states.updateRange(start, end, set, clear);
      for (let gfn = start; gfn < end; gfn++) model.set(gfn, ((model.get(gfn) ?? 0) & ~clear) | set);
      if (round % 20 !== 0) continue;
      for (let gfn = 0; gfn < span + 1024; gfn++) expect(states.flags(gfn)).toBe(model.get(gfn) ?? 0);
      const expected = [...model.entries()].filter(([, f]) => f !== 0).map(([g]) => g).sort((a, b) => a - b);
      expect([...states.pages()]).toEqual(expected);
      // runEnd: the end of each run of equal flags, capped by the limit.
      for (let gfn = 0; gfn < span + 1024; ) {
        const limit = span + 1024;
        const end2 = states.runEnd(gfn, limit);
        expect(end2).toBeGreaterThan(gfn);
        for (let g = gfn; g < end2; g++) expect(model.get(g) ?? 0).toBe(model.get(gfn) ?? 0);
        if (end2 < limit) expect(model.get(end2) ?? 0).not.toBe(model.get(gfn) ?? 0);
        gfn = end2;
      }
    }
  });

  it('jumps over untouched memory in runEnd and answers page() like before', () => {
    const states = new PageStates();
    states.updateRange(512 * 1000, 512 * 1001, ACCEPTED | SHARED, 0);
    expect(states.runEnd(0, 2 ** 40)).toBe(512 * 1000);
    expect(states.runEnd(512 * 1000, 2 ** 40)).toBe(512 * 1001);
    expect(states.runEnd(512 * 1001, 2 ** 40)).toBe(2 ** 40);
    expect(states.page(512 * 1000 + 7)).toEqual({ accepted: true, shared: true, validated: false, converting: false });
    expect(states.page(7)).toBeUndefined();
    states.update(512 * 1000 + 3, 0, SHARED);
    expect(states.runEnd(512 * 1000, 2 ** 40)).toBe(512 * 1000 + 3);
    expect(states.runEnd(512 * 1000 + 3, 2 ** 40)).toBe(512 * 1000 + 4);
  });
});
