// The fuzz loop: cases by index (within this shard), run in-process or on worker threads,
// reported strictly in index order so that output and findings do not depend on the worker count
// or on timing. Findings are deduplicated by signature, one repro file per bucket, written
// atomically the moment the bucket is first seen: an interrupted campaign loses nothing.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Violation } from '../api.ts';
import { type Repro, writeRepro } from '../repro/format.ts';
import {
  type CampaignJob,
  type CaseOutcome,
  type CaseRunner,
  campaignCase,
  prepareRunner,
  runCampaignCase,
  shrinkToRepro,
} from './case-job.ts';
import { MetricsTotal } from './metrics.ts';
import type { OracleError } from './run.ts';

export interface Bucket {
  signature: string;
  oracle: string;
  hits: number;
  firstCase: number;
  violation: Violation;
  repro: Repro;
  shrunkFrom: number;
  file?: string;
  /** The file already held this bucket's repro (from an earlier run): it was left as it was. */
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
   * Stop once this many buckets are known: at the lowest case index that completes the N-th
   * bucket. Cases are recorded in index order and later ones are dropped, so the result is the
   * same for any worker count.
   */
  maxFindings?: number;
  /** Called for each case in index order. */
  onCase?: (outcome: CaseOutcome, stats: CampaignStats) => void;
  /** Called when a bucket is first seen (after its file is written). */
  onBucket?: (bucket: Bucket) => void;
  /** Polled between dispatches: true stops the campaign (Ctrl-C). */
  shouldStop?: () => boolean;
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
  oracleErrors: OracleError[];
  /** Mean efficiency over the cases run (DOMAIN.md: measured, not judged). */
  metrics: MetricsTotal;
  startedAt: number;
}

export interface TimelinePoint {
  cases: number;
  elapsedMs: number;
  coverage: number;
  buckets: number;
  findings: number;
}

export const bucketFile = (bucket: Pick<Bucket, 'oracle' | 'signature'>): string =>
  `${bucket.oracle}-${createHash('sha256').update(bucket.signature).digest('hex').slice(0, 10)}.json`;

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
  };
  const deadline = options.timeMs === undefined ? Number.POSITIVE_INFINITY : stats.startedAt + options.timeMs;
  const limit = options.runs ?? Number.POSITIVE_INFINITY;
  const enough = (): boolean => options.maxFindings !== undefined && stats.buckets.size >= options.maxFindings;
  const mayDispatch = (next: number): boolean => next < limit && Date.now() < deadline && !options.shouldStop?.() && !enough();
  const sample = (): void => {
    const point = { cases: stats.cases, elapsedMs: Date.now() - stats.startedAt, coverage: stats.coverage.size, buckets: stats.buckets.size, findings: stats.findings };
    const last = stats.timeline.at(-1);
    if (last && last.coverage === point.coverage && last.buckets === point.buckets) stats.timeline[stats.timeline.length - 1] = { ...point };
    else stats.timeline.push(point);
  };

  // The main thread shrinks the first case of each new bucket, in index order: later hits of a
  // known bucket cost nothing more, and which case a bucket's repro comes from never depends on
  // which worker finished first.
  const runner = options.runner ?? (await prepareRunner(options.job));
  const record = (outcome: CaseOutcome): void => {
    // Past the case that completed the N-th bucket: in flight on another worker, dropped.
    if (enough()) return;
    stats.cases++;
    stats.ops += outcome.stepsRun;
    stats.oracleErrors.push(...outcome.oracleErrors);
    stats.metrics.add(outcome.metrics);
    const coverageBefore = stats.coverage.size;
    for (const behaviour of outcome.behaviours) stats.coverage.add(behaviour);
    const bucketsBefore = stats.buckets.size;
    if (outcome.violation && outcome.signature) {
      stats.findings++;
      stats.hits += outcome.hits;
      const known = stats.buckets.get(outcome.signature);
      if (known) known.hits++;
      else {
        const shrunk = shrinkToRepro(campaignCase(options.job, outcome.index), outcome.violation, runner, options.job.minimizeBudget);
        const bucket: Bucket = {
          signature: outcome.signature,
          oracle: outcome.violation.oracle,
          hits: 1,
          firstCase: outcome.index,
          violation: shrunk.violation,
          // The repro names the user oracle files it was checked with: replay loads them too.
          repro: options.job.oracleFiles.length > 0 ? { ...shrunk.repro, oracles: [...options.job.oracleFiles] } : shrunk.repro,
          shrunkFrom: outcome.ops,
        };
        if (options.out) {
          bucket.file = join(options.out, bucketFile(bucket));
          mkdirSync(options.out, { recursive: true });
          if (existsSync(bucket.file)) bucket.kept = true;
          else writeRepro(bucket.file, bucket.repro);
        }
        stats.buckets.set(bucket.signature, bucket);
        options.onBucket?.(bucket);
      }
    }
    if (stats.coverage.size !== coverageBefore || stats.buckets.size !== bucketsBefore || stats.cases === 1) sample();
    options.onCase?.(outcome, stats);
  };

  if (options.workers <= 1) {
    for (let index = 0; mayDispatch(index); index++) {
      record(runCampaignCase(options.job, runner, index));
      // Let signals and timers through between cases.
      if (index % 16 === 15) await new Promise((resolve) => setImmediate(resolve));
    }
  } else await runOnWorkers(options, mayDispatch, record);
  sample();
  return stats;
}

async function runOnWorkers(
  options: CampaignOptions,
  mayDispatch: (next: number) => boolean,
  record: (outcome: CaseOutcome) => void,
): Promise<void> {
  const done = new Map<number, CaseOutcome>();
  let nextToDispatch = 0;
  let nextToRecord = 0;
  let failure: Error | undefined;
  // Compiled (dist/), the worker is plain JavaScript; from the sources (vitest, bin/run-ts.js) a
  // bootstrap registers tsx in the thread first.
  const url = import.meta.url.endsWith('.ts') ? new URL('./worker-bootstrap.js', import.meta.url) : new URL('./worker.js', import.meta.url);

  await new Promise<void>((resolve) => {
    let live = options.workers;
    const finish = (worker: Worker): void => {
      worker.postMessage(null);
      void worker.terminate();
      if (--live === 0) resolve();
    };
    const feed = (worker: Worker): void => {
      if (failure || !mayDispatch(nextToDispatch)) finish(worker);
      else worker.postMessage(nextToDispatch++);
    };
    for (let w = 0; w < options.workers; w++) {
      const worker = new Worker(url, { workerData: options.job });
      worker.on('message', (message: { ready?: boolean; outcome?: CaseOutcome; index?: number; error?: string }) => {
        if (message.outcome) {
          done.set(message.outcome.index, message.outcome);
          // Record strictly in index order, whichever worker finished first.
          for (let next = done.get(nextToRecord); next; next = done.get(nextToRecord)) {
            done.delete(nextToRecord++);
            record(next);
          }
        } else if (message.error !== undefined) {
          failure ??= new Error(`case ${message.index ?? '?'}: ${message.error}`);
        }
        if (message.ready || message.outcome || message.error !== undefined) feed(worker);
      });
      worker.on('error', (error) => {
        failure ??= error;
        if (--live === 0) resolve();
      });
    }
  });
  if (failure) throw failure;
}
