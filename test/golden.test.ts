import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type GoldenRun, goldenRuns, recordRun } from './golden/record.ts';

// Issue 15's behaviour lock: the range-level core must find what the per-frame core found, case
// by case. A difference here is either a regression or a finding that was wrong (then re-record
// with `npm run golden` and say which and why in the commit).
const golden = JSON.parse(readFileSync(new URL('./golden/findings.json', import.meta.url), 'utf8')) as Record<string, GoldenRun>;

describe('golden findings', () => {
  it('records every run it checks', () => {
    expect(Object.keys(golden)).toEqual(goldenRuns().map((spec) => spec.label));
    const failing = Object.values(golden).flatMap((run) => run.verdicts).filter((v) => v !== 'clean');
    expect(failing.length).toBeGreaterThan(250);
    // The lock covers most oracles, not one loud one (`replay --check corpus/` in CI holds the rest).
    const oracles = new Set(Object.values(golden).flatMap((run) => run.shrunk.map((s) => s.signature.split('|')[0])));
    expect(oracles.size).toBeGreaterThanOrEqual(9);
  });
  for (const spec of goldenRuns()) {
    it(spec.label, async () => {
      expect(await recordRun(spec)).toEqual(golden[spec.label]);
    });
  }
});
