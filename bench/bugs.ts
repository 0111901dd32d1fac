// Time to find planted bugs (research/fuzzer-anchors.md section 5): every planted bug and the
// control, each from `seeds` seeds, in three configurations (the engine's generator with swarm on
// and off, and the plain fc.commands harness), each trial within a budget of ops; detection rate,
// median and restricted mean ops and time to detection (misses censored at the budget), shrunk
// length against the hand-minimal one, and the buckets the findings fall into. Trials are spread
// over child processes (one per core by default); ops counts do not depend on that, times do.

import { ALL_TRIAL_MODES, type TrialMode, type TrialResult, type TrialTask, TRIAL_MODES } from './bug-trials.ts';
import { censoredMedian, median, poissonLowerBound, restrictedMean, round, runChild } from './common.ts';
import { CONTROL, type PlantedBug, plantedBugs } from './planted/index.ts';

export interface BugBenchOptions {
  seeds: number;
  budgetOps: number;
  budgetMs: number;
  /** Shrink the findings of trials 0..shrinkTrials-1 of each (bug, mode). */
  shrinkTrials: number;
  shrinkBudget: number;
  /** Child processes running at once. */
  jobs: number;
  /** Chunks of trials per job (more: finer progress and balance, at one process start-up each). Default 3. */
  chunksPerJob?: number;
  /** Only these bugs (flags; "control" for the control). Default: all, and the control. */
  only?: readonly string[];
  modes?: readonly TrialMode[];
  /**
   * Wall clock of an untimed trial on the control, one per mode, at the start of each chunk (its
   * result dropped): a fresh process takes seconds to reach its steady speed (V8 compiling the
   * engine and every oracle), which otherwise lands on the chunk's first trials and skews the
   * short ones (coverage mode's, a tenth of fc's) most.
   */
  warmupMs?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface ModeSummary {
  trials: number;
  detected: number;
  rate: number;
  /** Censored at the budget: Infinity when half the trials or more missed. */
  medianOps: number;
  restrictedMeanOps: number;
  medianMs: number;
  /** Misses count with the time they spent (their whole ops budget). */
  restrictedMeanMs: number;
  /** Ops/s this mode ran at on this bug (all trials). */
  opsPerSec: number;
  /**
   * Chance to detect within 60 s, projected from an exponential fit to the censored data
   * (hazard = detections / ops run) at this mode's ops/s. An extrapolation, not a measurement.
   */
  projected60s: number;
  /** The same with the hazard at its 95% lower confidence bound (few detections: a wide interval). */
  projected60sLow: number;
  /** Projected mean seconds to detection (1 / (hazard * ops/s)); Infinity with no detection. */
  projectedMeanSec: number;
  /** The oracle of each detection, counted. */
  oracles: Record<string, number>;
  shrunk: { lengths: number[]; medianLength?: number; ratioToMinimal?: number; medianMs?: number; sameOracle: number };
}

export interface BugSummary {
  bug: string;
  class: PlantedBug['class'] | 'control';
  side?: 'host' | 'guest';
  oracle?: string;
  minimalLength?: number;
  modes: Partial<Record<TrialMode, ModeSummary>>;
  /** Distinct signature() buckets over every finding of this bug (all modes, shrunk ones too). */
  buckets: string[];
  /** Every shrink of this bug's findings, whichever mode found them (the minimizer does not care). */
  shrunk: { lengths: number[]; medianLength?: number; maxLength?: number; ratioToMinimal?: number; medianMs?: number; sameOracle: number };
  /**
   * fc's restricted mean over the engine's, in ops and in time, swarm on (the default) and off:
   * how many times sooner the engine finds the bug. Undefined when that engine mode found nothing
   * (both censored: the ratio would only compare speeds per op); a lower bound when fc found nothing.
   */
  speedup: { ops?: number; time?: number; timeNoSwarm?: number; opsNoSwarm?: number; lowerBound: boolean };
}

export interface BugBenchResult {
  seeds: number;
  budgetOps: number;
  budgetMs: number;
  shrinkBudget: number;
  summaries: BugSummary[];
  trials: TrialResult[];
}

function summarizeMode(results: readonly TrialResult[], budgetOps: number, minimal: number | undefined, intended: string | undefined): ModeSummary {
  const detectedOps = results.map((r) => (r.found ? r.ops : undefined));
  const detectedMs = results.map((r) => (r.found ? r.ms : undefined));
  const totalOps = results.reduce((sum, r) => sum + r.ops, 0);
  const totalMs = results.reduce((sum, r) => sum + r.ms, 0);
  const detected = results.filter((r) => r.found).length;
  const opsPerSec = totalMs > 0 ? (totalOps * 1000) / totalMs : 0;
  const hazard = totalOps > 0 ? detected / totalOps : 0;
  const oracles: Record<string, number> = {};
  for (const r of results) if (r.oracle) oracles[r.oracle] = (oracles[r.oracle] ?? 0) + 1;
  const shrunk = results.flatMap((r) => (r.shrunk ? [r.shrunk] : []));
  const lengths = shrunk.map((s) => s.length);
  const medianLength = median(lengths);
  const msPerTrial = results.map((r) => r.ms);
  return {
    trials: results.length,
    detected,
    rate: results.length === 0 ? 0 : round(detected / results.length, 3),
    medianOps: censoredMedian(detectedOps),
    restrictedMeanOps: round(restrictedMean(detectedOps, budgetOps)),
    medianMs: censoredMedian(detectedMs),
    restrictedMeanMs: round(msPerTrial.reduce((sum, ms) => sum + ms, 0) / Math.max(1, results.length)),
    opsPerSec: round(opsPerSec),
    projected60s: round(1 - Math.exp(-hazard * opsPerSec * 60), 3),
    projected60sLow: round(1 - Math.exp(-(totalOps > 0 ? poissonLowerBound(detected) / totalOps : 0) * opsPerSec * 60), 3),
    projectedMeanSec: hazard > 0 && opsPerSec > 0 ? round(1 / (hazard * opsPerSec), 2) : Number.POSITIVE_INFINITY,
    oracles,
    shrunk: {
      lengths,
      ...(medianLength !== undefined ? { medianLength } : {}),
      ...(medianLength !== undefined && minimal ? { ratioToMinimal: round(medianLength / minimal, 2) } : {}),
      ...(shrunk.length > 0 ? { medianMs: median(shrunk.map((s) => s.ms)) } : {}),
      sameOracle: shrunk.filter((s) => s.oracle === intended).length,
    },
  };
}

export function summarizeBugs(trials: readonly TrialResult[], options: Pick<BugBenchOptions, 'budgetOps'>): BugSummary[] {
  const names = [...new Set(trials.map((t) => t.bug))];
  const order = [...plantedBugs.map((b) => b.flag as string), CONTROL];
  names.sort((a, b) => order.indexOf(a) - order.indexOf(b));
  return names.map((name) => {
    const bug = plantedBugs.find((b) => b.flag === name);
    const mine = trials.filter((t) => t.bug === name);
    const modes: BugSummary['modes'] = {};
    for (const mode of ALL_TRIAL_MODES) {
      const results = mine.filter((t) => t.mode === mode);
      if (results.length > 0) modes[mode] = summarizeMode(results, options.budgetOps, bug?.minimal.length, bug?.oracle);
    }
    const buckets = new Set<string>();
    for (const t of mine) {
      if (t.signature) buckets.add(t.signature);
      if (t.shrunk) buckets.add(t.shrunk.signature);
    }
    const shrinks = mine.flatMap((t) => (t.shrunk ? [t.shrunk] : []));
    const lengths = shrinks.map((x) => x.length);
    const medianLength = median(lengths);
    const summary: BugSummary = {
      bug: name,
      class: bug?.class ?? 'control',
      modes,
      buckets: [...buckets].sort(),
      shrunk: {
        lengths,
        ...(medianLength !== undefined ? { medianLength, maxLength: Math.max(...lengths) } : {}),
        ...(medianLength !== undefined && bug ? { ratioToMinimal: round(medianLength / bug.minimal.length, 2) } : {}),
        ...(shrinks.length > 0 ? { medianMs: median(shrinks.map((x) => x.ms)) } : {}),
        sameOracle: shrinks.filter((x) => x.oracle === bug?.oracle).length,
      },
      speedup: { lowerBound: false },
    };
    if (bug) {
      summary.side = bug.side;
      summary.oracle = bug.oracle;
      summary.minimalLength = bug.minimal.length;
    }
    const fc = modes.fc;
    if (bug && fc) {
      summary.speedup.lowerBound = fc.detected === 0;
      const swarm = modes.swarm;
      if (swarm && swarm.detected > 0) {
        summary.speedup.ops = round(fc.restrictedMeanOps / Math.max(1, swarm.restrictedMeanOps), 2);
        summary.speedup.time = round(fc.restrictedMeanMs / Math.max(1, swarm.restrictedMeanMs), 2);
      }
      const noSwarm = modes['no-swarm'];
      if (noSwarm && noSwarm.detected > 0) {
        summary.speedup.opsNoSwarm = round(fc.restrictedMeanOps / Math.max(1, noSwarm.restrictedMeanOps), 2);
        summary.speedup.timeNoSwarm = round(fc.restrictedMeanMs / Math.max(1, noSwarm.restrictedMeanMs), 2);
      }
    }
    return summary;
  });
}

/** The trial tasks of a bench run, in a fixed order. */
export function bugTasks(options: BugBenchOptions): TrialTask[] {
  const names = options.only ?? [...plantedBugs.map((b) => b.flag as string), CONTROL];
  const tasks: TrialTask[] = [];
  for (const bug of names) {
    for (const mode of options.modes ?? TRIAL_MODES) {
      for (let trial = 0; trial < options.seeds; trial++) {
        tasks.push({
          bug,
          mode,
          trial,
          budgetOps: options.budgetOps,
          budgetMs: options.budgetMs,
          shrinkBudget: bug !== CONTROL && trial < options.shrinkTrials ? options.shrinkBudget : 0,
        });
      }
    }
  }
  return tasks;
}

export async function benchPlantedBugs(options: BugBenchOptions): Promise<BugBenchResult> {
  const tasks = bugTasks(options);
  // A few chunks per job (progress, and balance when one chunk is slow), dealt round-robin so
  // every chunk gets a mix of quick and slow trials.
  const chunkCount = Math.max(1, Math.min(tasks.length, options.jobs * (options.chunksPerJob ?? 3)));
  const chunks: TrialTask[][] = Array.from({ length: chunkCount }, () => []);
  tasks.forEach((task, i) => chunks[i % chunkCount]?.push(task));
  const results: TrialResult[] = [];
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    for (let chunk = chunks[next++]; chunk !== undefined; chunk = chunks[next++]) {
      const warmupMs = options.warmupMs ?? 0;
      const warmup: TrialTask[] = warmupMs > 0 ? [...new Set(chunk.map((t) => t.mode))].map((mode) => ({ bug: CONTROL, mode, trial: -1, budgetOps: Number.MAX_SAFE_INTEGER, budgetMs: warmupMs, shrinkBudget: 0 })) : [];
      const child = await runChild<TrialResult[]>({ kind: 'trials', tasks: [...warmup, ...chunk] });
      results.push(...child.result.slice(warmup.length));
      done += chunk.length;
      options.onProgress?.(done, tasks.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.jobs) }, () => worker()));
  const key = (t: TrialResult): string => `${t.bug}\u0000${t.mode}\u0000${String(t.trial).padStart(6, '0')}`;
  results.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  return {
    seeds: options.seeds,
    budgetOps: options.budgetOps,
    budgetMs: options.budgetMs,
    shrinkBudget: options.shrinkBudget,
    summaries: summarizeBugs(results, options),
    trials: results,
  };
}
