// Where guided cases pay (issue 16): runs the coverage mode of the planted-bug trials for a fixed
// number of cases without stopping at the bug, and reports per bug, for fresh cases and for cases
// derived from the corpus (havoc, continue, remix together), the ops run, the failing cases, ops
// per failing case and new features per 1000 ops, plus each arm's yield as the guide measured it
// and, per arm, the ops its cases ran per failing case. Deterministic (op counts only): the
// evidence for the arm schedule of guided.ts.
//
//   node bin/run-ts.js bench/coverage-arms.ts --seeds 4 --cases 300

import { CoverageTracker } from '../src/engine/coverage.ts';
import { ARMS, Guide } from '../src/engine/guided.ts';
import { runCase } from '../src/engine/run.ts';
import { resolveOracles } from '../src/engine/select.ts';
import { caseSeed } from '../src/ops/generate.ts';
import { trialSeed } from './bug-trials.ts';
import { WORKLOAD_STEPS, WORKLOAD_WEIGHTS } from './common.ts';
import { plantedBug, plantedBugs, plantedConfig, plantedPolicies } from './planted/index.ts';

const flag = (name: string, fallback: string): string => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? (process.argv[at + 1] ?? fallback) : fallback;
};
const seeds = Number(flag('seeds', '4'));
const cases = Number(flag('cases', '300'));
const defaultBugs = plantedBugs.filter((b) => b.class === 'deep' || b.class === 'swarm-suppressed').map((b) => b.flag as string);
const bugs = flag('bugs', defaultBugs.join(',')).split(',');
const oracles = await resolveOracles();

console.log(`${seeds} seed(s) x ${cases} cases per bug, coverage mode, not stopping at the bug; per 1000 ops: new features`);
console.log(
  ['bug', 'fresh ops', 'fresh failing', 'fresh ops/failing', 'fresh feat/kop', 'derived ops', 'derived failing', 'derived ops/failing', 'derived feat/kop', ...ARMS.map((a) => `${a} feat/kop`), ...ARMS.map((a) => `${a} cases, ops/failing`)].join(
    '\t',
  ),
);
for (const name of bugs) {
  const bug = plantedBug(name);
  if (bug === undefined) throw new Error(`no planted bug "${name}"`);
  const config = plantedConfig(bug);
  const policies = plantedPolicies(bug.flag);
  const sums = { fresh: { ops: 0, failing: 0, features: 0 }, derived: { ops: 0, failing: 0, features: 0 } };
  const arms = Object.fromEntries(ARMS.map((a) => [a, { features: 0, ops: 0, cases: 0, runOps: 0, failing: 0 }]));
  for (let trial = 0; trial < seeds; trial++) {
    const seed = trialSeed(name, trial);
    const generate = { steps: WORKLOAD_STEPS, swarm: true, weights: WORKLOAD_WEIGHTS };
    const guide = new Guide({ config, seed, generate, oracleFiles: [], onlyOracles: [], minimizeBudget: 0, shard: { index: 0, count: 1 }, coverage: true });
    for (let index = 0; index < cases; index++) {
      const testCase = guide.caseFor(index);
      const arm = guide.armOf(index);
      // A fresh case is the generator's case of its own seed; every derived one has another.
      const sum = testCase.seed === caseSeed(seed, index) ? sums.fresh : sums.derived;
      const tracker = new CoverageTracker();
      const run = runCase(testCase, policies, { oracles, onStep: (step, view) => tracker.observe(step, view) });
      let fresh = 0;
      for (const feature of tracker.features) if (!guide.counts.has(feature)) fresh++;
      guide.observe(testCase, [...tracker.features], run.verdict === 'clean', tracker.firstSteps, index);
      sum.ops += run.stepsRun;
      sum.features += fresh;
      if (run.violations.length > 0) sum.failing++;
      if (arm !== undefined) {
        arms[arm]!.cases++;
        arms[arm]!.runOps += run.stepsRun;
        if (run.violations.length > 0) arms[arm]!.failing++;
      }
    }
    for (const arm of ARMS) {
      arms[arm]!.features += guide.yields[arm].features;
      arms[arm]!.ops += guide.yields[arm].ops;
    }
  }
  const cells = (s: { ops: number; failing: number; features: number }): string[] => [
    String(s.ops),
    String(s.failing),
    s.failing > 0 ? String(Math.round(s.ops / s.failing)) : '-',
    ((s.features * 1000) / Math.max(1, s.ops)).toFixed(1),
  ];
  const perArm = ARMS.map((a) => `${arms[a]!.cases}, ${arms[a]!.failing > 0 ? Math.round(arms[a]!.runOps / arms[a]!.failing) : '-'}`);
  console.log([name, ...cells(sums.fresh), ...cells(sums.derived), ...ARMS.map((a) => ((arms[a]!.features * 1000) / Math.max(1, arms[a]!.ops)).toFixed(1)), ...perArm].join('\t'));
}
