// A campaign worker under a watchdog (issue 14, items 14-16). A user plugin is code we do not
// control: a synchronous endless loop in a hook, process.exit(), or unbounded allocation would
// hang or end the whole campaign if it ran on the main thread. Campaigns that load plugins run
// every case on a worker thread (with --workers 1 too); the watchdog gives each task a wall-clock
// budget (--case-timeout) and a heap limit, terminates a worker that exceeds either or dies, and
// says which op was in flight (from a counter the worker writes into shared memory) so the
// campaign can report a `policy-error` with a repro and carry on with a fresh worker.
//
// Wall clock is the one thing in a campaign that is not deterministic: a verdict from the
// watchdog is labelled so (`details.nondeterministic`) and is never shrunk by re-running it.

import { Worker } from 'node:worker_threads';
import type { Violation } from '../api.ts';
import type { CampaignJob } from './case-job.ts';
import { POLICY_ERROR } from './run.ts';
import type { WorkerTask } from './worker.ts';

/** Default per-case wall-clock budget: generous, a case of 64 ops takes milliseconds. */
export const DEFAULT_CASE_TIMEOUT_MS = 60_000;
/** Heap limit of one worker: a 1 TiB guest needs far less; a runaway hook finds the ceiling. */
export const WORKER_HEAP_MB = 512;

export type TaskFailureKind = 'timeout' | 'exit' | 'memory' | 'crash' | 'abandoned';

export interface TaskFailure {
  kind: TaskFailureKind;
  /** The op in flight when the worker was stopped (-1: while the world booted). */
  op: number;
  /** The oracle that was running then, if one was (its check or final sweep did not return). */
  oracle?: string;
  message: string;
}

export type TaskResult = { ok: true; message: Record<string, unknown> } | { ok: false; failure: TaskFailure };

// Compiled (dist/), the worker is plain JavaScript; from the sources (vitest, bin/run-ts.js) a
// bootstrap registers tsx in the thread first.
const FROM_SOURCES = import.meta.url.endsWith('.ts');
const WORKER_URL = FROM_SOURCES ? new URL('./worker-bootstrap.js', import.meta.url) : new URL('./worker.js', import.meta.url);
// A thread inherits its process's flags. The compiled worker resolves the package's own imports
// (cocofuzz/api in the built-in oracles) to dist/ whatever the parent was started with: a process
// that runs the sources (--conditions=cocofuzz-source, bench/startup.ts) and starts a compiled
// worker would otherwise hand it .ts files it cannot load without tsx.
const WORKER_EXEC_ARGV = FROM_SOURCES ? undefined : withoutSourceCondition(process.execArgv);

function withoutSourceCondition(flags: readonly string[]): string[] {
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
  /** [op in flight, oracle running (index + 1, or 0)], written by the worker. */
  private readonly progress = new Int32Array(new SharedArrayBuffer(8));
  private oracleNames: readonly string[] = [];
  private pending: ((result: TaskResult) => void) | undefined;
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

  /** Runs one task; a task that outlives `timeoutMs` of wall clock has its worker terminated. */
  run(task: WorkerTask, timeoutMs: number): Promise<TaskResult> {
    if (this.dead) return Promise.resolve({ ok: false, failure: { kind: 'exit', op: -1, message: 'the worker is gone' } });
    return new Promise<TaskResult>((resolve) => {
      const timer = setTimeout(() => this.fail('timeout', `no result after ${formatMs(timeoutMs)} of wall clock`), timeoutMs);
      this.pending = (result) => {
        clearTimeout(timer);
        resolve(result);
      };
      Atomics.store(this.progress, 0, -1);
      Atomics.store(this.progress, 1, 0);
      this.worker.postMessage(task);
    });
  }

  /** Stop the task in flight (the campaign was interrupted): it reports `abandoned`. */
  abandon(): void {
    if (this.pending !== undefined) this.fail('abandoned', 'abandoned when the campaign was stopped');
  }

  close(): void {
    if (this.dead) return;
    this.dead = true;
    this.worker.postMessage(null);
    void this.worker.terminate();
  }

  private settle(result: TaskResult): void {
    const pending = this.pending;
    this.pending = undefined;
    pending?.(result);
  }

  private fail(kind: TaskFailureKind, message: string): void {
    const op = Atomics.load(this.progress, 0);
    const oracle = this.oracleNames[Atomics.load(this.progress, 1) - 1];
    const failure: TaskFailure = oracle === undefined ? { kind, op, message } : { kind, op, oracle, message };
    if (!this.dead) {
      this.dead = true;
      void this.worker.terminate();
    }
    this.settle({ ok: false, failure });
  }
}

export function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** The policy-error a watchdog verdict becomes: labelled not deterministic, at the op in flight. */
export function watchdogViolation(failure: TaskFailure): Violation {
  const where = failure.op < 0 ? 'while the world booted' : `in op ${failure.op} (its hooks or the oracles after it)`;
  return {
    oracle: POLICY_ERROR,
    severity: 'correctness',
    step: Math.max(0, failure.op),
    message: `the case was stopped ${where}: ${failure.message} (a plugin that never returns, exits or allocates without bound; a watchdog verdict, not deterministic)`,
    details: { nondeterministic: `watchdog: ${failure.kind}` },
  };
}
