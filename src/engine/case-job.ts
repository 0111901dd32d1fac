// One campaign case: generate from the case seed and run it with every oracle. A pure function of
// (job, index): the main thread and every worker compute the same outcome for the same index,
// which makes campaigns deterministic whatever the worker count. Shrinking is separate
// (shrinkToRepro): the campaign shrinks only the first case of each new bucket.

import type { Oracle, Step, View, Violation } from '../api.ts';
import { type CallBudget, type CallWatch, defaultCallBudget } from './call-budget.ts';
import { stepBehaviours } from './behaviours.ts';
import { CoverageTracker } from './coverage.ts';
import { type GenerateOptions, caseSeed, generateCase } from '../ops/generate.ts';
import type { Case, Config } from '../ops/types.ts';
import type { Repro } from '../repro/format.ts';
import { looksLikeFile } from '../repro/plugin-paths.ts';
import type { Metrics } from './metrics.ts';
import type { TaskFailure } from './watchdog.ts';
import { minimizeCase } from './minimize.ts';
import { type OracleError, type Policies, runCase, signature } from './run.ts';
import { resolveOracles, resolvePolicies } from './select.ts';

/** Everything a worker needs, as plain data (plugins travel as file names). */
export interface CampaignJob {
  config: Config;
  seed: string;
  generate: GenerateOptions;
  oracleFiles: string[];
  onlyOracles: string[];
  minimizeBudget: number;
  /** Shard i/n: case k of this shard is global case i + k*n. */
  shard: { index: number; count: number };
  /** Collect the coverage signal of each case (coverage.ts): guided campaigns. */
  coverage?: boolean;
  /** Most primitive calls one case may make (call-budget.ts; default defaultCallBudget(config)). */
  callBudget?: number;
}

/** The budget of one case of the job: --call-budget, else the default of the case's own config (a corpus file or a mutant may have another pool than the job's). */
export const jobCallBudget = (job: Pick<CampaignJob, 'callBudget'>, config: Config): CallBudget => ({ case: job.callBudget ?? defaultCallBudget(config) });

/** Where a case is, as it runs: what a watchdog that has to stop it can still read (worker.ts). */
export interface CaseProgress extends CallWatch {
  /** Op `index` starts (-1: the world boots; the number of ops: the final sweep). */
  op(index: number): void;
}

export interface CaseOutcome {
  /** This shard's case number (0, 1, 2...). */
  index: number;
  seed: string;
  ops: number;
  stepsRun: number;
  /** The first violation, before shrinking, and its bucket signature. */
  violation?: Violation;
  signature?: string;
  oracleErrors: OracleError[];
  /** Efficiency of the policy in this case (not a verdict); absent when the case never finished. */
  metrics?: Metrics;
  /** Violations the failing step reported (several oracles may fire at one step). */
  hits: number;
  /** Behaviours the case exercised (behaviours.ts), for the campaign's coverage count. */
  behaviours: string[];
  /** The case's coverage features (coverage.ts), sorted, when the job collects them. */
  features?: string[];
  /** The step each of `features` was first reached at (the guide keeps the prefix that reached them). */
  featureSteps?: number[];
  /** The watchdog stopped the case (its worker was lost): what it had done, for the shrink. */
  stopped?: TaskFailure;
}

export interface CaseRunner {
  policies: Policies;
  oracles: Oracle[];
}

export async function prepareRunner(job: CampaignJob): Promise<CaseRunner> {
  return {
    policies: await resolvePolicies(job.config.hostPolicy, job.config.guestPolicy),
    oracles: await resolveOracles({ files: job.oracleFiles, only: job.onlyOracles }),
  };
}

/** Repro titles are one line of a listing: longer ones end at a word, marked cut. */
const TITLE_LENGTH = 160;

/** `text` within TITLE_LENGTH: cut at the last space before the limit, with an ellipsis. */
export function clipTitle(text: string): string {
  if (text.length <= TITLE_LENGTH) return text;
  const cut = text.lastIndexOf(' ', TITLE_LENGTH - 1);
  return `${text.slice(0, cut > TITLE_LENGTH / 2 ? cut : TITLE_LENGTH - 1)}\u2026`;
}

export function reproTitle(violation: Violation): string {
  return clipTitle(`${violation.oracle}: ${violation.message}`);
}

