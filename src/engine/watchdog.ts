// A campaign worker under a watchdog (issue 14, items 14-16). A user plugin is code we do not
// control: a synchronous endless loop in a hook, process.exit(), or unbounded allocation would
// hang or end the whole campaign if it ran on the main thread. Campaigns that load plugins run
// every case on a worker thread (with --workers 1 too); the watchdog gives each task a wall-clock
// budget (--case-timeout) and a heap limit, terminates a worker that exceeds either or dies, and
// says which op was in flight (from a counter the worker writes into shared memory) so the
// campaign can report a `policy-error` with a repro and carry on with a fresh worker.
//
// Wall clock is the one thing in a campaign that is not deterministic: a verdict from the
// watchdog is labelled so (`details.nondeterministic`). The worker also publishes the primitive
// calls the case made and the policy hook running, so a timeout can be shrunk by a call budget
// instead of by wall clock (timeout-shrink.ts).

import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Violation } from '../api.ts';
import { POLICY_HOOKS } from './call-budget.ts';
import type { CampaignJob } from './case-job.ts';
import { POLICY_ERROR } from './run.ts';
import type { WorkerTask } from './worker.ts';

/** Default per-case wall-clock budget: generous, a case of 64 ops takes milliseconds. */
export const DEFAULT_CASE_TIMEOUT_MS = 60_000;
/** Heap limit of one worker: a 1 TiB guest needs far less; a runaway hook finds the ceiling. */
export const WORKER_HEAP_MB = 512;
/**
 * The limit where the machine has room for it. V8 lets an old generation grow by up to 4x between
 * major GCs only when its limit is at least 1024 MB x kHeapLimitMultiplier, 2 GiB on 64-bit Node
 * (v8/src/heap/heap-controller.h, BaseControllerTrait::kMaxSize), and by 1.1-2x below that: a
 * 512 MB worker saw about 13 non-scavenge GC events a second (PerformanceObserver: mark-compacts
 * and incremental marking), and a 2-worker campaign made 10-26% fewer cases/s than with 2 GiB
 * (1 GiB: no better than 512 MB).
 */
export const ROOMY_WORKER_HEAP_MB = 2048;

/**
 * The heap limit of each of `workers` workers: 2 GiB while all of them together (a runaway hook in
 * each fills its limit before it is stopped) stay within half the memory the process may use (the
 * machine's, or its container's limit), else 512 MB.
 */
export function workerHeapMb(workers: number, totalBytes = machineMemory()): number {
  // One more than the campaign's workers: a shrink takes a worker of its own, and a dead worker's
  // heap is not yet free when its replacement starts.
  return (workers + 1) * ROOMY_WORKER_HEAP_MB * 2 ** 20 <= totalBytes / 2 ? ROOMY_WORKER_HEAP_MB : WORKER_HEAP_MB;
}

/** The memory this process may use: the machine's, or its cgroup's limit if lower (a container). */
function machineMemory(): number {
  const constrained = process.constrainedMemory?.() ?? 0;
  return constrained > 0 ? Math.min(os.totalmem(), constrained) : os.totalmem();
}

export type TaskFailureKind = 'timeout' | 'exit' | 'memory' | 'crash' | 'abandoned';

/** The worker's shared memory, one Int32 slot each: written by the worker, read by the watchdog. */
export const PROGRESS = {
  /** The op in flight (-1: the world boots). */
  op: 0,
  /** The oracle running: its index + 1, 0 for none. */
  oracle: 1,
  /** The policy hook running: its POLICY_HOOKS number, 0 for none. */
  hook: 2,
  /** Primitive calls the case made so far (after boot), as of the last charged call. */
  calls: 3,
  /** Calls the ops before the one in flight made. */
  callsBeforeOp: 4,
  /** Most calls one finished op made. */
  maxOpCalls: 5,
  /**
   * The number of the task running (1, 2, ... in the order posted): a timer that fires after the
   * worker went on to the next queued task belongs to a task that finished, whose answer is on
   * its way, and the other slots already describe the next one. Keep it last: the worker resets
   * the slots before it with one fill.
   */
  task: 6,
} as const;
const PROGRESS_SLOTS = Object.keys(PROGRESS).length;

/** What the case had done when its worker was stopped (PROGRESS). */
export interface CallsAtStop {
  calls: number;
  callsBeforeOp: number;
  maxOpCalls: number;
}

export interface TaskFailure {
  kind: TaskFailureKind;
  /** The op in flight when the worker was stopped (-1: while the world booted). */
  op: number;
  /** The oracle that was running then, if one was (its check or final sweep did not return). */
  oracle?: string;
  /** The policy hook that was running then (`host split`), if one was. */
  hook?: string;
  /** The primitive calls the case had made. */
  made?: CallsAtStop;
  message: string;
}

