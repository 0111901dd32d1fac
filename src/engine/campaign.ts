// The fuzz loop: cases by index (within this shard), run in-process or on worker threads,
// reported strictly in index order so that output and findings do not depend on the worker count
// or on timing. Findings are deduplicated by signature, one repro file per bucket, written
// atomically the moment the bucket is first seen: an interrupted campaign loses nothing.

import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Violation } from '../api.ts';
import { FormatError } from '../ops/errors.ts';
import { type Repro, readRepro, writeRepro } from '../repro/format.ts';
import {
  type CampaignJob,
  type CaseOutcome,
  type CaseRunner,
  campaignCase,
  clipTitle,
  globalIndex,
  jobCallBudget,
  loadsPlugins,
  prepareRunner,
  reproFor,
  runCampaignCase,
  shrinkToRepro,
} from './case-job.ts';
import type { Case } from '../ops/types.ts';
import type { Guide } from './guided.ts';
import { MetricsTotal } from './metrics.ts';
import { type OracleError, POLICY_ERROR } from './run.ts';
import { DEFAULT_CASE_TIMEOUT_MS, type TaskFailure, type WatchedWorker, watchdogViolation } from './watchdog.ts';
import { WorkerPool } from './worker-pool.ts';
import { shrinkTimeout } from './timeout-shrink.ts';

export interface Bucket {
  signature: string;
  oracle: string;
  /** The violations of its failing cases (several oracles may fire at one step). */
  hits: number;
  /** The global case number of its first failing case (what `--case` takes; with --shard i/n, i + n x this shard's case number). */
  firstCase: number;
  violation: Violation;
  repro: Repro;
  shrunkFrom: number;
  file?: string;
  /** Saving the repro file failed (disk full, directory gone): the finding is still reported. */
  writeError?: string;
  /** The corpus file whose replay failed (then `firstCase` numbers the replayed files). */
  replayOf?: string;
  /** The file already held this bucket's repro (from an earlier run): it was left as it was. */
  kept?: boolean;
}

/** An oracle that threw, reported once per oracle per campaign with the first case it threw on. */
export interface CampaignOracleError extends OracleError {
  /** The global case number (what `--case` takes), or the place in the replay of the corpus file `replayOf`. */
  case: number;
  replayOf?: string;
  repro: Repro;
  file?: string;
  writeError?: string;
  kept?: boolean;
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
  /**
   * Directory for repro files, created when the first bucket is written. A file already there for
   * the same bucket is kept (an earlier night's repro stays the one people link to).
   */
  out?: string;
  /**
   * Wall-clock budget of one case on a worker (watchdog.ts). Campaigns that load plugin files
   * always run on workers; in-process campaigns (`runner`, vitest) rely on the step budget.
   */
  caseTimeoutMs?: number;
  /**
   * Stop once this many buckets are known: at the lowest case index that completes the N-th
   * bucket. Cases are recorded in index order and later ones are dropped, so the result is the
   * same for any worker count.
   */
  maxFindings?: number;
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
  /** Failing cases. */
  findings: number;
  /** Violations in failing cases (several oracles may fire at one step). */
  hits: number;
  /** Distinct behaviours exercised (op kind x primitive x result, faults): see case-job.ts. */
  coverage: Set<string>;
  /** Samples for the report's plots: one when coverage or the bucket count grows, and the last. */
  timeline: TimelinePoint[];
  buckets: Map<string, Bucket>;
  oracleErrors: CampaignOracleError[];
  /** Mean efficiency over the cases run (DOMAIN.md: measured, not judged). */
  metrics: MetricsTotal;
  startedAt: number;
  /** Corpus files replayed first. */
  replayed: number;
}

export interface TimelinePoint {
  cases: number;
  elapsedMs: number;
  /** campaignCoverage(): the summary's figure, as it stood then. */
  coverage: number;
  buckets: number;
  findings: number;
}

/**
 * The campaign's coverage figure, one measure wherever it is shown (status line, progress lines,
 * timeline, summary): the features the guide reached in a coverage-guided campaign (the corpus
 * replay included), else the behaviours exercised.
 */
export function campaignCoverage(stats: Pick<CampaignStats, 'coverage'>, guide: Pick<Guide, 'coverage'> | undefined): number {
  return guide ? guide.coverage : stats.coverage.size;
}

