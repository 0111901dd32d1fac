// Runs one case: a fresh world (booted, or a copy of its config and policies' booted world:
// boot-cache.ts), every op through its actor, every oracle after every step. The run depends only
// on the case (config, seed, ops) and the plugins, never on time or process.

import type { Finding, Oracle, Step, View, Violation } from '../api.ts';
import type { Case } from '../ops/types.ts';
import type { GuestPolicy, HostPolicy } from '../policies/types.ts';
import { checkFindings } from './finding-check.ts';
import { computeMetrics, type Metrics } from './metrics.ts';
import { worldFor } from './arch.ts';
import { type CallBudget, CallMeter, type CallWatch, defaultCallBudget } from './call-budget.ts';
import { PolicyError } from './world.ts';

export const POLICY_ERROR = 'policy-error';

export interface Policies {
  host: HostPolicy;
  guest: GuestPolicy;
}

export interface RunOptions {
  oracles: readonly Oracle[];
  /**
   * Run every oracle's full sweep after every step instead of its incremental check (oracles
   * without a sweep still check incrementally). Tests compare the two verdicts.
   */
  fullCheck?: boolean;
  /** Keep going after the first violation and report them all. */
  allViolations?: boolean;
  /** Called once the fresh world is built, before the first op (explain's "before" picture). */
  onStart?: (view: View) => void;
  /** Called after each step (replay --trace). */
  onStep?: (step: Step, view: View, violations: readonly Violation[]) => void;
  /**
   * The case's primitive-call budget (call-budget.ts; default DEFAULT_CALL_BUDGET for the case and
   * the world's step budget per op). Past it the case ends with a deterministic policy-error.
   */
  callBudget?: CallBudget;
  /** Told the calls made and the hook running as the case goes (a worker's shared memory). */
  callWatch?: CallWatch;
  /**
   * Restore the world from a template booted once per (config, policies) in this thread
   * (boot-cache.ts; default true). False boots this case's world itself, as tests compare.
   */
  bootCache?: boolean;
}

/** An oracle that threw: reported with the case, never counted as a violation or a crash. */
export interface OracleError {
  oracle: string;
  step: number;
  message: string;
}

export interface RunResult {
  verdict: 'clean' | 'violation';
  violations: Violation[];
  oracleErrors: OracleError[];
  /** Ops applied (the failing step included). */
  stepsRun: number;
  metrics: Metrics;
}