/**
 * A task's answer: the worker's message, the failure that stopped it, or `requeue` for a task that
 * was waiting behind the one that failed and never started.
 */
export type TaskResult = { ok: true; message: Record<string, unknown> } | { ok: false; failure: TaskFailure } | { ok: false; requeue: true };

// Compiled, the worker is dist/bundle/worker.js beside the chunks it shares with the CLI and with
// `cocofuzz/api` (scripts/bundle.js): a plugin loaded in the thread gets the engine the thread runs.
// From the sources (vitest, bin/run-ts.js) a bootstrap registers tsx in the thread first.
const FROM_SOURCES = import.meta.url.endsWith('.ts');
const WORKER_URL = FROM_SOURCES ? new URL('./worker-bootstrap.js', import.meta.url) : new URL('./worker.js', import.meta.url);
// A thread inherits its process's flags. The compiled worker resolves the package's own imports
// (cocofuzz/api in the built-in oracles) to dist/ whatever the parent was started with: a process
// that runs the sources (--conditions=cocofuzz-source, bench/startup.ts) and starts a compiled
// worker would otherwise hand it .ts files it cannot load without tsx.
const WORKER_EXEC_ARGV = FROM_SOURCES ? undefined : withoutSourceCondition(process.execArgv);

/** `flags` without the cocofuzz-source export condition, however it is spelled (test/helpers/cli.ts too). */
export function withoutSourceCondition(flags: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < flags.length; i++) {
    const flag = flags[i] ?? '';
    if (flag === '--conditions=cocofuzz-source' || flag === '-C=cocofuzz-source') continue;
    if ((flag === '--conditions' || flag === '-C') && flags[i + 1] === 'cocofuzz-source') {
      i++;
      continue;
    }
    kept.push(flag);
  }
  return kept;
}

export class WatchedWorker {
  private readonly worker: Worker;
  /** Written by the worker (PROGRESS). */
  private readonly progress = new Int32Array(new SharedArrayBuffer(4 * PROGRESS_SLOTS));
  private oracleNames: readonly string[] = [];
  /**
   * Tasks posted and not yet answered, in order: the worker runs them one after another, so the
   * first is the one running and the only one whose wall clock is watched (its timer starts when
   * it comes first). The others wait in the worker's message queue.
   */
  private readonly queue: { task: number; timeoutMs: number; resolve: (result: TaskResult) => void; timer?: ReturnType<typeof setTimeout> }[] = [];
  /** Tasks posted so far: the worker numbers them the same way (PROGRESS.task). */
  private posted = 0;
  private dead = false;
  /** Resolves once the worker loaded its plugins; rejects if it could not. */
  readonly ready: Promise<void>;

  constructor(job: CampaignJob, heapMb = WORKER_HEAP_MB) {
    this.worker = new Worker(WORKER_URL, {
      workerData: { job, progress: this.progress.buffer },
      ...(WORKER_EXEC_ARGV ? { execArgv: WORKER_EXEC_ARGV } : {}),
      resourceLimits: { maxOldGenerationSizeMb: heapMb },
      stdout: false,
      stderr: false,
    });
    this.ready = new Promise<void>((resolve, reject) => {
      this.worker.once('message', (message: { ready?: boolean; oracles?: string[] }) => {
        if (!message.ready) return reject(new Error('worker did not start'));
        this.oracleNames = message.oracles ?? [];
        resolve();
      });
      this.worker.once('error', reject);
      this.worker.once('exit', (code) => reject(new Error(`the worker exited (code ${code}) before it was ready`)));
    });
    // A worker that never got ready is the campaign's problem (ready rejects), not a case's.
    this.ready.catch(() => undefined);
    this.worker.on('message', (message: Record<string, unknown>) => {
      if (message.ready) return;
      this.settle({ ok: true, message });
    });
    this.worker.on('error', (error: Error & { code?: string }) => {
      const memory = error.code === 'ERR_WORKER_OUT_OF_MEMORY';
      this.fail(memory ? 'memory' : 'crash', memory ? `the worker ran out of memory (heap limit ${heapMb} MB)` : `the worker crashed: ${error.message.split('\n')[0]}`);
    });
    this.worker.on('exit', (code) => this.fail('exit', `the worker exited (code ${code})`));
  }

  /** False once the worker was closed, stopped by the watchdog or died: it takes no more tasks. */
  get alive(): boolean {
    return !this.dead;
  }

  /**
   * Runs one task; a task that outlives `timeoutMs` of wall clock has its worker terminated. Tasks
   * may be posted before the previous one answered (runOnWorkers keeps two in flight, so the
   * worker starts the next case without waiting for the main thread): a task still waiting when
   * its worker is stopped or dies never ran, and answers `{ ok: false, requeue: true }`.
   */
  run(task: WorkerTask, timeoutMs: number): Promise<TaskResult> {
    if (this.dead) return Promise.resolve({ ok: false, failure: { kind: 'exit', op: -1, message: 'the worker is gone' } });
    return new Promise<TaskResult>((resolve) => {
      this.queue.push({ task: ++this.posted, timeoutMs, resolve });
      if (this.queue.length === 1) this.watchFirst();
      this.worker.postMessage(task);
    });
  }

