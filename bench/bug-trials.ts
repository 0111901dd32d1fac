// One trial of the planted-bug benchmark: search for one planted bug (or the control) from one
// seed, in one configuration, until the first violation or the end of the budget; then, if asked,
// shrink what was found. Pure functions of the task, so a trial gives the same ops-to-detection
// in any process (only the times depend on the machine).

import type { Oracle, Violation } from '../src/api.ts';
import { shrinkToRepro } from '../src/engine/case-job.ts';
import { CoverageTracker } from '../src/engine/coverage.ts';
import { Guide } from '../src/engine/guided.ts';
import { runCase, signature } from '../src/engine/run.ts';
import { caseSeed, generateCase } from '../src/ops/generate.ts';
import type { Case } from '../src/ops/types.ts';
import { runBaseline } from './baseline-fc.ts';
import { WORKLOAD_STEPS, WORKLOAD_WEIGHTS, seed32 } from './common.ts';
import { CONTROL, plantedBug, plantedConfig, plantedPolicies } from './planted/index.ts';

/**
 * swarm / no-swarm: the engine's campaign generator; coverage: swarm with coverage guidance (the
 * campaign's Guide: a corpus, mutations, rounds); fc: the plain fc.commands harness.
 */
export type TrialMode = 'swarm' | 'no-swarm' | 'coverage' | 'fc';
/** The modes of the default bench run (coverage has its own ablation, bench/coverage.ts). */
export const TRIAL_MODES: readonly TrialMode[] = ['swarm', 'no-swarm', 'fc'];
/** Every mode a summary may meet. */
export const ALL_TRIAL_MODES: readonly TrialMode[] = ['swarm', 'no-swarm', 'coverage', 'fc'];

export interface TrialTask {
  /** A planted bug's flag, or "control". */
  bug: string;
  mode: TrialMode;
  trial: number;
  /** Ops (commands) the search may run. */
  budgetOps: number;
  /** Wall-clock cap, a safety net for slow machines (a trial cut by it counts as a miss at its ops). */
  budgetMs: number;
  /** Shrink the finding with this many re-runs at most (0: do not shrink). */
  shrinkBudget: number;
}

export interface TrialResult {
  bug: string;
  mode: TrialMode;
  trial: number;
  found: boolean;
  /** Ops run until the detection (included), or until the budget ran out. */
  ops: number;
  ms: number;
  /** Cases (engine) or fc runs started. */
  cases: number;
  oracle?: string;
  signature?: string;
  /** Length of the failing case up to the violation, before shrinking. */
  failingLength?: number;
  shrunk?: { length: number; ms: number; oracle: string; signature: string };
}

/** The seed label of one trial: the same for every mode, so trial k of each mode starts from the same seed. */
export const trialSeed = (bug: string, trial: number): string => `planted/${bug}/${trial}`;

function shrink(task: TrialTask, failing: Case, violation: Violation, runner: { policies: ReturnType<typeof plantedPolicies>; oracles: Oracle[] }): TrialResult['shrunk'] {
  const started = performance.now();
  const { repro, violation: final } = shrinkToRepro(failing, violation, runner, task.shrinkBudget);
  const minimal: Case = { config: repro.config, seed: repro.seed, ops: repro.ops };
  return { length: repro.ops.length, ms: Math.round(performance.now() - started), oracle: final.oracle, signature: signature(minimal, final) };
}

export function runTrial(task: TrialTask, oracles: Oracle[]): TrialResult {
  const bug = task.bug === CONTROL ? undefined : plantedBug(task.bug);
  if (task.bug !== CONTROL && bug === undefined) throw new Error(`no planted bug "${task.bug}"`);
  const config = plantedConfig(bug);
  const policies = plantedPolicies(bug?.flag);
  const seed = trialSeed(task.bug, task.trial);
  const result: TrialResult = { bug: task.bug, mode: task.mode, trial: task.trial, found: false, ops: 0, ms: 0, cases: 0 };
  let failing: Case | undefined;
  let violation: Violation | undefined;
  const started = performance.now();

  if (task.mode === 'fc') {
    const found = runBaseline({ config, policies, oracles, seed: seed32(seed), budget: task.budgetOps, size: 'max', deadline: started + task.budgetMs });
    result.ops = found.commands;
    result.cases = found.runs;
    failing = found.failing;
    violation = found.violation;
  } else {
    const swarm = task.mode !== 'no-swarm';
    const generate = { steps: WORKLOAD_STEPS, swarm, weights: WORKLOAD_WEIGHTS };
    // One process, cases in order: every round sees the whole previous round, as a campaign does.
    const guide =
      task.mode === 'coverage'
        ? new Guide({ config, seed, generate, oracleFiles: [], onlyOracles: [], minimizeBudget: 0, shard: { index: 0, count: 1 }, coverage: true })
        : undefined;
    for (let index = 0; result.ops < task.budgetOps && performance.now() - started < task.budgetMs; index++) {
      let testCase = guide ? guide.caseFor(index) : generateCase(config, caseSeed(seed, index), generate);
      // The last case is cut to the budget, so every trial spends exactly its budget when it misses.
      const left = task.budgetOps - result.ops;
      if (testCase.ops.length > left) testCase = { ...testCase, ops: testCase.ops.slice(0, left) };
      const tracker = guide ? new CoverageTracker() : undefined;
      const run = runCase(testCase, policies, tracker ? { oracles, onStep: (step, view) => tracker.observe(step, view) } : { oracles });
      if (guide && tracker) guide.observe(testCase, [...tracker.features], run.verdict === 'clean', tracker.firstSteps, index);
      result.ops += run.stepsRun;
      result.cases++;
      const first = run.violations[0];
      if (first) {
        failing = testCase;
        violation = first;
        break;
      }
    }
  }
  result.ms = Math.round(performance.now() - started);
  if (failing && violation) {
    result.found = true;
    result.oracle = violation.oracle;
    result.signature = signature(failing, violation);
    result.failingLength = violation.step + 1;
    if (task.shrinkBudget > 0) result.shrunk = shrink(task, failing, violation, { policies, oracles });
  }
  return result;
}
