// Which arm finds a planted bug (issue 16): runs the coverage mode's trials (bench/bug-trials.ts's
// seeds, same loop) to the first violation and prints, per trial, the ops and cases it took and the
// arm of guided.ts that made the failing case; with --feature REGEX, also how many of the cases
// before it reached a feature matching REGEX (a situation the bug needs, to see whether the corpus
// reached it long before a case went on from it to the bug). Deterministic (op counts only).
//
//   node bin/run-ts.js bench/coverage-finds.ts --bug sync-repairs-missing-private-map --seeds 40 \
//     --feature 's2\.view=s2/run s2\.backed=(none|some)'

import { CoverageTracker } from '../src/engine/coverage.ts';
import { ARMS, type Arm, Guide } from '../src/engine/guided.ts';
import { runCase } from '../src/engine/run.ts';
import { resolveOracles } from '../src/engine/select.ts';
import { trialSeed } from './bug-trials.ts';
import { WORKLOAD_STEPS, WORKLOAD_WEIGHTS } from './common.ts';
import { plantedBug, plantedConfig, plantedPolicies } from './planted/index.ts';

const flag = (name: string, fallback: string): string => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? (process.argv[at + 1] ?? fallback) : fallback;
};
const name = flag('bug', 'sync-repairs-missing-private-map');
const seeds = Number(flag('seeds', '40'));
const budget = Number(flag('budget-ops', '20000'));
const pattern = flag('feature', '');
const feature = pattern === '' ? undefined : new RegExp(pattern);
const bug = plantedBug(name);
if (bug === undefined) throw new Error(`no planted bug "${name}"`);
const config = plantedConfig(bug);
const policies = plantedPolicies(bug.flag);
const oracles = await resolveOracles();

const found = Object.fromEntries(ARMS.map((arm) => [arm, 0])) as Record<Arm, number>;
let totalOps = 0;
let totalCases = 0;
let reached = 0;
console.log(['trial', 'found', 'ops', 'case', 'arm', ...(feature ? ['cases before it reaching --feature'] : [])].join('\t'));
for (let trial = 0; trial < seeds; trial++) {
  const seed = trialSeed(name, trial);
  const generate = { steps: WORKLOAD_STEPS, swarm: true, weights: WORKLOAD_WEIGHTS };
  const guide = new Guide({ config, seed, generate, oracleFiles: [], onlyOracles: [], minimizeBudget: 0, shard: { index: 0, count: 1 }, coverage: true });
  let ops = 0;
  let before = 0;
  let index = 0;
  let arm: Arm | undefined;
  let hit = false;
  for (; ops < budget; index++) {
    let testCase = guide.caseFor(index);
    if (testCase.ops.length > budget - ops) testCase = { ...testCase, ops: testCase.ops.slice(0, budget - ops) };
    arm = guide.armOf(index);
    const tracker = new CoverageTracker();
    const run = runCase(testCase, policies, { oracles, onStep: (step, view) => tracker.observe(step, view) });
    ops += run.stepsRun;
    if (run.violations.length > 0) {
      hit = true;
      break;
    }
    if (feature && [...tracker.features].some((f) => feature.test(f))) before++;
    guide.observe(testCase, [...tracker.features], run.verdict === 'clean', tracker.firstSteps, index);
  }
  totalOps += ops;
  totalCases += index;
  reached += before;
  if (hit && arm !== undefined) found[arm]++;
  console.log([trial, hit ? 'yes' : 'no', ops, index, hit ? arm : '-', ...(feature ? [before] : [])].join('\t'));
}
console.log(`RM ops ${Math.round(totalOps / seeds)}; found by arm: ${ARMS.map((arm) => `${arm} ${found[arm]}`).join(', ')}${feature ? `; ${reached} of the ${totalCases} cases before the findings reached --feature` : ''}`);