  /** Tasks posted and not yet answered. */
  get inFlight(): number {
    return this.queue.length;
  }

  /** Stop the task in flight (the campaign was interrupted): it reports `abandoned`. */
  abandon(): void {
    if (this.queue.length > 0) this.fail('abandoned', 'abandoned when the campaign was stopped');
  }

  /** Ends the worker; tasks it still held never finished and answer `requeue`. */
  close(): void {
    if (this.dead) return;
    this.dead = true;
    this.worker.postMessage(null);
    void this.worker.terminate();
    this.requeueAll();
  }

  /** The tasks still held never finished (or never started): they answer `requeue`. */
  private requeueAll(): void {
    for (const waiting of this.queue.splice(0)) {
      clearTimeout(waiting.timer);
      waiting.resolve({ ok: false, requeue: true });
    }
  }

  /** Starts the wall clock of the task now first in line (the worker is running it). */
  private watchFirst(): void {
    const first = this.queue[0];
    if (first === undefined) return;
    const expire = (): void => {
      // The worker already started a later task: this one finished just now and its answer is
      // on its way (the progress slots describe the next task, not this one).
      if (Atomics.load(this.progress, PROGRESS.task) > first.task) first.timer = setTimeout(expire, first.timeoutMs);
      else this.fail('timeout', `no result after ${formatMs(first.timeoutMs)} of wall clock`);
    };
    first.timer = setTimeout(expire, first.timeoutMs);
  }

  private settle(result: TaskResult): void {
    const first = this.queue.shift();
    if (first === undefined) return;
    clearTimeout(first.timer);
    first.resolve(result);
    if (!this.dead) this.watchFirst();
  }

  private fail(kind: TaskFailureKind, message: string): void {
    const slot = (name: keyof typeof PROGRESS): number => Atomics.load(this.progress, PROGRESS[name]);
    const op = slot('op');
    const oracle = this.oracleNames[slot('oracle') - 1];
    const hook = POLICY_HOOKS[slot('hook') - 1];
    const failure: TaskFailure = {
      kind,
      op,
      ...(oracle === undefined ? {} : { oracle }),
      ...(hook === undefined ? {} : { hook }),
      made: { calls: slot('calls'), callsBeforeOp: slot('callsBeforeOp'), maxOpCalls: slot('maxOpCalls') },
      message,
    };
    if (!this.dead) {
      this.dead = true;
      void this.worker.terminate();
    }
    this.settle({ ok: false, failure });
    // The tasks behind it never started: they run again on another worker.
    this.requeueAll();
  }
}

export function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** Why a case of built-in policies and oracles alone was stopped, by the kind of stop. */
const BUILT_IN_CAUSE: Record<TaskFailureKind, string> = {
  memory: 'no plugin is loaded: the world of this config is too large for the worker; a smaller swiotlb or guestMemory, or host page sizes above 4K, need less',
  timeout: 'no plugin is loaded: a large config (guestMemory, swiotlb) may need more than --case-timeout; else a built-in that never returns is a cocofuzz bug, please report it',
  exit: 'no plugin is loaded: a cocofuzz bug, please report it',
  crash: 'no plugin is loaded: a cocofuzz bug, please report it',
  abandoned: 'no plugin is loaded: the campaign was stopping',
};

/**
 * The policy-error a watchdog verdict becomes: labelled not deterministic, at the op in flight.
 * `userCode`: whether the job loads plugins; without any, no plugin is to blame, and a world that
 * outgrew the worker's heap is the config's size (a 1 TiB guest with a 64G pool under kvm-4k).
 */
export function watchdogViolation(failure: TaskFailure, userCode: boolean): Violation {
  const where =
    failure.op < 0 ? 'while the world booted' : failure.hook !== undefined ? `in op ${failure.op}, in hook ${failure.hook}` : `in op ${failure.op} (its hooks or the oracles after it)`;
  const calls = failure.made === undefined || failure.op < 0 ? '' : `, after ${failure.made.calls} primitive calls`;
  return {
    oracle: POLICY_ERROR,
    severity: 'correctness',
    step: Math.max(0, failure.op),
    // "Not deterministic" first: a repro's title is the message's first 160 characters.
    message: `not deterministic (a watchdog verdict): the case was stopped ${where}${calls}: ${failure.message} (${userCode ? 'a plugin that never returns, exits or allocates without bound' : BUILT_IN_CAUSE[failure.kind]})`,
    details: { nondeterministic: `watchdog: ${failure.kind}`, ...(failure.hook === undefined ? {} : { hook: failure.hook }) },
  };
}