function collect(oracle: Oracle, returned: readonly Finding[] | undefined | void, step: number, out: Violation[]): void {
  // Nothing found (the common case): no copy to make.
  if (returned === undefined || (Array.isArray(returned) && returned.length === 0)) return;
  for (const finding of checkFindings(returned)) {
    out.push({ oracle: oracle.name, severity: oracle.severity, step, message: finding.message, ...(finding.details ? { details: finding.details } : {}) });
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** What onStep gets for a step that found nothing (frozen: a listener may keep it). */
const NO_VIOLATIONS: readonly Violation[] = Object.freeze([]);

export function runCase(testCase: Case, policies: Policies, options: RunOptions): RunResult {
  const violations: Violation[] = [];
  const oracleErrors: OracleError[] = [];
  const oracles = options.oracles;
  const disabled = new Set<string>();
  const world = worldFor(testCase.config, policies, testCase.seed, new CallMeter(options.callBudget ?? { case: defaultCallBudget(testCase.config) }, options.callWatch), options.bootCache ?? true);
  let stepsRun = 0;
  options.onStart?.(world);

  const fail = (oracle: Oracle, step: number, error: unknown): void => {
    // One error per oracle is enough: a broken oracle would otherwise repeat on every step.
    disabled.add(oracle.name);
    oracleErrors.push({ oracle: oracle.name, step, message: describe(error) });
  };

  // Each oracle takes its starting state from the booted world (Oracle.boot). What it finds there
  // is reported with the first step, where the first check's sweep used to find it.
  let bootFindings: Map<Oracle, readonly Finding[] | undefined | void> | undefined;
  for (const oracle of oracles) {
    if (oracle.boot === undefined) continue;
    try {
      const found = oracle.boot(world);
      if (found !== undefined && found.length > 0) (bootFindings ??= new Map()).set(oracle, found);
    } catch (error) {
      fail(oracle, 0, error);
    }
  }

  /** `step` undefined: the end of the case, where every oracle sweeps unless its check covers it. */
  const runOracles = (index: number, step: Step | undefined): void => {
    for (const oracle of oracles) {
      if (disabled.size > 0 && disabled.has(oracle.name)) continue;
      try {
        if (bootFindings?.has(oracle) === true) collect(oracle, bootFindings.get(oracle), index, violations);
        if (step === undefined) {
          // The end-of-case sweep: skipped where the check provably finds everything it would
          // (test/oracles/sweep-coverage.test.ts), unless the case already has findings.
          if (oracle.checkCoversFinal === true && violations.length === 0 && stepsRun > 0) continue;
          collect(oracle, oracle.final?.(world), index, violations);
        } else if (options.fullCheck && oracle.final) {
          collect(oracle, oracle.final(world), index, violations);
        } else {
          collect(oracle, oracle.check(world, step), index, violations);
        }
      } catch (error) {
        fail(oracle, index, error);
      }
    }
    bootFindings = undefined;
  };

  for (let index = 0; index < testCase.ops.length; index++) {
    const op = testCase.ops[index]!;
    stepsRun = index + 1;
    let step: Step;
    try {
      step = world.apply(op, index);
    } catch (error) {
      if (!(error instanceof PolicyError)) throw error;
      const budget = error.overBudget;
      const details = budget === undefined ? { policy: error.policy } : { policy: error.policy, callBudget: budget.budget, ...(budget.hook === undefined ? {} : { hook: budget.hook }) };
      violations.push({ oracle: POLICY_ERROR, severity: 'correctness', step: index, message: error.message, details });
      break;
    }
    const before = violations.length;
    runOracles(index, step);
    // Most steps find nothing: the shared empty list then, not a fresh one per step.
    options.onStep?.(step, world, violations.length === before ? NO_VIOLATIONS : violations.slice(before));
    if (violations.length > 0 && !options.allViolations) break;
  }
  if (violations.length === 0 || options.allViolations) {
    const last = Math.max(0, stepsRun - 1);
    if (!options.fullCheck || testCase.ops.length === 0) runOracles(last, undefined);
  }
  return { verdict: violations.length > 0 ? 'violation' : 'clean', violations, oracleErrors, stepsRun, metrics: computeMetrics(world) };
}

/**
 * A policy-error's rule: the policy and the hook at fault (`lazy-cut host io`, the hook a spent call
 * budget names, or the hook whose return value was refused: `mine pageSize`), so that a throw in
 * one hook and a runaway loop in another are two buckets, not one `policy-error||` hiding the
 * second. The message's free text stays out, as addresses stay out of other rules.
 */
function policyErrorRule(violation: Violation): string {
  const policy = typeof violation.details?.policy === 'string' ? violation.details.policy : '';
  const budgetHook = typeof violation.details?.hook === 'string' ? violation.details.hook : undefined;
  const hook = budgetHook ?? /\bin hook (\w+ \w+)/.exec(violation.message)?.[1] ?? /\b(\w+) returned\b/.exec(violation.message)?.[1];
  const budget = violation.details?.callBudget !== undefined ? 'call budget' : '';
  return [policy, budget, hook].filter((part) => part !== undefined && part !== '').join(' ');
}

/** A size on one table, as the check that failed saw it: below 2M is "4K", 2M or more is "2M". */
function sizeClass(value: unknown): string {
  if (typeof value === 'number') return value >= 2 * 1024 * 1024 ? '2M' : '4K';
  return String(value);
}

/** A rule about sizes (a size mismatch, a leaf larger than the entry beneath it, a 2M leaf over 4K). */
const SIZE_RULE = /size|larger|over/i;

/**
 * The bucket a violation belongs to: the oracle, the rule it names (the "FAIL (...)" of its
 * message, numbers blanked) and, when that rule is about page sizes, the size class the check saw
 * on each table (`io-s2-rmp-size|size mismatch|checked=4K,rmp=2M,s2=4K`). S2[4K] over RMP[2M] and
 * S2[2M] over RMP[4K] stay apart: they are different bugs. Everything else is incidental and left
 * out: the op kind and the actor (a state invariant fires after whichever op first exposes it),
 * addresses, and the sizes of tables a rule is not about (whether an NPT leaf happened to be
 * present next to a stale IO mapping, the RMP size under a page converted in the wrong order), so
 * one planted bug gives one bucket whatever the case did around it.
 */
export function signature(_testCase: Case, violation: Violation): string {
  const rule = /FAIL \(([^)]*)\)/.exec(violation.message)?.[1]?.replace(/0x[0-9a-f]+|\d+/gi, '#') ?? (violation.oracle === POLICY_ERROR ? policyErrorRule(violation) : '');
  const sizes = SIZE_RULE.test(rule) ? (violation.details?.sizes ?? {}) : {};
  const parts = Object.entries(sizes)
    .filter(([, value]) => value !== undefined)
    .map(([table, value]) => `${table}=${sizeClass(value)}`)
    .sort();
  return `${violation.oracle}|${rule}|${parts.join(',')}`;
}
