// Runs one case: a fresh world, every op through its actor, every oracle after every step. The
// run depends only on the case (config, seed, ops) and the plugins, never on time or process.

import type { Finding, Oracle, Step, View, Violation } from '../api.ts';
import { OP_SPECS } from '../ops/schema.ts';
import type { Case } from '../ops/types.ts';
import type { GuestPolicy, HostPolicy } from '../policies/types.ts';
import { computeMetrics, type Metrics } from './metrics.ts';
import { PolicyError, createWorld } from './world.ts';

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

function collect(oracle: Oracle, findings: readonly Finding[] | undefined | void, step: number, out: Violation[]): void {
  if (!findings) return;
  for (const finding of findings) {
    out.push({ oracle: oracle.name, severity: oracle.severity, step, message: finding.message, ...(finding.details ? { details: finding.details } : {}) });
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function runCase(testCase: Case, policies: Policies, options: RunOptions): RunResult {
  const violations: Violation[] = [];
  const oracleErrors: OracleError[] = [];
  const oracles = options.oracles;
  const disabled = new Set<string>();
  const world = createWorld(testCase.config, policies, testCase.seed);
  let stepsRun = 0;
  options.onStart?.(world);

  const runOracles = (index: number, step: Step | undefined): void => {
    for (const oracle of oracles) {
      if (disabled.has(oracle.name)) continue;
      try {
        const sweep = oracle.final && (!step || options.fullCheck);
        if (step && !(sweep && options.fullCheck)) collect(oracle, oracle.check(world, step), index, violations);
        if (sweep) collect(oracle, oracle.final?.(world), index, violations);
      } catch (error) {
        // One error per oracle is enough: a broken oracle would otherwise repeat on every step.
        disabled.add(oracle.name);
        oracleErrors.push({ oracle: oracle.name, step: index, message: describe(error) });
      }
    }
  };

  for (let index = 0; index < testCase.ops.length; index++) {
    const op = testCase.ops[index]!;
    stepsRun = index + 1;
    let step: Step;
    try {
      step = world.apply(op, index);
    } catch (error) {
      if (!(error instanceof PolicyError)) throw error;
      violations.push({ oracle: POLICY_ERROR, severity: 'correctness', step: index, message: error.message, details: { policy: error.policy } });
      break;
    }
    const before = violations.length;
    runOracles(index, step);
    options.onStep?.(step, world, violations.slice(before));
    if (violations.length > 0 && !options.allViolations) break;
  }
  if (violations.length === 0 || options.allViolations) {
    const last = Math.max(0, stepsRun - 1);
    if (!options.fullCheck || testCase.ops.length === 0) runOracles(last, undefined);
  }
  return { verdict: violations.length > 0 ? 'violation' : 'clean', violations, oracleErrors, stepsRun, metrics: computeMetrics(world) };
}

/**
 * The bucket a violation belongs to: the oracle, which actor's op exposed it (guest, device, host
 * or adversary) and which tables disagreed. State invariants fire after whichever guest op first
 * makes the disagreement visible (an accept, a touch, a tdi_accept), so the actor rather than the
 * exact op kind keeps one planted bug in one bucket, whatever addresses the case happened to use.
 */
export function signature(testCase: Case, violation: Violation): string {
  const op = violation.step >= 0 ? testCase.ops[violation.step] : undefined;
  const actor = op ? OP_SPECS[op.op].actor : 'final';
  const sizes = violation.details?.sizes;
  const tables = sizes ? Object.keys(sizes).filter((key) => sizes[key as keyof typeof sizes] !== undefined).sort().join('+') : '';
  return `${violation.oracle}|${actor}|${tables}`;
}