/** A file name from an oracle name a plugin chose: nothing that could leave the directory. */
const fileSafe = (name: string): string => name.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 80);

/** `<oracle>-<hash of the signature>.json`, as libFuzzer names `crash-<hash>`. */
export const bucketFile = (bucket: Pick<Bucket, 'oracle' | 'signature'>): string =>
  `${fileSafe(bucket.oracle)}-${createHash('sha256').update(bucket.signature).digest('hex').slice(0, 10)}.json`;

/** The case up to and including op `step`: what a verdict that cannot be re-run is shown with. */
function truncatedRepro(job: CampaignJob, testCase: Case, violation: Violation): Repro {
  return reproFor({ ...testCase, ops: testCase.ops.slice(0, violation.step + 1) }, violation, job.oracleFiles);
}

/**
 * Writes a repro into `out`, creating the directory at the first finding; a repro file already
 * there (the same bucket from an earlier run, maybe triaged by hand) is kept as it is. A failure
 * is returned as text instead of thrown, so nothing found is lost.
 */
function save(out: string, name: string, repro: Repro): { file: string; writeError?: string; kept?: boolean } {
  const file = join(out, name);
  try {
    mkdirSync(out, { recursive: true });
    // Kept: a file (or a link to one) that reads as this bucket's repro, expecting its oracle's
    // violation or nothing (a triaged copy). Anything else under the name is a write error, so the
    // new repro is printed rather than lost; a link to something else is replaced, never written
    // through (writeRepro renames over it).
    // readRepro() reads regular files only (through a link): a directory, a FIFO, a dangling link
    // or a loop is no repro. A link to anything but this bucket's repro is replaced.
    const entry = lstatSync(file, { throwIfNoEntry: false });
    if (entry !== undefined && isReproOf(file, repro)) return { file, kept: true };
    if (entry !== undefined && !entry.isSymbolicLink()) return { file, writeError: `${file} is there and is not this bucket's repro: not written over` };
    writeRepro(file, repro);
    return { file };
  } catch (error) {
    return { file, writeError: error instanceof Error ? error.message : String(error) };
  }
}

/** Does `file` read as a repro of the finding `repro` records (its expected oracle, or no expectation)? */
function isReproOf(file: string, repro: Repro): boolean {
  let existing: Repro;
  try {
    existing = readRepro(file);
  } catch (error) {
    if (error instanceof FormatError) return false;
    throw error;
  }
  const oracle = repro.expect?.verdict === 'violation' ? repro.expect.oracle : undefined;
  return existing.expect === undefined || (existing.expect.verdict === 'violation' && existing.expect.oracle === oracle);
}

export async function runCampaign(options: CampaignOptions): Promise<CampaignStats> {
  const stats: CampaignStats = {
    cases: 0,
    ops: 0,
    findings: 0,
    hits: 0,
    coverage: new Set(),
    timeline: [],
    buckets: new Map(),
    oracleErrors: [],
    metrics: new MetricsTotal(),
    startedAt: Date.now(),
    replayed: 0,
  };
  const job = options.job;

  // Plugin code never runs on the main thread of a CLI campaign: cases and shrinking go to
  // watched workers, so a hook that hangs costs one case, not the campaign.
  const isolated = options.runner === undefined && loadsPlugins(job);
  // The warm pool starts the campaign's workers before the main thread prepares its own runner,
  // so both start-ups overlap; every phase and every shrink on a worker reuses them.
  const onWorkers = isolated || options.workers > 1;
  const pool = onWorkers ? new WorkerPool(job, Math.max(1, options.workers)) : undefined;
  try {
    return await campaignWith(options, stats, isolated, pool);
  } finally {
    pool?.close();
  }
}

