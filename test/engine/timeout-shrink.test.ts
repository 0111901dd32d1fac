// The shrink of a timed-out case (timeout-shrink.ts), against a stub worker pool: which budget it
// shrinks under, what it keeps, and when it gives up. The spawned-worker end-to-end runs are in
// test/cli-timeout.test.ts; there a hang that no candidate reproduces in time falls back to the
// case cut at the op in flight, so only this test can tell the watchdog-alone shrink worked.

import { describe, expect, it } from 'vitest';
import type { CaseOutcome, CampaignJob } from '../../src/engine/case-job.ts';
import { shrinkTimeout, timeoutShrinkBudget } from '../../src/engine/timeout-shrink.ts';
import { type TaskFailure, type TaskResult, watchdogViolation } from '../../src/engine/watchdog.ts';
import type { WorkerPool } from '../../src/engine/worker-pool.ts';
import type { WorkerTask } from '../../src/engine/worker.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import type { Case, Op } from '../../src/ops/types.ts';

const config = defaultConfig({});
const job: CampaignJob = { config, seed: 's', generate: { steps: 8 }, oracleFiles: [], onlyOracles: [], minimizeBudget: 200, shard: { index: 0, count: 1 } };
const filler: Op[] = [{ op: 'host_sync' }, { op: 'touch', gpa: 0x1000, write: true }];
// Op 4 is the split whose hook hung.
const testCase: Case = { config, seed: 's', ops: [...filler, ...filler, { op: 'host_split', gpa: 0x200000 }, ...filler] };

/** A pool of one stub worker: a candidate holding a host_split "hangs" there, as `hang` says. */
function stubPool(hang: (task: WorkerTask & { kind: 'case' }, at: number) => TaskResult): { pool: WorkerPool; tasks: WorkerTask[] } {
  const tasks: WorkerTask[] = [];
  const worker = {
    run: (task: WorkerTask): Promise<TaskResult> => {
      tasks.push(task);
      if (task.kind !== 'case') throw new Error('only case tasks');
      const at = task.testCase?.ops.findIndex((op) => op.op === 'host_split') ?? -1;
      const clean: CaseOutcome = { index: task.index, seed: 's', ops: 0, stepsRun: 0, oracleErrors: [], hits: 0, behaviours: [] };
      return Promise.resolve(at < 0 ? { ok: true, message: { outcome: clean } } : hang(task, at));
    },
  };
  const pool = { take: () => Promise.resolve(worker), give: () => undefined } as unknown as WorkerPool;
  return { pool, tasks };
}

const stoppedIn = (made: TaskFailure['made']): TaskFailure => ({ kind: 'timeout', op: 4, hook: 'host split', made, message: 'case timed out after 2 s' });

describe('timeout shrink', () => {
  it('a hook that made no more calls than the finished ops is shrunk under the watchdog alone, to its one op', async () => {
    const failure = stoppedIn({ calls: 12, callsBeforeOp: 10, maxOpCalls: 3 });
    expect(timeoutShrinkBudget(failure, job, testCase.config)).toBeUndefined();
    const { pool, tasks } = stubPool((_, at) => ({ ok: false, failure: { kind: 'timeout', op: at, hook: 'host split', message: 'timed out' } }));
    const shrunk = await shrinkTimeout({ job, pool, testCase, failure, violation: watchdogViolation(failure, true), index: 7, caseTimeoutMs: 1000 });
    expect(shrunk?.repro.ops).toEqual([{ op: 'host_split', gpa: 0x200000 }]);
    expect(shrunk?.violation).toMatchObject({ oracle: 'policy-error', step: 0, details: { shrunk: 'watchdog', hook: 'host split' } });
    expect(shrunk?.violation.message).toMatch(/shrunk under the watchdog alone .*: stopped by the watchdog again in op 0$/);
    // Every candidate ran under the job's own budget: no per-op budget to tell a loop without calls.
    expect(tasks.every((t) => t.kind === 'case' && t.callBudget?.op === undefined && t.index === 7)).toBe(true);
  });

  it('a hook that ran away in primitive calls is shrunk under a per-op call budget, a deterministic verdict', async () => {
    const failure = stoppedIn({ calls: 90_000, callsBeforeOp: 10, maxOpCalls: 3 });
    const budget = timeoutShrinkBudget(failure, job, testCase.config);
    expect(budget?.op).toBeGreaterThan(3);
    const { pool, tasks } = stubPool((task, at) => {
      const outcome: CaseOutcome = {
        index: task.index,
        seed: 's',
        ops: task.testCase?.ops.length ?? 0,
        stepsRun: at + 1,
        oracleErrors: [],
        hits: 1,
        behaviours: [],
        violation: { oracle: 'policy-error', severity: 'correctness', step: at, message: 'step budget exceeded', details: { callBudget: task.callBudget?.op, hook: 'host split' } },
      };
      return { ok: true, message: { outcome } };
    });
    const shrunk = await shrinkTimeout({ job, pool, testCase, failure, violation: watchdogViolation(failure, true), index: 7, caseTimeoutMs: 1000 });
    expect(shrunk?.repro.ops).toEqual([{ op: 'host_split', gpa: 0x200000 }]);
    expect(shrunk?.violation.details).toMatchObject({ shrunk: `call budget ${budget?.op} per op` });
    expect(tasks.every((t) => t.kind === 'case' && t.callBudget?.op === budget?.op)).toBe(true);
  });

  it('gives up (the caller shows the cut case) when not even the case cut at the op in flight hangs again', async () => {
    const failure = stoppedIn({ calls: 12, callsBeforeOp: 10, maxOpCalls: 3 });
    const { pool, tasks } = stubPool(() => ({ ok: true, message: { outcome: { index: 7, seed: 's', ops: 0, stepsRun: 0, oracleErrors: [], hits: 0, behaviours: [] } } }));
    expect(await shrinkTimeout({ job, pool, testCase, failure, violation: watchdogViolation(failure, true), index: 7, caseTimeoutMs: 1000 })).toBeUndefined();
    // Only the cut case was tried: ops 0..4.
    expect(tasks).toHaveLength(1);
    expect(tasks[0]?.kind === 'case' && tasks[0].testCase?.ops.length).toBe(5);
  });

  it('a hang in another hook or another kind of op does not count as reproducing it', async () => {
    const failure = stoppedIn({ calls: 12, callsBeforeOp: 10, maxOpCalls: 3 });
    const { pool } = stubPool((_, at) => ({ ok: false, failure: { kind: 'timeout', op: at, hook: 'guest convert', message: 'timed out' } }));
    expect(await shrinkTimeout({ job, pool, testCase, failure, violation: watchdogViolation(failure, true), index: 7, caseTimeoutMs: 1000 })).toBeUndefined();
  });
});
