// Time to the first race finding (DOMAIN.md "Races and interleavings"): cut-on-convert +
// linux-2m-pool, which loses the race between its PSMASH and its IO cut, searched from `seeds`
// seeds with interleaving on (the default `during` weight) and off (`during=0`), each trial
// within a budget of ops. A race finding is a dma-liveness violation by an interleaved DMA (one
// from an op's `during`); off, no DMA is ever interleaved, so it should never find one. Reports
// the detection rate and the restricted mean ops and cases to detection (misses censored at the
// budget, as in bugs.ts).

import type { Oracle } from '../src/api.ts';
import { runCase } from '../src/engine/run.ts';
import { resolveOracles, resolvePolicies } from '../src/engine/select.ts';
import { defaultConfig } from '../src/ops/config.ts';
import { caseSeed, generateCase } from '../src/ops/generate.ts';
import { WORKLOAD_STEPS, restrictedMean, round } from './common.ts';

export const RACE_POLICIES = { hostPolicy: 'cut-on-convert', guestPolicy: 'linux-2m-pool' } as const;

export interface RaceBenchOptions {
  seeds: number;
  budgetOps: number;
}

export interface RaceTrial {
  trial: number;
  found: boolean;
  /** Ops and cases run until the finding (included), or the whole budget. */
  ops: number;
  cases: number;
  /** The top-level length of the failing case up to the violation. */
  failingLength?: number;
}

export interface RaceModeSummary {
  trials: number;
  detected: number;
  rate: number;
  restrictedMeanOps: number;
  restrictedMeanCases: number;
  trialsDetail: RaceTrial[];
}

export interface RaceBenchResult {
  policies: typeof RACE_POLICIES;
  seeds: number;
  budgetOps: number;
  on: RaceModeSummary;
  off: RaceModeSummary;
}

function trial(index: number, interleave: boolean, budgetOps: number, oracles: Oracle[], policies: Awaited<ReturnType<typeof resolvePolicies>>): RaceTrial {
  const config = defaultConfig(RACE_POLICIES);
  // The same seed for both modes: trial k on and off start from the same campaign seed.
  const seed = `race/${index}`;
  const result: RaceTrial = { trial: index, found: false, ops: 0, cases: 0 };
  for (let n = 0; result.ops < budgetOps; n++) {
    let testCase = generateCase(config, caseSeed(seed, n), { steps: WORKLOAD_STEPS, swarm: true, ...(interleave ? {} : { weights: { during: 0 } }) });
    const left = budgetOps - result.ops;
    if (testCase.ops.length > left) testCase = { ...testCase, ops: testCase.ops.slice(0, left) };
    // Every violation is looked at: other oracles' findings do not end the search for the race.
    const run = runCase(testCase, policies, { oracles, allViolations: true });
    result.cases++;
    const race = run.violations.find((v) => v.oracle === 'dma-liveness' && v.details?.during !== undefined);
    if (race !== undefined) {
      result.ops += race.step + 1;
      result.found = true;
      result.failingLength = race.step + 1;
      return result;
    }
    result.ops += testCase.ops.length;
  }
  return result;
}

function summarize(trials: RaceTrial[], budgetOps: number): RaceModeSummary {
  const detected = trials.filter((t) => t.found).length;
  const budgetCases = Math.max(...trials.map((t) => t.cases));
  return {
    trials: trials.length,
    detected,
    rate: round(detected / trials.length, 3),
    restrictedMeanOps: round(restrictedMean(trials.map((t) => (t.found ? t.ops : undefined)), budgetOps)),
    // Misses count with the cases they ran (their whole budget).
    restrictedMeanCases: round(trials.reduce((sum, t) => sum + (t.found ? t.cases : Math.max(t.cases, budgetCases)), 0) / trials.length, 1),
    trialsDetail: trials,
  };
}

export async function benchRace(options: RaceBenchOptions): Promise<RaceBenchResult> {
  const oracles = await resolveOracles({ only: ['dma-liveness'] });
  const policies = await resolvePolicies(RACE_POLICIES.hostPolicy, RACE_POLICIES.guestPolicy);
  const run = (interleave: boolean): RaceTrial[] => Array.from({ length: options.seeds }, (_, i) => trial(i, interleave, options.budgetOps, oracles, policies));
  return {
    policies: RACE_POLICIES,
    seeds: options.seeds,
    budgetOps: options.budgetOps,
    on: summarize(run(true), options.budgetOps),
    off: summarize(run(false), options.budgetOps),
  };
}
