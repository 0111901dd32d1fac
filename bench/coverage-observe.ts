// What the coverage signal costs per step (issue 16: "computed cheaply by the engine"): the bench
// workload's cases replayed with a CoverageTracker observing every step, the tracker's own time
// measured around each observe() call, after warm-up passes. Also prints the features reached, so
// a change meant only to make the signal cheaper can show it reaches the same ones.
//
//   node --conditions=cocofuzz-source bin/run-ts.js bench/coverage-observe.ts [--cases 200] [--passes 20]

import { CoverageTracker } from '../src/engine/coverage.ts';
import { runCase } from '../src/engine/run.ts';
import { resolvePolicies } from '../src/engine/select.ts';
import { WORKLOAD_SEED, workloadCases, workloadConfig } from './common.ts';

const flag = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
};
const WARM_PASSES = 10;
const config = workloadConfig();
const cases = workloadCases(config, WORKLOAD_SEED, 0, flag('cases', 200));
const policies = await resolvePolicies(config.hostPolicy, config.guestPolicy);
let observeMs = 0;
let steps = 0;
let features = 0;
const passes = flag('passes', 20);
for (let pass = 0; pass < WARM_PASSES + passes; pass++) {
  const measured = pass >= WARM_PASSES;
  for (const testCase of cases) {
    const tracker = new CoverageTracker();
    runCase(testCase, policies, {
      oracles: [],
      onStep: (step, view) => {
        const started = performance.now();
        tracker.observe(step, view);
        if (!measured) return;
        observeMs += performance.now() - started;
        steps++;
      },
    });
    if (measured) features += tracker.features.size;
  }
}
console.log(`observe(): ${((1000 * observeMs) / steps).toFixed(2)} us a step over ${steps} steps (${passes} passes of ${cases.length} cases); ${features / passes} features per pass`);
