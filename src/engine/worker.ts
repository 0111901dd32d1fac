// A campaign worker thread: prepares the runner once, then runs the tasks the main thread sends
// (a case by index, or shrinking a failing case), one message each way per task. It writes the op
// in flight, the oracle or policy hook running and the primitive calls made to shared memory
// (watchdog.ts PROGRESS), so the watchdog can say where a killed case hung and what it had done.

import { parentPort, workerData } from 'node:worker_threads';
import type { Oracle, View, Violation } from '../api.ts';
import type { CallBudget } from './call-budget.ts';
import { type CampaignJob, type CaseProgress, campaignCase, jobCallBudget, loadsPlugins, prepareRunner, runCampaignCase, shrinkToRepro } from './case-job.ts';
import { POLICY_ERROR } from './run.ts';
import { guardProcessExit } from './plugins.ts';
import { PROGRESS } from './watchdog.ts';
import type { Case } from '../ops/types.ts';

/**
 * `testCase`: the case itself when the campaign derived it (coverage-guided, corpus replay, a
 * shrink candidate); `callBudget`: instead of the job's (a candidate of a timed-out case).
 */
export type WorkerTask = { kind: 'case'; index: number; testCase?: Case; callBudget?: CallBudget } | { kind: 'shrink'; index: number; violation: Violation; testCase?: Case };

const { job, progress: progressBuffer } = workerData as { job: CampaignJob; progress: SharedArrayBuffer };
const progress = new Int32Array(progressBuffer);
const port = parentPort;
if (!port) throw new Error('worker.ts must run in a worker thread');

// The plugins load first, with Node's own handling: one that throws or exits while loading ends
// this thread, and the watchdog's `ready` rejects with why. (With the handlers below in place, a
// load error was swallowed as a stray and `ready` never settled; and Node's handler for an
// uncaught exception calls process.exit(), which the override below turns into a throw inside
// that handler, aborting the whole process.)
const prepared = await prepareRunner(job);

guardProcessExit();

// A plugin's promise that rejects or timer that throws, after its hook returned: caught here and
// charged to the case that was running (asynchronous, so flagged as not deterministic).
const strays: string[] = [];
const onStray = (error: unknown): void => {
  strays.push(error instanceof Error ? `${error.name}: ${error.message.split('\n')[0]}` : String(error));
};
process.on('unhandledRejection', onStray);
process.on('uncaughtException', onStray);

// Slot 1 of the shared counter says which oracle is running (index + 1, 0 for none): a case the
// watchdog stops inside an oracle is that oracle's error, not the policies'.
const watched = (oracle: Oracle, index: number): Oracle => {
  const inside = <T>(fn: () => T): T => {
    Atomics.store(progress, PROGRESS.oracle, index + 1);
    try {
      return fn();
    } finally {
      Atomics.store(progress, PROGRESS.oracle, 0);
    }
  };
  return {
    name: oracle.name,
    description: oracle.description,
    severity: oracle.severity,
    // Written out rather than through inside(): it runs after every step, and a closure per call
    // was 2% of a worker's time.
    check: (view, step) => {
      Atomics.store(progress, PROGRESS.oracle, index + 1);
      try {
        return oracle.check(view, step);
      } finally {
        Atomics.store(progress, PROGRESS.oracle, 0);
      }
    },
    ...(oracle.final ? { final: (view: View) => inside(() => oracle.final?.(view)) } : {}),
    ...(oracle.boot ? { boot: (view: View) => inside(() => oracle.boot?.(view)) } : {}),
    ...(oracle.checkCoversFinal !== undefined ? { checkCoversFinal: oracle.checkCoversFinal } : {}),
  };
};
const runner = { policies: prepared.policies, oracles: prepared.oracles.map(watched) };
// The op in flight, the calls made and the hook running, as the case goes (the case's CallMeter
// counts the calls; this publishes them where the watchdog reads them).
const caseProgress: CaseProgress = {
  op: (index) => {
    if (index <= 0) {
      Atomics.store(progress, PROGRESS.callsBeforeOp, 0);
      Atomics.store(progress, PROGRESS.maxOpCalls, 0);
    }
    Atomics.store(progress, PROGRESS.op, index);
  },
  opEnded: (calls, finished) => {
    Atomics.store(progress, PROGRESS.callsBeforeOp, finished);
    if (calls > Atomics.load(progress, PROGRESS.maxOpCalls)) Atomics.store(progress, PROGRESS.maxOpCalls, calls);
  },
  calls: (calls) => Atomics.store(progress, PROGRESS.calls, calls),
  hook: (hook) => Atomics.store(progress, PROGRESS.hook, hook),
};
// After a case: let the plugin's pending promises and due timers (setTimeout 0 is 1 ms) run, so a
// failure they cause is charged to this case rather than to the next one. Only user plugins can
// leave such work behind: with built-in policies and oracles the 2 ms wait would be a third of a
// typical case, idle.
const plugins = loadsPlugins(job);
const settle = (): Promise<void> => (plugins ? new Promise((resolve) => setTimeout(resolve, 2)) : Promise.resolve());

let taskNumber = 0;
/** One task: its answer is one message (the outcome, the shrunk repro, or an error). */
const runTask = async (task: WorkerTask): Promise<void> => {
  // A fresh record of what this task does, for the watchdog (the op slot -1: the world boots). The
  // task's number first: from then on the slots are this task's, not the last one's (it is the
  // last slot, so the fill below leaves it).
  Atomics.store(progress, PROGRESS.task, ++taskNumber);
  progress.fill(0, 0, PROGRESS.task);
  Atomics.store(progress, PROGRESS.op, -1);
  try {
    if (task.kind === 'shrink') {
      const testCase = task.testCase ?? campaignCase(job, task.index);
      const shrunk = shrinkToRepro(testCase, task.violation, runner, job.minimizeBudget, job.oracleFiles, jobCallBudget(job, testCase.config));
      port.postMessage({ shrunk });
      return;
    }
    strays.length = 0;
    const outcome = runCampaignCase(job, runner, task.index, caseProgress, task.testCase, task.callBudget);
    await settle();
    const stray = strays[0];
    if (stray !== undefined && !outcome.violation) {
      const step = Math.max(0, Atomics.load(progress, PROGRESS.op) - 1);
      outcome.violation = {
        oracle: POLICY_ERROR,
        severity: 'correctness',
        step,
        message: `a plugin failed outside its hook (a rejected promise or a timer that threw): ${stray}`,
        details: { nondeterministic: 'asynchronous plugin error' },
      };
      outcome.signature = `${POLICY_ERROR}|async|`;
      outcome.hits = 1;
    }
    port.postMessage({ outcome });
  } catch (error) {
    port.postMessage({ index: task.index, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
  }
};

// The main thread may post a task before this one answered the last (watchdog.ts): tasks run one
// after another, in order, each after the previous one settled its plugins' pending work.
let tasks = Promise.resolve();
port.on('message', (task: WorkerTask | null) => {
  if (task === null) {
    port.close();
    return;
  }
  tasks = tasks.then(() => runTask(task));
});
port.postMessage({ ready: true, oracles: runner.oracles.map((oracle) => oracle.name) });
