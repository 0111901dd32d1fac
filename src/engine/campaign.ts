// The fuzz loop: cases by index (within this shard), run in-process or on worker threads,
// reported strictly in index order so that output and findings do not depend on the worker count
// or on timing. Findings are deduplicated by signature, one repro file per bucket, written
// atomically the moment the bucket is first seen: an interrupted campaign loses nothing.

import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Violation } from '../api.ts';
import { type Repro, writeRepro } from '../repro/format.ts';
import {
  type CampaignJob,
  type CaseOutcome,
  type CaseRunner,
  campaignCase,
  loadsPlugins,
  prepareRunner,
  reproTitle,
  runCampaignCase,
  shrinkToRepro,
} from './case-job.ts';
import type { Case } from '../ops/types.ts';
import type { Guide } from './guided.ts';
import { MetricsTotal } from './metrics.ts';
import { type OracleError, POLICY_ERROR } from './run.ts';
import { DEFAULT_CASE_TIMEOUT_MS, type TaskFailure, WatchedWorker, watchdogViolation } from './watchdog.ts';

export interface Bucket {
  signature: string;
  oracle: string;
  hits: number;
  firstCase: number;
  violation: Violation;
  repro: Repro;
  shrunkFrom: number;
  file?: string;
  /** Saving the repro file failed (disk full, directory gone): the finding is still reported. */
  writeError?: string;
  /** The corpus file whose replay failed (then `firstCase` numbers the replayed files). */
  replayOf?: string;
}

/** An oracle that threw, reported once per oracle per campaign with the first case it threw on. */
export interface CampaignOracleError extends OracleError {
  case: number;
  repro: Repro;
  file?: string;
  writeError?: string;
}

export interface CampaignOptions {
  job: CampaignJob;
  /** Stop after this many cases of this shard. */
  runs?: number;
  /** Stop dispatching after this many milliseconds. */
  timeMs?: number;
  workers: number;
  /** In-process runs only: use these policies and oracles instead of loading the job's. */
  runner?: CaseRunner;
  out?: string;
  /**
   * Wall-clock budget of one case on a worker (watchdog.ts). Campaigns that load plugin files
   * always run on workers; in-process campaigns (`runner`, vitest) rely on the step budget.
   */
  caseTimeoutMs?: number;
  /** Called for each case in index order. */
  onCase?: (outcome: CaseOutcome, stats: CampaignStats) => void;
  /** Called when a bucket is first seen (after its file is written, or failed to be). */
  onBucket?: (bucket: Bucket) => void;
  /** Called the first time each oracle throws. */
  onOracleError?: (error: CampaignOracleError) => void;
  /** Polled between dispatches: true stops the campaign (Ctrl-C). */
  shouldStop?: () => boolean;
  /** Coverage-guided: cases derived from this corpus in rounds (guided.ts); needs `job.coverage`. */
  guide?: Guide;
  /**
   * Corpus files replayed before the first case (`--corpus DIR`), with the campaign's policies
   * and oracles: not counted in `cases` or `--runs`; one that fails is a finding.
   */
  replay?: readonly { file: string; testCase: Case }[];
}

export interface CampaignStats {
  cases: number;
  ops: number;
  findings: number;
  buckets: Map<string, Bucket>;
  oracleErrors: CampaignOracleError[];
  /** Mean efficiency over the cases run (DOMAIN.md: measured, not judged). */
  metrics: MetricsTotal;
  startedAt: number;
  /** Corpus files replayed first. */
  replayed: number;
}

/** A file name from an oracle name a plugin chose: nothing that could leave the directory. */
const fileSafe = (name: string): string => name.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 80);

const bucketFile = (bucket: Bucket): string =>
  `${fileSafe(bucket.oracle)}-${createHash('sha256').update(bucket.signature).digest('hex').slice(0, 10)}.json`;

