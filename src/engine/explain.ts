// Runs a repro twice for `explain`: once to find the violation, once more up to the failing step,
// photographing the affected 2M region on either side of it.

import type { Oracle, Step } from '../api.ts';
import type { Repro } from '../repro/format.ts';
import { regionOf, regionSnapshot, renderExplain } from '../report/explain.ts';
import type { RegionRow } from '../report/region.ts';
import { type Policies, runCase } from './run.ts';

export function explainRepro(repro: Repro, policies: Policies, oracles: readonly Oracle[]): string {
  const wanted = repro.expect?.verdict === 'violation' ? repro.expect.oracle : undefined;
  const all = runCase(repro, policies, { oracles, allViolations: wanted !== undefined });
  // The verdict is what the case gives now (its first violation, as replay reports it), whatever
  // the file expects; the detail goes to the expected oracle when it fires too.
  const actual = all.violations[0];
  const violation = all.violations.find((v) => wanted === undefined || v.oracle === wanted) ?? actual;
  let step: Step | undefined;
  let before: RegionRow[] | undefined;
  let after: RegionRow[] | undefined;
  const where = violation ? regionOf(violation, repro) : undefined;
  if (violation && violation.step >= 0) {
    let previous: RegionRow[] | undefined;
    runCase({ ...repro, ops: repro.ops.slice(0, violation.step + 1) }, policies, {
      oracles: [],
      onStart: (view) => {
        previous = where ? regionSnapshot(view, where) : undefined;
      },
      onStep: (current, view) => {
        const snapshot = where ? regionSnapshot(view, where) : undefined;
        if (current.index === violation.step) {
          step = current;
          before = previous;
          after = snapshot;
        }
        previous = snapshot;
      },
    });
  }
  return renderExplain({ repro, actual, violation, step, before, after });
}
