// Throughput of the engine on the fixed workload, measured alternately in one process against:
// - raw replay: the same pre-generated cases with no oracle (what the oracles cost);
// - the plain fast-check harness (baseline-fc.ts) on its own fc.commands workload, with fc's
//   size "max" (up to 64 commands a run, like the engine's cases) and with fc's default size;
// - the engine replaying the very ops the fc harness ran (same work, so the ratio to the fc
//   harness is the harness's own overhead, not a difference of op mix).
// Then worker scaling: cases/s of runCampaign with 1 worker (in-process, as the CLI runs it) and 2
// worker threads, on the same --runs or for the same wall-clock time, from dist/ as users run it
// (run.ts) or from the sources (the smoke test).

import { Worker } from 'node:worker_threads';
import type { Op } from '../src/api.ts';
import * as sourceCampaign from '../src/engine/campaign.ts';
import { runCase } from '../src/engine/run.ts';
import { runBaseline } from './baseline-fc.ts';
import { WORKLOAD_SEED, WORKLOAD_STEPS, breathe, round, seed32, workloadCases, workloadConfig, workloadEngine } from './common.ts';
import { workloadJob } from './startup.ts';

export interface ThroughputOptions {
  rounds: number;
  /** Engine cases per round (each up to 64 ops). */
  casesPerRound: number;
  /** fc runs per round for the size-"max" harness (the default-size one gets 6x as many). */
  fcRunsPerRound: number;
  /**
   * Wall clock of unmeasured warm-up before the rounds, every harness in turn. V8 takes seconds to
   * compile the model and oracles to their steady speed (the baseline section warms up the same
   * way): with an 8-case warm-up the rounds of one run went 4,547, 16,458, 36,729 ops/s, and the
   * oracle cost printed 3.47x where the warm baseline section of the same run printed 1.94x.
   */
  warmMs: number;
}

interface Tally {
  ops: number;
  ms: number;
  perRound: number[];
}

const tally = (): Tally => ({ ops: 0, ms: 0, perRound: [] });

function add(t: Tally, ops: number, ms: number): void {
  t.ops += ops;
  t.ms += ms;
  t.perRound.push(round((ops * 1000) / ms));
}

const rate = (t: Tally): number => (t.ms > 0 ? round((t.ops * 1000) / t.ms) : 0);

export interface ThroughputResult {
  workload: string;
  rounds: number;
  /** ops/s; per-round figures show the spread. */
  engine: { opsPerSec: number; runOnlyOpsPerSec: number; generateOpsPerSec: number; perRound: number[]; ops: number; findings: number };
  raw: { opsPerSec: number; perRound: number[] };
  fcMax: { opsPerSec: number; perRound: number[]; commandsPerRun: number };
  fcDefault: { opsPerSec: number; perRound: number[]; commandsPerRun: number };
  engineOnFcOps: { opsPerSec: number; perRound: number[] };
  ratios: {
    /** Raw replay ops/s over engine run-only ops/s: how much the oracles cost (goal: <= 2). */
    oracleCost: number;
    /** Engine (generation included) over the fc harness (size max). */
    engineVsFc: number;
    engineVsFcDefault: number;
    /** Engine replaying the fc harness's own ops over the fc harness: harness overhead on identical work. */
    engineVsFcSameOps: number;
  };
}