/** The case up to and including op `step`: what a verdict that cannot be re-run is shown with. */
function truncatedRepro(job: CampaignJob, testCase: Case, violation: Violation): Repro {
  return {
    title: reproTitle(violation),
    config: testCase.config,
    seed: testCase.seed,
    ops: testCase.ops.slice(0, violation.step + 1),
    expect: { verdict: 'violation', oracle: violation.oracle, step: violation.step },
    ...(job.oracleFiles.length > 0 ? { oracles: [...job.oracleFiles] } : {}),
  };
}

/** Writes a repro into `out`; the error text instead of a throw, so nothing found is lost. */
function save(out: string, name: string, repro: Repro): { file: string; writeError?: string } {
  const file = join(out, name);
  try {
    writeRepro(file, repro);
    return { file };
  } catch (error) {
    return { file, writeError: error instanceof Error ? error.message : String(error) };
  }
}

export async function runCampaign(options: CampaignOptions): Promise<CampaignStats> {
  const stats: CampaignStats = { cases: 0, ops: 0, findings: 0, buckets: new Map(), oracleErrors: [], metrics: new MetricsTotal(), startedAt: Date.now(), replayed: 0 };
  if (options.out) mkdirSync(options.out, { recursive: true });
  const deadline = options.timeMs === undefined ? Number.POSITIVE_INFINITY : stats.startedAt + options.timeMs;
  const limit = options.runs ?? Number.POSITIVE_INFINITY;
  const mayDispatch = (next: number): boolean => next < limit && Date.now() < deadline && !options.shouldStop?.();
  const job = options.job;
  const caseTimeoutMs = options.caseTimeoutMs ?? DEFAULT_CASE_TIMEOUT_MS;

  // Plugin code never runs on the main thread of a CLI campaign: cases and shrinking go to
  // watched workers, so a hook that hangs costs one case, not the campaign.
  const isolated = options.runner === undefined && loadsPlugins(job);
  const runner = options.runner ?? (isolated ? undefined : await prepareRunner(job));

  // The main thread shrinks the first case of each new bucket, in index order (on a worker when
  // plugins are involved): later hits of a known bucket cost nothing more, and which case a
  // bucket's repro comes from never depends on which worker finished first.
  // Cases the campaign derived itself (corpus replay, coverage-guided), by index until recorded;
  // the others are a pure function of the index (campaignCase).
  const derived = new Map<number, Case>();
  const caseOf = (index: number): Case => derived.get(index) ?? campaignCase(job, index);
  let replaying = (options.replay?.length ?? 0) > 0;
  const shrink = async (index: number, violation: Violation): Promise<{ repro: Repro; violation: Violation }> => {
    const testCase = caseOf(index);
    if (violation.details?.nondeterministic !== undefined) return { repro: truncatedRepro(job, testCase, violation), violation };
    if (runner) return shrinkToRepro(testCase, violation, runner, job.minimizeBudget, job.oracleFiles);
    const worker = new WatchedWorker(job);
    try {
      await worker.ready;
      const result = await worker.run({ kind: 'shrink', index, violation, ...(derived.has(index) ? { testCase } : {}) }, caseTimeoutMs * 10);
      const shrunk = result.ok ? (result.message.shrunk as { repro: Repro; violation: Violation } | undefined) : undefined;
      return shrunk ?? { repro: truncatedRepro(job, testCase, violation), violation };
    } finally {
      worker.close();
    }
  };

  // Guided rounds: a case of round r is derived only once every case before r's start is recorded.
  let recorded = 0;
  let waiters: { count: number; resolve: () => void }[] = [];
  const release = (all = false): void => {
    waiters = waiters.filter((w) => (all || recorded >= w.count ? (w.resolve(), false) : true));
  };
  const caseFor = async (index: number): Promise<Case | undefined> => {
    if (replaying) {
      const testCase = options.replay?.[index]?.testCase;
      if (testCase) derived.set(index, testCase);
      return testCase;
    }
    const guide = options.guide;
    if (!guide) return undefined;
    const start = guide.roundStart(index);
    if (recorded < start) await new Promise<void>((resolve) => waiters.push({ count: start, resolve }));
    const testCase = guide.caseFor(index);
    derived.set(index, testCase);
    return testCase;
  };

  const record = async (outcome: CaseOutcome): Promise<void> => {
    const testCase = caseOf(outcome.index);
    if (replaying) stats.replayed++;
    else {
      stats.cases++;
      stats.ops += outcome.stepsRun;
      if (outcome.metrics) stats.metrics.add(outcome.metrics);
    }
    for (const error of outcome.oracleErrors) {
      if (stats.oracleErrors.some((known) => known.oracle === error.oracle)) continue;
      const repro: Repro = {
        title: `oracle error: ${error.oracle} threw: ${error.message}`.slice(0, 160),
        config: testCase.config,
        seed: testCase.seed,
        ops: testCase.ops.slice(0, error.step + 1),
        ...(job.oracleFiles.length > 0 ? { oracles: [...job.oracleFiles] } : {}),
      };
      const entry: CampaignOracleError = { ...error, case: outcome.index, repro };
      if (options.out) Object.assign(entry, save(options.out, `oracle-error-${fileSafe(error.oracle)}.json`, repro));
      stats.oracleErrors.push(entry);
      options.onOracleError?.(entry);
    }
    if (outcome.violation && outcome.signature) {
      stats.findings++;
      const known = stats.buckets.get(outcome.signature);
      if (known) known.hits++;
      else {
        const shrunk = await shrink(outcome.index, outcome.violation);
        const bucket: Bucket = {
          signature: outcome.signature,
          oracle: outcome.violation.oracle,
          hits: 1,
          firstCase: outcome.index,
          violation: shrunk.violation,
          repro: shrunk.repro,
          shrunkFrom: outcome.ops,
          ...(replaying ? { replayOf: options.replay?.[outcome.index]?.file ?? '' } : {}),
        };
        if (options.out) Object.assign(bucket, save(options.out, bucketFile(bucket), bucket.repro));
        stats.buckets.set(bucket.signature, bucket);
        options.onBucket?.(bucket);
      }
    }
    const guide = options.guide;
    if (guide && outcome.features) {
      if (replaying) guide.addReplayed(testCase, outcome.features, options.replay?.[outcome.index]?.file ?? '', !outcome.violation && outcome.oracleErrors.length === 0);
      else guide.observe(testCase, outcome.features, !outcome.violation && outcome.oracleErrors.length === 0);
    }
    derived.delete(outcome.index);
    if (!replaying) {
      recorded++;
      release();
      options.onCase?.(outcome, stats);
    }
  };

  const phase = async (mayRun: (next: number) => boolean): Promise<void> => {
    if (runner && options.workers <= 1) {
      for (let index = 0; mayRun(index); index++) {
        const testCase = await caseFor(index);
        await record(runCampaignCase(job, runner, index, undefined, testCase));
        // Let signals and timers through between cases.
        if (index % 16 === 15) await new Promise((resolve) => setImmediate(resolve));
      }
      return;
    }
    await runOnWorkers(options, caseTimeoutMs, mayRun, caseFor, caseOf, record, () => release(true));
  };
  if (replaying) {
    // Replays first (Hypothesis replays its database, libFuzzer its corpus), outside --runs.
    const count = options.replay?.length ?? 0;
    await phase((next) => next < count && !options.shouldStop?.());
    replaying = false;
  }
  await phase(mayDispatch);
  return stats;
}