async function campaignWith(options: CampaignOptions, stats: CampaignStats, isolated: boolean, pool: WorkerPool | undefined): Promise<CampaignStats> {
  const deadline = options.timeMs === undefined ? Number.POSITIVE_INFINITY : stats.startedAt + options.timeMs;
  const limit = options.runs ?? Number.POSITIVE_INFINITY;
  const enough = (): boolean => options.maxFindings !== undefined && stats.buckets.size >= options.maxFindings;
  const mayDispatch = (next: number): boolean => next < limit && Date.now() < deadline && !options.shouldStop?.() && !enough();
  const job = options.job;
  const caseTimeoutMs = options.caseTimeoutMs ?? DEFAULT_CASE_TIMEOUT_MS;
  const workerPool = (): WorkerPool => {
    if (pool === undefined) throw new Error('internal: a campaign on workers without its worker pool');
    return pool;
  };
  const sample = (): void => {
    const point = { cases: stats.cases, elapsedMs: Date.now() - stats.startedAt, coverage: campaignCoverage(stats, options.guide), buckets: stats.buckets.size, findings: stats.findings };
    const last = stats.timeline.at(-1);
    if (last && last.coverage === point.coverage && last.buckets === point.buckets) stats.timeline[stats.timeline.length - 1] = { ...point };
    else stats.timeline.push(point);
  };
  const runner = options.runner ?? (isolated ? undefined : await prepareRunner(job));

  // The main thread shrinks the first case of each new bucket, in index order (on a worker when
  // plugins are involved): later hits of a known bucket cost nothing more, and which case a
  // bucket's repro comes from never depends on which worker finished first.
  // Cases the campaign derived itself (corpus replay, coverage-guided), by index until recorded;
  // the others are a pure function of the index (campaignCase).
  const derived = new Map<number, Case>();
  const caseOf = (index: number): Case => derived.get(index) ?? campaignCase(job, index);
  let replaying = (options.replay?.length ?? 0) > 0;
  const shrink = async (outcome: CaseOutcome, violation: Violation): Promise<{ repro: Repro; violation: Violation }> => {
    const index = outcome.index;
    const testCase = caseOf(index);
    if (violation.details?.nondeterministic !== undefined) {
      // A timeout shrinks by a primitive-call budget (timeout-shrink.ts); other watchdog verdicts
      // (exit, out of memory, asynchronous errors) and a hang no candidate reproduces are shown cut
      // at the op in flight.
      const failure = outcome.stopped;
      const shrunk =
        failure?.kind === 'timeout' && failure.oracle === undefined
          ? await shrinkTimeout({ job, pool: workerPool(), testCase, failure, violation, index, caseTimeoutMs, ...(options.shouldStop ? { shouldStop: options.shouldStop } : {}) })
          : undefined;
      return shrunk ?? { repro: truncatedRepro(job, testCase, violation), violation };
    }
    if (runner) return shrinkToRepro(testCase, violation, runner, job.minimizeBudget, job.oracleFiles, jobCallBudget(job, testCase.config));
    const worker = await workerPool().take();
    try {
      const result = await worker.run({ kind: 'shrink', index, violation, ...(derived.has(index) ? { testCase } : {}) }, caseTimeoutMs * 10);
      const shrunk = result.ok ? (result.message.shrunk as { repro: Repro; violation: Violation } | undefined) : undefined;
      return shrunk ?? { repro: truncatedRepro(job, testCase, violation), violation };
    } finally {
      workerPool().give(worker);
    }
  };

  // Guided rounds: a case of round r is derived only once every case before r's start is recorded.
  let recorded = 0;
  let waiters: { count: number; resolve: () => void }[] = [];
  const release = (all = false): void => {
    waiters = waiters.filter((w) => (all || recorded >= w.count ? (w.resolve(), false) : true));
  };
  /** Whether case `index` must wait for the guided round before it to be recorded. */
  const waits = (index: number): boolean => !replaying && options.guide !== undefined && recorded < options.guide.roundStart(index);
  const caseFor = async (index: number): Promise<Case | undefined> => {
    if (replaying) {
      const testCase = options.replay?.[index]?.testCase;
      if (testCase) derived.set(index, testCase);
      return testCase;
    }
    const guide = options.guide;
    if (!guide) return undefined;
    if (waits(index)) await new Promise<void>((resolve) => waiters.push({ count: guide.roundStart(index), resolve }));
    const testCase = guide.caseFor(index);
    derived.set(index, testCase);
    return testCase;
  };

  const record = async (outcome: CaseOutcome): Promise<void> => {
    // The case itself only when something is kept of it (an oracle error's repro, the guide): a
    // case the worker generated from its index would otherwise be generated again here, on the
    // thread every worker's outcome goes through (50 us a case, 2.1% of that thread's time with
    // two workers; bench/README.md "Worker scaling").
    const testCase = (): Case => caseOf(outcome.index);
    // Past the case (or corpus replay) that completed the N-th bucket: in flight on another
    // worker, dropped (and counted as recorded, so no guided round waits for it).
    if (enough()) {
      derived.delete(outcome.index);
      if (!replaying) {
        recorded++;
        release();
      }
      return;
    }
    if (replaying) stats.replayed++;
    else {
      stats.cases++;
      stats.ops += outcome.stepsRun;
      if (outcome.metrics) stats.metrics.add(outcome.metrics);
    }
    const coverageBefore = campaignCoverage(stats, options.guide);
    for (const behaviour of outcome.behaviours) stats.coverage.add(behaviour);
    const bucketsBefore = stats.buckets.size;
    for (const error of outcome.oracleErrors) {
      if (stats.oracleErrors.some((known) => known.oracle === error.oracle)) continue;
      const erring = testCase();
      const repro: Repro = {
        title: clipTitle(`oracle error: ${error.oracle} threw: ${error.message}`),
        config: erring.config,
        seed: erring.seed,
        ops: erring.ops.slice(0, error.step + 1),
        ...(job.oracleFiles.length > 0 ? { oracles: [...job.oracleFiles] } : {}),
      };
      const entry: CampaignOracleError = { ...error, case: replaying ? outcome.index : globalIndex(job.shard, outcome.index), ...(replaying ? { replayOf: options.replay?.[outcome.index]?.file ?? '' } : {}), repro };
      if (options.out) Object.assign(entry, save(options.out, `oracle-error-${fileSafe(error.oracle)}.json`, repro));
      stats.oracleErrors.push(entry);
      options.onOracleError?.(entry);
    }
    if (outcome.violation && outcome.signature) {
      stats.findings++;
      stats.hits += outcome.hits;
      const known = stats.buckets.get(outcome.signature);
      // A bucket's hits are the violations of its failing cases, as the summary's `hits` counts
      // them (README: perBucket is signature -> hits), not its failing cases.
      if (known) known.hits += outcome.hits;
      else {
        const shrunk = await shrink(outcome, outcome.violation);
        const bucket: Bucket = {
          signature: outcome.signature,
          oracle: outcome.violation.oracle,
          hits: outcome.hits,
          firstCase: replaying ? outcome.index : globalIndex(job.shard, outcome.index),
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
      if (replaying) guide.addReplayed(testCase(), outcome.features, options.replay?.[outcome.index]?.file ?? '', !outcome.violation && outcome.oracleErrors.length === 0, outcome.featureSteps);
      else guide.observe(testCase(), outcome.features, !outcome.violation && outcome.oracleErrors.length === 0, outcome.featureSteps, outcome.index);
    }
    derived.delete(outcome.index);
    if (!replaying) {
      recorded++;
      release();
      if (campaignCoverage(stats, options.guide) !== coverageBefore || stats.buckets.size !== bucketsBefore || stats.cases === 1) sample();
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
    await runOnWorkers(options, workerPool(), caseTimeoutMs, mayRun, waits, caseFor, caseOf, record, () => release(true));
  };
  if (replaying) {
    // Replays first (Hypothesis replays its database, libFuzzer its corpus), outside --runs.
    const count = options.replay?.length ?? 0;
    await phase((next) => next < count && !options.shouldStop?.() && !enough());
    replaying = false;
  }
  await phase(mayDispatch);
  sample();
  return stats;
}

/** How long an interrupted campaign waits for the cases in flight before abandoning them. */
const STOP_GRACE_MS = 2000;

/** The outcome of a case its worker could not finish: a policy-error at the op in flight. */
function failedOutcome(testCase: Case, index: number, failure: TaskFailure, userCode: boolean): CaseOutcome {
  const stepsRun = Math.max(0, failure.op + 1);
  if (failure.oracle !== undefined) {
    // Stopped inside an oracle: that oracle's error (reported once, with this case), not a finding.
    const message = `stopped by the watchdog inside the oracle: ${failure.message} (not deterministic)`;
    return { index, seed: testCase.seed, ops: testCase.ops.length, stepsRun, oracleErrors: [{ oracle: failure.oracle, step: Math.max(0, failure.op), message }], hits: 0, behaviours: [], stopped: failure };
  }
  const violation = watchdogViolation(failure, userCode);
  return {
    index,
    seed: testCase.seed,
    ops: testCase.ops.length,
    stepsRun,
    violation,
    signature: `${POLICY_ERROR}|watchdog ${failure.kind}|`,
    oracleErrors: [],
    hits: 1,
    behaviours: [],
    stopped: failure,
  };
}

/**
 * Cases a worker holds at once: one running, one waiting in its message queue, so that it starts
 * the next case as soon as it answers the last instead of waiting for the main thread to record
 * that one and send another. On two busy cores the main thread got the CPU late: a worker of a
 * 2-worker campaign was idle 7-8% of the time (bench/README.md, "Worker scaling").
 */
const PIPELINE = 2;

async function runOnWorkers(
  options: CampaignOptions,
  pool: WorkerPool,
  caseTimeoutMs: number,
  mayDispatch: (next: number) => boolean,
  /** Whether caseFor(index) would wait for a guided round to be recorded. */
  waits: (index: number) => boolean,
  caseFor: (index: number) => Promise<Case | undefined>,
  caseOf: (index: number) => Case,
  record: (outcome: CaseOutcome) => Promise<void>,
  /** Wakes slots waiting for a round to finish (stopping: the round may never finish). */
  releaseWaiting: () => void,
): Promise<void> {
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

  // Cases a lost worker held without starting them (the one ahead of them failed): they run again
  // before any new index, on whichever slot has a worker first. Every dispatched index must be
  // recorded, or recording (and a guided round) would wait for it forever.
  const again: { index: number; testCase: Case | undefined }[] = [];
  const slot = async (): Promise<void> => {
    let worker = await pool.take();
    const running = new Set<Promise<void>>();
    let stopping = false;
    const launch = (index: number, testCase: Case | undefined, on: WatchedWorker): void => {
      busy.add(on);
      const task = on.run({ kind: 'case', index, ...(testCase ? { testCase } : {}) }, caseTimeoutMs).then((result) => {
        running.delete(task);
        if (on.inFlight === 0) busy.delete(on);
        if (result.ok) {
          if (result.message.outcome) deliver(result.message.outcome as CaseOutcome);
          else failure ??= new Error(`case ${index}: ${String(result.message.error)}`);
        } else if ('requeue' in result) again.push({ index, testCase });
        else if (result.failure.kind === 'abandoned') stopping = true;
        // The worker is gone: report the case; the slot goes on with a fresh worker.
        else deliver(failedOutcome(caseOf(index), index, result.failure, loadsPlugins(options.job)));
      });
      running.add(task);
    };
    try {
      for (;;) {
        while (running.size < PIPELINE && worker.alive && !stopping && !failure) {
          const retry = again.shift();
          if (retry) {
            launch(retry.index, retry.testCase, worker);
            continue;
          }
          // A case of the next guided round waits until this one is recorded: not while this
          // worker still holds cases (a lost worker's cases must be free to run again).
          if (!mayDispatch(nextToDispatch) || (running.size > 0 && waits(nextToDispatch))) break;
          const index = nextToDispatch++;
          const testCase = await caseFor(index);
          if (options.shouldStop?.() || failure) stopping = true;
          else launch(index, testCase, worker);
        }
        if (running.size > 0) await Promise.race(running);
        else if (!worker.alive && !stopping && !failure && !options.shouldStop?.() && (again.length > 0 || mayDispatch(nextToDispatch))) {
          pool.give(worker);
          try {
            worker = await pool.take();
          } catch (error) {
            // No worker can start: the campaign fails (cases waiting in `again` are not lost
            // silently: failure ends it, and wakes the slots waiting for a round).
            failure ??= error instanceof Error ? error : new Error(String(error));
            return;
          }
        } else break;
      }
    } finally {
      // A worker still holding cases (the slot ended on an error) is not handed to anyone else.
      if (worker.inFlight > 0) worker.close();
      pool.give(worker);
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
