// Why plain fc.commands needs fewer ops than our generator to some planted bugs (issue 16): runs
// a fixed number of cases from each generator (never stopping at the bug, each case until its
// first violation) and reports, per bug and generator, the mean case length, the failing cases,
// the ops per failing case (the expected ops to the bug of independent cases), the distinct
// features per 1000 ops, where in a failing case the violation came (median step) and the ops per
// failing case by case length. Generators: ours (swarm, caseLength()), ours at fc.commands'
// lengths, without swarm, at a quarter of the length scale, without swarm at a quarter, with every
// kind at weight 1 (guided.ts's `uniform` arm) alone and at fc's lengths, and fast-check's op
// records (uniform over kinds, opArbitrary arguments) cut to fc.commands' lengths and to ours.
// `--generators` picks some, separated by `|`. Deterministic: op counts only.
//
//   node bin/run-ts.js bench/coverage-length.ts --cases 1000 --bugs greedy-mirror-after-conversions,no-cut-before-first-sync \
//     --generators "ours|ours uniform|fc ops fc lengths"

import fc from 'fast-check';
import { CoverageTracker } from '../src/engine/coverage.ts';
import { runCase } from '../src/engine/run.ts';
import { resolveOracles } from '../src/engine/select.ts';
import { DEFAULT_WEIGHTS, caseLength, caseSeed, generateCase } from '../src/ops/generate.ts';
import { anyOpArbitrary } from '../src/ops/arbitrary.ts';
import type { Case, Config, Op } from '../src/ops/types.ts';
import seedrandom from 'seedrandom';
import { BASELINE_MAX_COMMANDS, commandArbitraries } from './baseline-fc.ts';
import { WORKLOAD_STEPS, WORKLOAD_WEIGHTS, seed32 } from './common.ts';
import { plantedBug, plantedBugs, plantedConfig, plantedPolicies } from './planted/index.ts';

const flag = (name: string, fallback: string): string => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? (process.argv[at + 1] ?? fallback) : fallback;
};
const cases = Number(flag('cases', '2000'));
const defaultBugs = plantedBugs.filter((b) => b.class === 'deep' || b.class === 'swarm-suppressed').map((b) => b.flag as string);
const bugs = flag('bugs', defaultBugs.join(',')).split(',');
const oracles = await resolveOracles();
const only = process.argv.includes('--generators') ? flag('generators', '').split('|') : undefined;

/** The lengths fc.commands gives its command lists (size "max", the bench's setting), case by case. */
function fcLengths(config: Config, seed: string, count: number): number[] {
  const arbitrary = fc.commands(commandArbitraries(config), { maxCommands: BASELINE_MAX_COMMANDS, size: 'max' });
  return fc.sample(arbitrary, { seed: seed32(seed), numRuns: count }).map((commands) => [...commands].length);
}

/** fast-check's op records (uniform over kinds), cut into cases of the given lengths. */
function fcOps(config: Config, seed: string, lengths: readonly number[]): Op[][] {
  const total = lengths.reduce((a, b) => a + b, 0);
  const stream = fc.sample(anyOpArbitrary(config), { seed: seed32(`${seed}/ops`), numRuns: total });
  const out: Op[][] = [];
  let at = 0;
  for (const length of lengths) {
    out.push(stream.slice(at, at + length));
    at += length;
  }
  return out;
}

const BUCKETS = [8, 32, 64, 128, 256];
const bucketOf = (length: number): number => BUCKETS.findIndex((b) => length <= b);

console.log(`${cases} cases per generator and bug, each run to its first violation; ops/fail = ops run / failing cases`);
console.log(['bug', 'generator', 'mean len', 'failing', 'ops/fail', 'features/kop', 'median fail step', ...BUCKETS.map((b) => `len<=${b} ops/fail (cases)`)].join('\t'));
for (const name of bugs) {
  const bug = plantedBug(name);
  if (bug === undefined) throw new Error(`no planted bug "${name}"`);
  const config = plantedConfig(bug);
  const policies = plantedPolicies(bug.flag);
  const seed = `length/${name}`;
  const generate = { steps: WORKLOAD_STEPS, swarm: true, weights: WORKLOAD_WEIGHTS };
  const fcLens = fcLengths(config, seed, cases);
  const rng = seedrandom(`${seed}/our-lengths`);
  const ourLens = Array.from({ length: cases }, () => caseLength(rng, WORKLOAD_STEPS));
  const fcByFc = fcOps(config, seed, fcLens);
  const fcByOurs = fcOps(config, seed, ourLens);
  const uniform = Object.fromEntries(Object.keys(DEFAULT_WEIGHTS).map((k) => [k, 1]));
  const generators: Record<string, (i: number) => Case> = {
    ours: (i) => generateCase(config, caseSeed(seed, i), generate),
    'ours fc lengths': (i) => generateCase(config, caseSeed(seed, i), { ...generate, steps: Math.max(1, fcLens[i]!), fullLength: true }),
    'ours no swarm': (i) => generateCase(config, caseSeed(seed, i), { ...generate, swarm: false }),
    'ours steps/4': (i) => generateCase(config, caseSeed(seed, i), { ...generate, steps: WORKLOAD_STEPS / 4 }),
    'ours no swarm steps/4': (i) => generateCase(config, caseSeed(seed, i), { ...generate, swarm: false, steps: WORKLOAD_STEPS / 4 }),
    'ours uniform': (i) => generateCase(config, caseSeed(seed, i), { ...generate, weights: { ...uniform, ...WORKLOAD_WEIGHTS } }),
    'ours uniform fc lengths': (i) => generateCase(config, caseSeed(seed, i), { ...generate, weights: { ...uniform, ...WORKLOAD_WEIGHTS }, steps: Math.max(1, fcLens[i]!), fullLength: true }),
    'fc ops fc lengths': (i) => ({ config, seed: caseSeed(seed, i), ops: fcByFc[i]! }),
    'fc ops our lengths': (i) => ({ config, seed: caseSeed(seed, i), ops: fcByOurs[i]! }),
  };
  for (const [label, make] of Object.entries(generators)) {
    if (only !== undefined && !only.includes(label)) continue;
    const reached = new Set<string>();
    let ops = 0;
    let failing = 0;
    let length = 0;
    const steps: number[] = [];
    const buckets = BUCKETS.map(() => ({ ops: 0, failing: 0, cases: 0 }));
    for (let i = 0; i < cases; i++) {
      const testCase = make(i);
      if (testCase.ops.length === 0) continue;
      const tracker = new CoverageTracker();
      const run = runCase(testCase, policies, { oracles, onStep: (step, view) => tracker.observe(step, view) });
      for (const feature of tracker.features) reached.add(feature);
      const first = run.violations[0];
      const bucket = buckets[bucketOf(testCase.ops.length)]!;
      ops += run.stepsRun;
      length += testCase.ops.length;
      bucket.ops += run.stepsRun;
      bucket.cases++;
      if (first) {
        failing++;
        bucket.failing++;
        steps.push(first.step);
      }
    }
    steps.sort((a, b) => a - b);
    const ratio = (o: number, f: number): string => (f > 0 ? String(Math.round(o / f)) : '-');
    console.log(
      [
        name,
        label,
        (length / cases).toFixed(1),
        String(failing),
        ratio(ops, failing),
        ((reached.size * 1000) / Math.max(1, ops)).toFixed(1),
        steps.length > 0 ? String(steps[Math.floor(steps.length / 2)]) : '-',
        ...buckets.map((b) => `${ratio(b.ops, b.failing)} (${b.cases})`),
      ].join('\t'),
    );
  }
}
