// Runs a repro twice for `explain` and the HTML report: once to find the violation, once more up
// to the failing step, photographing the affected 2M region on either side of it.

import type { Oracle, Step, View, Violation } from '../api.ts';
import type { Repro } from '../repro/format.ts';
import type { ReproOverrides } from './select.ts';
import { regionOf, regionSnapshot, renderExplain } from '../report/explain.ts';
import { type RegionMap, regionMap } from '../report/region-map.ts';
import type { RegionRow } from '../report/region.ts';
import { type OracleError, type Policies, runCase } from './run.ts';

export interface FailingStep<T> {
  /** What the case gives now (its first violation, as replay reports it), whatever the file expects. */
  actual: Violation | undefined;
  /** The violation explained in detail: the file's expected one when it fires too, else `actual`. */
  violation: Violation | undefined;
  /** Oracles that threw: each checked nothing after its step. */
  oracleErrors: readonly OracleError[];
  /** The violation is there with no op at all: the booted world already has it. */
  atBoot: boolean;
  step: Step | undefined;
  before: T | undefined;
  after: T | undefined;
}

type Where = NonNullable<ReturnType<typeof regionOf>>;

/** The violation a repro shows (its expected oracle first) and `snap` of its region around that step. */
export function captureFailingStep<T>(repro: Repro, policies: Policies, oracles: readonly Oracle[], snap: (view: View, where: Where) => T): FailingStep<T> {
  const wanted = repro.expect?.verdict === 'violation' ? repro.expect.oracle : undefined;
  const all = runCase(repro, policies, { oracles, allViolations: wanted !== undefined });
  const actual = all.violations[0];
  const violation = all.violations.find((v) => wanted === undefined || v.oracle === wanted) ?? actual;
  // An oracle reports what the booted world already breaks with the first step (its boot() or its
  // first check's sweep): the same finding, word for word (addresses included), in a case of no
  // ops says no op made it.
  const atBoot =
    violation !== undefined &&
    violation.step === 0 &&
    (repro.ops.length === 0 || runCase({ ...repro, ops: [] }, policies, { oracles, allViolations: true }).violations.some((v) => v.oracle === violation.oracle && v.message === violation.message));
  const found: FailingStep<T> = { actual, violation, oracleErrors: all.oracleErrors, atBoot, step: undefined, before: undefined, after: undefined };
  const where = violation ? regionOf(violation, repro) : undefined;
  if (violation && violation.step >= 0) {
    let previous: T | undefined;
    runCase({ ...repro, ops: repro.ops.slice(0, violation.step + 1) }, policies, {
      oracles: [],
      onStart: (view) => {
        previous = where ? snap(view, where) : undefined;
      },
      onStep: (current, view) => {
        const snapshot = where ? snap(view, where) : undefined;
        if (current.index === violation.step) {
          found.step = current;
          found.before = previous;
          found.after = snapshot;
        }
        previous = snapshot;
      },
    });
    // A file of no ops has no step to photograph: its violation is the booted world's, drawn as booted.
    if (repro.ops.length === 0) found.before = found.after = previous;
  }
  return found;
}

export function explainRepro(repro: Repro, policies: Policies, oracles: readonly Oracle[]): string {
  return renderExplain({ repro, ...captureFailingStep(repro, policies, oracles, regionSnapshot) });
}

export interface ExplainedRepro {
  violation: Violation | undefined;
  oracleErrors: readonly OracleError[];
  text: string;
  before: RegionMap | undefined;
  after: RegionMap | undefined;
}

/** The policies that ran, named only where --host-policy/--guest-policy replaced the file's (explain's config line). */
export function policiesRan(policies: Policies, overrides: ReproOverrides): { host?: string; guest?: string } {
  return { ...(overrides.hostPolicy !== undefined ? { host: policies.host.name } : {}), ...(overrides.guestPolicy !== undefined ? { guest: policies.guest.name } : {}) };
}

/** explain's text and the region as maps, from one pair of runs (the HTML report). */
export function explainWithMaps(repro: Repro, policies: Policies, oracles: readonly Oracle[], overrides: ReproOverrides = {}): ExplainedRepro {
  const found = captureFailingStep(repro, policies, oracles, (view, where): { rows: RegionRow[]; map: RegionMap } => ({
    rows: regionSnapshot(view, where),
    map: regionMap(view, where),
  }));
  const text = renderExplain({ repro, actual: found.actual, violation: found.violation, oracleErrors: found.oracleErrors, atBoot: found.atBoot, step: found.step, before: found.before?.rows, after: found.after?.rows, ran: policiesRan(policies, overrides) });
  return { violation: found.violation, oracleErrors: found.oracleErrors, text, before: found.before?.map, after: found.after?.map };
}