/** The repro of `testCase` expecting `violation`, naming the user oracle files its verdict needs. */
export function reproFor(testCase: Case, violation: Violation, oracleFiles: readonly string[]): Repro {
  return {
    title: reproTitle(violation),
    config: testCase.config,
    seed: testCase.seed,
    ops: testCase.ops,
    expect: { verdict: 'violation', oracle: violation.oracle, step: violation.step },
    ...(oracleFiles.length > 0 ? { oracles: [...oracleFiles] } : {}),
  };
}

/**
 * Shrinks a failing case while the same oracle still fires, and returns it as a repro that names
 * the user oracle files (`oracleFiles`) its verdict needs.
 */
export function shrinkToRepro(
  testCase: Case,
  violation: Violation,
  runner: CaseRunner,
  budget: number,
  oracleFiles: readonly string[] = [],
  callBudget?: CallBudget,
): { repro: Repro; violation: Violation } {
  const sameBug = (candidate: Case): Violation | undefined =>
    runCase(candidate, runner.policies, { oracles: runner.oracles, ...(callBudget ? { callBudget } : {}) }).violations.find((v) => v.oracle === violation.oracle);
  const truncated = { ...testCase, ops: testCase.ops.slice(0, violation.step + 1) };
  const start = sameBug(truncated) ? truncated : testCase;
  const { testCase: minimal } = minimizeCase(start, (candidate) => sameBug(candidate) !== undefined, { budget });
  const final = sameBug(minimal) ?? violation;
  return { violation: final, repro: reproFor(minimal, final, oracleFiles) };
}

/** Does the job load code from files (user policies or oracles)? Such campaigns run isolated. */
export function loadsPlugins(job: CampaignJob): boolean {
  return job.oracleFiles.length > 0 || looksLikeFile(job.config.hostPolicy) || looksLikeFile(job.config.guestPolicy);
}

/** The case behind index `index` of this shard's campaign. */
export function campaignCase(job: CampaignJob, index: number): Case {
  return globalCase(job, globalIndex(job.shard, index));
}

/** The global case number (what `--case` takes, the K of the seed `S/K`) of shard case `index`. */
export function globalIndex(shard: CampaignJob['shard'], index: number): number {
  return shard.index + index * shard.count;
}

/** Global case `k` of the campaign (seed `S/k`), whatever the shard: `fuzz --case k`. */
export function globalCase(job: Pick<CampaignJob, 'config' | 'seed' | 'generate'>, k: number): Case {
  return generateCase(job.config, caseSeed(job.seed, k), job.generate);
}

/**
 * Runs case `index`. `progress` hears which op is in flight (-1 while the world boots), the calls
 * made and the hook running, so a watchdog that has to kill the case can say where it hung and
 * what it did (watchdog.ts). `callBudget` overrides the job's (shrinking a timeout).
 */
export function runCampaignCase(
  job: CampaignJob,
  runner: CaseRunner,
  index: number,
  progress?: CaseProgress,
  testCase: Case = campaignCase(job, index),
  callBudget: CallBudget = jobCallBudget(job, testCase.config),
): CaseOutcome {
  const behaviours = new Set<string>();
  // Coverage only reads the view after each step: the verdict is the same with it on or off.
  const tracker = job.coverage ? new CoverageTracker() : undefined;
  progress?.op(-1);
  const result = runCase(testCase, runner.policies, {
    oracles: runner.oracles,
    callBudget,
    ...(progress ? { onStart: () => progress.op(0), callWatch: progress } : {}),
    onStep: (step: Step, view: View) => {
      stepBehaviours(step, behaviours);
      tracker?.observe(step, view);
      progress?.op(step.index + 1);
    },
  });
  const outcome: CaseOutcome = {
    index,
    seed: testCase.seed,
    ops: testCase.ops.length,
    stepsRun: result.stepsRun,
    oracleErrors: result.oracleErrors,
    metrics: result.metrics,
    hits: result.violations.length,
    behaviours: [...behaviours],
  };
  if (tracker) {
    const { features, steps } = tracker.sorted();
    outcome.features = features;
    outcome.featureSteps = steps;
  }
  const first = result.violations[0];
  if (first) {
    outcome.violation = first;
    outcome.signature = signature(testCase, first);
  }
  return outcome;
}