/** How long an interrupted campaign waits for the cases in flight before abandoning them. */
const STOP_GRACE_MS = 2000;

/** The outcome of a case its worker could not finish: a policy-error at the op in flight. */
function failedOutcome(testCase: Case, index: number, failure: TaskFailure): CaseOutcome {
  const stepsRun = Math.max(0, failure.op + 1);
  if (failure.oracle !== undefined) {
    // Stopped inside an oracle: that oracle's error (reported once, with this case), not a finding.
    const message = `stopped by the watchdog inside the oracle: ${failure.message} (not deterministic)`;
    return { index, seed: testCase.seed, ops: testCase.ops.length, stepsRun, oracleErrors: [{ oracle: failure.oracle, step: Math.max(0, failure.op), message }] };
  }
  const violation = watchdogViolation(failure);
  return {
    index,
    seed: testCase.seed,
    ops: testCase.ops.length,
    stepsRun,
    violation,
    signature: `${POLICY_ERROR}|watchdog ${failure.kind}|`,
    oracleErrors: [],
  };
}

async function runOnWorkers(
  options: CampaignOptions,
  caseTimeoutMs: number,
  mayDispatch: (next: number) => boolean,
  caseFor: (index: number) => Promise<Case | undefined>,
  caseOf: (index: number) => Case,
  record: (outcome: CaseOutcome) => Promise<void>,
  /** Wakes slots waiting for a round to finish (stopping: the round may never finish). */
  releaseWaiting: () => void,
): Promise<void> {
  const job = options.job;
  const done = new Map<number, CaseOutcome>();
  let nextToDispatch = 0;
  let nextToRecord = 0;
  let failure: Error | undefined;
  let recording = Promise.resolve();

  // Record strictly in index order, whichever worker finished first; one record at a time.
  const deliver = (outcome: CaseOutcome): void => {
    done.set(outcome.index, outcome);
    recording = recording.then(async () => {
      for (let next = done.get(nextToRecord); next; next = done.get(nextToRecord)) {
        done.delete(nextToRecord++);
        await record(next);
      }
    });
  };
  const start = async (): Promise<WatchedWorker> => {
    const worker = new WatchedWorker(job);
    await worker.ready;
    return worker;
  };

  // Interrupted (Ctrl-C, SIGTERM): the cases in flight get a moment to finish; a case still
  // running after it (a hook that hangs) is abandoned, so the campaign can write what it found.
  const busy = new Set<WatchedWorker>();
  let stopSeen: number | undefined;
  const poll = setInterval(() => {
    if (!options.shouldStop?.()) return;
    stopSeen ??= Date.now();
    releaseWaiting();
    if (Date.now() - stopSeen >= STOP_GRACE_MS) for (const worker of busy) worker.abandon();
  }, 100);

  const slot = async (): Promise<void> => {
    let worker = await start();
    try {
      while (!failure && mayDispatch(nextToDispatch)) {
        const index = nextToDispatch++;
        const testCase = await caseFor(index);
        if (options.shouldStop?.() || failure) break;
        busy.add(worker);
        const result = await worker.run({ kind: 'case', index, ...(testCase ? { testCase } : {}) }, caseTimeoutMs);
        busy.delete(worker);
        if (!result.ok && result.failure.kind === 'abandoned') break;
        if (!result.ok) {
          // The worker is gone: report the case, start a fresh worker, carry on.
          deliver(failedOutcome(caseOf(index), index, result.failure));
          worker = await start();
        } else if (result.message.outcome) deliver(result.message.outcome as CaseOutcome);
        else failure ??= new Error(`case ${index}: ${String(result.message.error)}`);
      }
    } finally {
      worker.close();
    }
  };
  const slots = await Promise.allSettled(
    Array.from({ length: Math.max(1, options.workers) }, async () => {
      try {
        await slot();
      } finally {
        // A slot that ended (a failure) must not leave another waiting for a round it abandoned.
        if (failure) releaseWaiting();
      }
    }),
  );
  clearInterval(poll);
  await recording;
  const crashed = slots.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failure) throw failure;
  if (crashed) throw crashed.reason instanceof Error ? crashed.reason : new Error(String(crashed.reason));
}
