// Shrinking a case the watchdog stopped (issue 14, item 14). Re-running candidates and waiting
// for the wall clock again would make every shrink step depend on the machine's load. Instead the
// candidates run with a primitive-call budget per op derived from what the stopped case did: its
// ops that finished made at most `maxOpCalls` calls each, while the op that hung had made far
// more by the time it was stopped. A candidate reproduces when an op of the same kind (in the same
// policy hook, when one was running) makes more than a few times what the finished ops needed —
// a deterministic question, answered in a fraction of the timeout.
//
// A hook that loops without calling any primitive never spends a budget: then candidates are
// judged by the watchdog as the case was (stopped in the same op kind and hook reproduces), each
// with the case's wall-clock budget, the whole shrink with three of them. Either way the verdict
// stays labelled not deterministic, and a shrink that cannot reproduce the hang at all falls back
// to the case cut at the op in flight.

import type { Violation } from '../api.ts';
import type { Case, Config } from '../ops/types.ts';
import type { Repro } from '../repro/format.ts';
import type { CallBudget } from './call-budget.ts';
import { type CampaignJob, type CaseOutcome, jobCallBudget, reproFor } from './case-job.ts';
import { minimizeCaseAsync } from './minimize.ts';
import { POLICY_ERROR } from './run.ts';
import type { TaskFailure } from './watchdog.ts';
import type { WorkerPool } from './worker-pool.ts';

/** A candidate's op may make this many times what the stopped case's busiest finished op made. */
const TIMEOUT_SHRINK_MARGIN = 4;
/**
 * At least this many calls per op: well above what most built-in ops make (64 MiB guests), so a
 * case of short ops does not turn a merely long op of the same kind into a false reproduction.
 */
export const TIMEOUT_SHRINK_MIN_OP_CALLS = 1000;
/**
 * The whole shrink may take this many case timeouts of wall clock: with a call budget candidates
 * take a fraction of one; a hook that calls nothing costs a full timeout per candidate that hangs.
 */
const TIMEOUT_SHRINK_TIMEOUTS = 3;

/**
 * The per-op call budget a shrink of `failure` runs its candidates with, or undefined when the op
 * that hung made too few calls for one to tell (a loop without primitives, or a very slow one).
 */
export function timeoutShrinkBudget(failure: TaskFailure, job: Pick<CampaignJob, 'callBudget'>, config: Config): CallBudget | undefined {
  const made = failure.made;
  if (made === undefined || failure.op < 0) return undefined;
  const op = Math.max(TIMEOUT_SHRINK_MIN_OP_CALLS, TIMEOUT_SHRINK_MARGIN * made.maxOpCalls);
  const runaway = made.calls - made.callsBeforeOp;
  return runaway > op ? { ...jobCallBudget(job, config), op } : undefined;
}

export interface TimeoutShrinkOptions {
  job: CampaignJob;
  pool: WorkerPool;
  /** The case the watchdog stopped, its failure and the violation it was reported as. */
  testCase: Case;
  failure: TaskFailure;
  violation: Violation;
  /** Index of the case (the worker's task index). */
  index: number;
  caseTimeoutMs: number;
  /** Polled between candidates: true ends the shrink with what it has (Ctrl-C). */
  shouldStop?: () => boolean;
}

/** How a candidate reproduced the hang: its violation, at the op that ran away. */
interface Reproduced {
  ops: Case['ops'];
  step: number;
  how: string;
}

/**
 * Shrinks a timed-out case; undefined when not even the case cut at the op in flight reproduces
 * (the caller then shows that cut, as before).
 */
export async function shrinkTimeout(options: TimeoutShrinkOptions): Promise<{ repro: Repro; violation: Violation } | undefined> {
  const { job, pool, testCase, failure, caseTimeoutMs } = options;
  const kind = testCase.ops[failure.op]?.op;
  if (kind === undefined) return undefined;
  const callBudget = timeoutShrinkBudget(failure, job, testCase.config) ?? jobCallBudget(job, testCase.config);
  const deadline = Date.now() + TIMEOUT_SHRINK_TIMEOUTS * caseTimeoutMs;
  const sameHook = (hook: unknown): boolean => failure.hook === undefined || hook === failure.hook;
  let last: Reproduced | undefined;

  const reproduces = async (candidate: Case): Promise<boolean> => {
    if (Date.now() >= deadline || options.shouldStop?.() === true) return false;
    const worker = await pool.take();
    try {
      const result = await worker.run({ kind: 'case', index: options.index, testCase: candidate, callBudget }, caseTimeoutMs);
      let found: Reproduced | undefined;
      if (result.ok) {
        const violation = (result.message.outcome as CaseOutcome | undefined)?.violation;
        const details = violation?.details;
        if (violation?.oracle === POLICY_ERROR && details?.callBudget !== undefined && candidate.ops[violation.step]?.op === kind && sameHook(details.hook)) {
          found = { ops: candidate.ops, step: violation.step, how: violation.message };
        }
      } else if ('failure' in result && result.failure.kind === 'timeout' && result.failure.oracle === undefined && candidate.ops[result.failure.op]?.op === kind && sameHook(result.failure.hook)) {
        found = { ops: candidate.ops, step: result.failure.op, how: `stopped by the watchdog again in op ${result.failure.op}` };
      }
      if (found) last = found;
      return found !== undefined;
    } finally {
      pool.give(worker);
    }
  };

  const truncated: Case = { ...testCase, ops: testCase.ops.slice(0, failure.op + 1) };
  if (!(await reproduces(truncated))) return undefined;
  const { testCase: minimal } = await minimizeCaseAsync(truncated, reproduces, { budget: job.minimizeBudget });
  // The minimal case is the last one that reproduced (or the cut case itself).
  const shown = last !== undefined && last.ops === minimal.ops ? last : undefined;
  if (shown === undefined) return undefined;
  const budget = callBudget.op === undefined ? 'under the watchdog alone (the hook made too few primitive calls for a call budget)' : `with a budget of ${callBudget.op} primitive calls per op`;
  const violation: Violation = {
    ...options.violation,
    step: shown.step,
    message: `${options.violation.message}; shrunk ${budget}: ${shown.how}`,
    details: { ...options.violation.details, shrunk: callBudget.op === undefined ? 'watchdog' : `call budget ${callBudget.op} per op` },
  };
  // A watchdog violation's oracle is policy-error (watchdogViolation()).
  return { violation, repro: reproFor(minimal, violation, job.oracleFiles) };
}
