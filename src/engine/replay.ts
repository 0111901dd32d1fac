// Replaying repro files: the same case gives the same verdict, so `replay --check` turns a
// corpus into a regression suite.

import type { Repro } from '../repro/format.ts';
import { type RunOptions, type RunResult, runCase } from './run.ts';
import { type OracleSelection, resolveReproOracles, resolveReproPolicies } from './select.ts';

export interface ReplayOutcome {
  result: RunResult;
  /** Undefined when the file states no expectation. */
  met?: boolean;
  /** Why the expectation was not met, in one line. */
  mismatch?: string;
}

export function checkExpectation(repro: Repro, result: RunResult): Pick<ReplayOutcome, 'met' | 'mismatch'> {
  const expect = repro.expect;
  if (!expect) return {};
  const first = result.violations[0];
  if (expect.verdict === 'clean') {
    return first ? { met: false, mismatch: `expected clean, got ${first.oracle} at step ${first.step}: ${first.message}` } : { met: true };
  }
  const hit = result.violations.find((v) => v.oracle === expect.oracle);
  if (!hit) {
    const got = first ? `${first.oracle} at step ${first.step}` : 'clean';
    return { met: false, mismatch: `expected ${expect.oracle}${expect.step === undefined ? '' : ` at step ${expect.step}`}, got ${got}` };
  }
  if (expect.step !== undefined && hit.step !== expect.step) {
    return { met: false, mismatch: `expected ${expect.oracle} at step ${expect.step}, it fired at step ${hit.step}` };
  }
  return { met: true };
}

export async function replayRepro(
  repro: Repro,
  selection: OracleSelection = {},
  options: Omit<RunOptions, 'oracles'> = {},
): Promise<ReplayOutcome> {
  const policies = await resolveReproPolicies(repro);
  const oracles = await resolveReproOracles(repro, selection);
  // With an expectation, run on past the first violation so a different first finding does not
  // hide the expected one.
  const result = runCase(repro, policies, { ...options, oracles, allViolations: options.allViolations ?? repro.expect !== undefined });
  return { result, ...checkExpectation(repro, result) };
}
