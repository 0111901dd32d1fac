// One campaign case: generate from the case seed and run it with every oracle. A pure function of
// (job, index): the main thread and every worker compute the same outcome for the same index,
// which makes campaigns deterministic whatever the worker count. Shrinking is separate
// (shrinkToRepro): the campaign shrinks only the first case of each new bucket.

import type { Oracle, Step, View, Violation } from '../api.ts';
import { CoverageTracker } from './coverage.ts';
import { type GenerateOptions, caseSeed, generateCase } from '../ops/generate.ts';
import type { Case, Config } from '../ops/types.ts';
import type { Repro } from '../repro/format.ts';
import { looksLikeFile } from '../repro/plugin-paths.ts';
import type { Metrics } from './metrics.ts';
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
  /** The case's coverage features (coverage.ts), when the job collects them. */
  features?: string[];
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

export function reproTitle(violation: Violation): string {
  return `${violation.oracle}: ${violation.message}`.slice(0, 160);
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
): { repro: Repro; violation: Violation } {
  const sameBug = (candidate: Case): Violation | undefined =>
    runCase(candidate, runner.policies, { oracles: runner.oracles }).violations.find((v) => v.oracle === violation.oracle);
  const truncated = { ...testCase, ops: testCase.ops.slice(0, violation.step + 1) };
  const start = sameBug(truncated) ? truncated : testCase;
  const { testCase: minimal } = minimizeCase(start, (candidate) => sameBug(candidate) !== undefined, { budget });
  const final = sameBug(minimal) ?? violation;
  return {
    violation: final,
    repro: {
      title: reproTitle(final),
      config: minimal.config,
      seed: minimal.seed,
      ops: minimal.ops,
      expect: { verdict: 'violation', oracle: final.oracle, step: final.step },
      ...(oracleFiles.length > 0 ? { oracles: [...oracleFiles] } : {}),
    },
  };
}

/** Does the job load code from files (user policies or oracles)? Such campaigns run isolated. */
export function loadsPlugins(job: CampaignJob): boolean {
  return job.oracleFiles.length > 0 || looksLikeFile(job.config.hostPolicy) || looksLikeFile(job.config.guestPolicy);
}

/** The case behind index `index` of this shard's campaign. */
export function campaignCase(job: CampaignJob, index: number): Case {
  return generateCase(job.config, caseSeed(job.seed, job.shard.index + index * job.shard.count), job.generate);
}

/**
 * Runs case `index`. `progress` hears which op is in flight (-1 while the world boots), so a
 * watchdog that has to kill the case can say where it hung (watchdog.ts).
 */
export function runCampaignCase(
  job: CampaignJob,
  runner: CaseRunner,
  index: number,
  progress?: (op: number) => void,
  testCase: Case = campaignCase(job, index),
): CaseOutcome {
  progress?.(-1);
  // Coverage only reads the view after each step: the verdict is the same with it on or off.
  const tracker = job.coverage ? new CoverageTracker() : undefined;
  const result = runCase(testCase, runner.policies, {
    oracles: runner.oracles,
    ...(progress ? { onStart: () => progress(0) } : {}),
    ...(progress || tracker
      ? {
          onStep: (step: Step, view: View) => {
            tracker?.observe(step, view);
            progress?.(step.index + 1);
          },
        }
      : {}),
  });
  const outcome: CaseOutcome = {
    index,
    seed: testCase.seed,
    ops: testCase.ops.length,
    stepsRun: result.stepsRun,
    oracleErrors: result.oracleErrors,
    metrics: result.metrics,
  };
  if (tracker) outcome.features = [...tracker.features].sort();
  const first = result.violations[0];
  if (first) {
    outcome.violation = first;
    outcome.signature = signature(testCase, first);
  }
  return outcome;
}
