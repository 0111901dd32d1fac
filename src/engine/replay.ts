// Replaying repro files: the same case gives the same verdict, so `replay --check` turns a
// corpus into a regression suite.

import { dirname, resolve } from 'node:path';
import { looksLikeFile, realOrResolved } from '../repro/plugin-paths.ts';
import type { Repro } from '../repro/format.ts';
import { FormatError } from '../ops/errors.ts';
import { POLICY_ERROR, type Policies, type RunOptions, type RunResult, runCase } from './run.ts';
import { type OracleSelection, type ReproOverrides, reproOracleFiles, resolveOracles, resolveReproPolicies } from './select.ts';

export interface ReplayOutcome {
  result: RunResult;
  /** Undefined when the file states no expectation. */
  met?: boolean;
  /** Why the expectation was not met, in one line. */
  mismatch?: string;
  /** Things the user should know about this replay (policies other than the file's, with `during`). */
  warnings: string[];
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

/**
 * Whether `override` (a --host-policy or --guest-policy) is the plugin file the repro names
 * (`named`, relative to the repro file): how `fuzz` tells users to replay a repro of a user policy.
 */
function sameFile(override: string, named: string, source: string | undefined): boolean {
  if (!looksLikeFile(override) || !looksLikeFile(named)) return false;
  return realOrResolved(override) === realOrResolved(source === undefined ? named : resolve(dirname(source), named));
}

/**
 * What a user should know when --host-policy/--guest-policy replace the file's policies: a file
 * that uses `during` counts its positions (`after: K`) in the calls the file's policies make;
 * other policies make other calls, and the interleaved ops land somewhere else. `doing` starts
 * the sentence ("replaying", "explaining").
 */
export function overrideWarnings(repro: Repro, policies: Policies, overrides: Omit<ReproOverrides, 'oracles'>, doing: string): string[] {
  const warnings: string[] = [];
  const interleaved = repro.ops.some((op) => op.during !== undefined && op.during.length > 0);
  for (const [side, name, file, override] of [
    ['host', policies.host.name, repro.config.hostPolicy, overrides.hostPolicy],
    ['guest', policies.guest.name, repro.config.guestPolicy, overrides.guestPolicy],
  ] as const) {
    if (interleaved && override !== undefined && name !== file && !sameFile(override, file, repro.source)) {
      warnings.push(`${doing} with ${side} policy ${name}, not the file's ${file}: "during" positions count the calls of the file's policies`);
    }
  }
  return warnings;
}

export async function replayRepro(
  repro: Repro,
  selection: OracleSelection & Omit<ReproOverrides, 'oracles'> = {},
  options: Omit<RunOptions, 'oracles'> = {},
): Promise<ReplayOutcome> {
  const policies = await resolveReproPolicies(repro, selection);
  const files = reproOracleFiles(repro, selection.files);
  const oracles = await resolveOracles({ ...selection, files });
  // An expected oracle no file or built-in defines (a typo) is bad input, not an unmet expectation.
  const expected = repro.expect?.verdict === 'violation' ? repro.expect.oracle : undefined;
  // Every oracle the selection could load, --only-oracle aside (switching one off leaves its expectation unmet, not bad).
  if (expected !== undefined && expected !== POLICY_ERROR && !oracles.some((o) => o.name === expected) && !(await resolveOracles({ ...selection, only: [], files })).some((o) => o.name === expected)) {
    throw new FormatError(`${repro.source === undefined ? '' : `${repro.source}: `}expect.oracle`, `no oracle "${expected}" (not built in, nor in the file's oracles or --oracle)`);
  }
  const warnings = overrideWarnings(repro, policies, selection, 'replaying');
  // With an expectation, run on past the first violation so a different first finding does not
  // hide the expected one.
  const result = runCase(repro, policies, { ...options, oracles, allViolations: options.allViolations ?? repro.expect !== undefined });
  return { result, warnings, ...checkExpectation(repro, result) };
}