export async function benchThroughput(options: ThroughputOptions): Promise<ThroughputResult> {
  const config = workloadConfig();
  const { policies, oracles } = await workloadEngine();
  const engine = tally();
  const runOnly = tally();
  const generate = tally();
  const raw = tally();
  const fcMax = tally();
  const fcDefault = tally();
  const sameOps = tally();
  let findings = 0;
  let fcMaxRuns = 0;
  let fcDefaultRuns = 0;

  // Warm-up, not counted: batches of each harness until options.warmMs of wall clock.
  const warmUntil = performance.now() + options.warmMs;
  for (let batch = 0; batch === 0 || performance.now() < warmUntil; batch++) {
    for (const testCase of workloadCases(config, `${WORKLOAD_SEED}/warm`, batch * 8, 8)) {
      runCase(testCase, policies, { oracles });
      runCase(testCase, policies, { oracles: [] });
    }
    runBaseline({ config, policies, oracles, seed: batch + 1, budget: Infinity, numRuns: 4, size: 'max' });
    runBaseline({ config, policies, oracles, seed: batch + 1, budget: Infinity, numRuns: 8 });
    await breathe();
  }

  for (let r = 0; r < options.rounds; r++) {
    // A: the engine, campaign-style: generate, then run with every oracle.
    let started = performance.now();
    const cases = workloadCases(config, WORKLOAD_SEED, r * options.casesPerRound, options.casesPerRound);
    const generated = performance.now();
    let ops = 0;
    for (const testCase of cases) {
      const result = runCase(testCase, policies, { oracles });
      ops += result.stepsRun;
      if (result.verdict === 'violation') findings++;
    }
    const done = performance.now();
    add(engine, ops, done - started);
    add(runOnly, ops, done - generated);
    add(generate, cases.reduce((sum, c) => sum + c.ops.length, 0), generated - started);
    await breathe();

    // B: raw replay of the same cases.
    started = performance.now();
    let rawOps = 0;
    for (const testCase of cases) rawOps += runCase(testCase, policies, { oracles: [] }).stepsRun;
    add(raw, rawOps, performance.now() - started);
    await breathe();

    // C: the plain fc harness, size "max"; keep its ops for D.
    const fcOps: Op[][] = [];
    const max = runBaseline({
      config,
      policies,
      oracles,
      seed: seed32(`throughput/${r}`),
      budget: Infinity,
      numRuns: options.fcRunsPerRound,
      size: 'max',
      onRun: (applied) => fcOps.push([...applied]),
    });
    add(fcMax, max.commands, max.ms);
    fcMaxRuns += max.runs;
    await breathe();

    // D: the engine on exactly the ops the fc harness ran.
    started = performance.now();
    let replayed = 0;
    for (const list of fcOps) replayed += runCase({ config, seed: 'fc-baseline', ops: list }, policies, { oracles }).stepsRun;
    add(sameOps, replayed, performance.now() - started);
    await breathe();

    // E: the plain fc harness with fc's default size (about 5 commands a run).
    const small = runBaseline({ config, policies, oracles, seed: seed32(`throughput-default/${r}`), budget: Infinity, numRuns: options.fcRunsPerRound * 6 });
    add(fcDefault, small.commands, small.ms);
    fcDefaultRuns += small.runs;
    await breathe();
  }

  const engineRate = rate(engine);
  return {
    workload: `${Math.round(options.warmMs / 1000)} s of warm-up, then ${options.rounds} rounds x ${options.casesPerRound} cases of <= ${WORKLOAD_STEPS} ops (seed ${WORKLOAD_SEED}, swarm on), default config, quiesce-dma + linux-2m-pool, during=0, ${oracles.length} oracles`,
    rounds: options.rounds,
    engine: { opsPerSec: engineRate, runOnlyOpsPerSec: rate(runOnly), generateOpsPerSec: rate(generate), perRound: engine.perRound, ops: engine.ops, findings },
    raw: { opsPerSec: rate(raw), perRound: raw.perRound },
    fcMax: { opsPerSec: rate(fcMax), perRound: fcMax.perRound, commandsPerRun: round(fcMax.ops / Math.max(1, fcMaxRuns), 1) },
    fcDefault: { opsPerSec: rate(fcDefault), perRound: fcDefault.perRound, commandsPerRun: round(fcDefault.ops / Math.max(1, fcDefaultRuns), 1) },
    engineOnFcOps: { opsPerSec: rate(sameOps), perRound: sameOps.perRound },
    ratios: {
      oracleCost: round(rate(raw) / Math.max(1, rate(runOnly)), 2),
      engineVsFc: round(engineRate / Math.max(1, rate(fcMax)), 2),
      engineVsFcDefault: round(engineRate / Math.max(1, rate(fcDefault)), 2),
      engineVsFcSameOps: round(rate(sameOps) / Math.max(1, rate(fcMax)), 2),
    },
  };
}

/** What probeParallelism() measured: each thread's loop alone and with the other running (fastest of the rounds), and their sum of ratios. */
export interface Parallelism {
  aloneMs: number[];
  togetherMs: number[];
  /** Sum over the threads of alone / together: 2 on an idle 2-core machine, 1 where the threads take turns. */
  speedup: number;
}

/**
 * How much parallelism the machine gives right now: two plain worker threads (no tsx, no engine),
 * warmed up, each timing a fixed CPU loop inside itself, alone and then both at once, in
 * alternating rounds. The figure is each thread's own slowdown when the other runs, summed, so it
 * compares a thread only with itself. The previous probe timed fresh threads from outside, all
 * 1-thread runs and then all 2-thread runs, and compared different isolates: a loop's time varied
 * 45-78 ms between isolates and from second to second on either core (taskset: 209-341 ms for one
 * loop on one core), so it printed 3.08x for this 2-core machine in the full run of 2026-11-28 03:06.
 */
export async function probeParallelism(rounds = 7, calls = 150): Promise<Parallelism> {
  // The loop in a function called many times (a single long call waits for on-stack replacement,
  // whose timing varies), warmed up before the first round.
  const code = `const { parentPort, workerData } = require('node:worker_threads');
function spin(n) { let x = 0; for (let i = 0; i < n; i++) x = (x + i) | 0; return x; }
let sink = 0;
for (let k = 0; k < 200; k++) sink ^= spin(1e5);
parentPort.on('message', () => {
  const started = performance.now();
  for (let k = 0; k < workerData; k++) sink ^= spin(1e6);
  parentPort.postMessage(sink === 0.5 ? -1 : performance.now() - started);
});
parentPort.postMessage('ready');`;
  const threads = [0, 1].map(() => new Worker(code, { eval: true, workerData: calls }));
  // One listener each for the thread's life: the next answer settles whoever waits for it.
  const waiting: { resolve: (ms: number) => void; reject: (error: unknown) => void }[] = [];
  const answer = (i: number): Promise<number> => new Promise((resolve, reject) => (waiting[i] = { resolve, reject }));
  threads.forEach((worker, i) => {
    worker.on('message', (ms: number) => waiting[i]?.resolve(ms));
    worker.on('error', (error) => waiting[i]?.reject(error));
  });
  try {
    await Promise.all(threads.map((_, i) => answer(i)));
    const spin = (i: number): Promise<number> => {
      const done = answer(i);
      threads[i]!.postMessage('go');
      return done;
    };
    const alone = [Infinity, Infinity];
    const together = [Infinity, Infinity];
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < 2; i++) alone[i] = Math.min(alone[i]!, await spin(i));
      const both = await Promise.all([spin(0), spin(1)]);
      for (let i = 0; i < 2; i++) together[i] = Math.min(together[i]!, both[i]!);
    }
    return { aloneMs: alone.map((ms) => round(ms)), togetherMs: together.map((ms) => round(ms)), speedup: round(alone[0]! / together[0]! + alone[1]! / together[1]!, 2) };
  } finally {
    await Promise.all(threads.map((worker) => worker.terminate()));
  }
}

export interface WorkerScalingResult {
  /** The machine's parallelism at the time (probeParallelism). */
  machine: Parallelism;
  /** Where the campaign code came from: dist/ (what the CLI runs) or the sources under tsx. */
  from: 'dist' | 'source';
  /** Cases per campaign, or undefined when each ran for `timeMs`. */
  runs?: number;
  timeMs?: number;
  byWorkers: {
    workers: number;
    ms: number;
    /** A campaign of 0 cases on as many workers: thread start-up (module graph) and teardown. */
    startupMs: number;
    cases: number;
    ops: number;
    casesPerSec: number;
    /** cases/s once the threads are up (wall minus start-up). */
    steadyCasesPerSec: number;
    opsPerSec: number;
    /** CPU time of the whole process (every thread, GC helpers included) over wall time. */
    cpuPerWall: number;
    findings: number;
  }[];
  /** cases/s with 2 workers over cases/s with 1, wall clock and after start-up. */
  speedup: number;
  steadySpeedup: number;
}

export async function benchWorkers(options: { runs?: number; timeMs?: number; workers?: readonly number[]; from?: 'dist' | 'source' }): Promise<WorkerScalingResult> {
  const from = options.from ?? 'source';
  const { runCampaign } =
    from === 'dist' ? ((await import(new URL('../dist/bundle/index.js', import.meta.url).href)) as typeof sourceCampaign) : sourceCampaign;
  const job = workloadJob();
  const budget = options.timeMs !== undefined ? { timeMs: options.timeMs } : { runs: options.runs ?? 100 };
  const machine = await probeParallelism();
  const byWorkers: WorkerScalingResult['byWorkers'] = [];
  for (const workers of options.workers ?? [1, 2]) {
    let started = performance.now();
    await runCampaign({ job, runs: 0, workers });
    const startupMs = performance.now() - started;
    await breathe();
    started = performance.now();
    const cpu = process.cpuUsage();
    const stats = await runCampaign({ job, ...budget, workers });
    const ms = performance.now() - started;
    const used = process.cpuUsage(cpu);
    byWorkers.push({
      workers,
      ms: round(ms),
      startupMs: round(startupMs),
      cases: stats.cases,
      ops: stats.ops,
      casesPerSec: round((stats.cases * 1000) / ms, 1),
      steadyCasesPerSec: round((stats.cases * 1000) / Math.max(1, ms - startupMs), 1),
      opsPerSec: round((stats.ops * 1000) / ms),
      cpuPerWall: round((used.user + used.system) / 1000 / ms, 2),
      findings: stats.findings,
    });
    await breathe();
  }
  const one = byWorkers.find((b) => b.workers === 1);
  const two = byWorkers.find((b) => b.workers === 2);
  return {
    machine,
    from,
    ...budget,
    byWorkers,
    speedup: one && two ? round(two.casesPerSec / one.casesPerSec, 2) : 1,
    steadySpeedup: one && two ? round(two.steadyCasesPerSec / one.steadyCasesPerSec, 2) : 1,
  };
}
