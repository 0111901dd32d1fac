// How many seeds find each planted bug within a wall-clock budget (the issue's "found within 60 s
// in 20 of 20 seeds"), with the campaign generator (swarm on, default --steps) in this one
// process, one trial after another (no parallelism, so the figure is one core's). Prints one line
// per bug: detections, median and slowest time to detection, the oracles that fired and the
// buckets (signature()) of every finding, shrunk ones included.
//
//   node bin/run-ts.js bench/seeds-within.ts --bugs unpin-before-flush,sizem-ignored --seeds 20 --budget 60s
//   node bin/run-ts.js bench/seeds-within.ts --seeds 3 --budget 20s --shrink 300     # every bug
//   node bin/run-ts.js bench/seeds-within.ts --bugs skip-invalidate-on-private --only-oracle dma-after-free

import { parseArgs } from 'node:util';
import { type TrialResult, runTrial } from './bug-trials.ts';
import { plantedBugs } from './planted/index.ts';
import { resolveOracles } from '../src/engine/select.ts';

const { values } = parseArgs({
  options: {
    bugs: { type: 'string' },
    seeds: { type: 'string', default: '20' },
    budget: { type: 'string', default: '60s' },
    shrink: { type: 'string', default: '0' },
    'first-seed': { type: 'string', default: '0' },
    'only-oracle': { type: 'string', multiple: true },
  },
});
const seeds = Number.parseInt(values.seeds ?? '20', 10);
const first = Number.parseInt(values['first-seed'] ?? '0', 10);
const budgetMs = Number.parseFloat(values.budget ?? '60') * (String(values.budget).endsWith('m') ? 60_000 : 1000);
const shrinkBudget = Number.parseInt(values.shrink ?? '0', 10);
const names = values.bugs ? values.bugs.split(',') : plantedBugs.map((b) => b.flag as string);
const oracles = await resolveOracles({ only: values['only-oracle'] ?? [] });

for (const bug of names) {
  const results: TrialResult[] = [];
  for (let trial = first; trial < first + seeds; trial++) {
    results.push(runTrial({ bug, mode: 'swarm', trial, budgetOps: Number.MAX_SAFE_INTEGER, budgetMs, shrinkBudget }, oracles));
  }
  const found = results.filter((r) => r.found);
  const times = found.map((r) => r.ms / 1000).sort((a, b) => a - b);
  const median = times.length === 0 ? '-' : (times[Math.floor((times.length - 1) / 2)] ?? 0).toFixed(1);
  const oracleCounts: Record<string, number> = {};
  for (const r of found) if (r.oracle) oracleCounts[r.oracle] = (oracleCounts[r.oracle] ?? 0) + 1;
  const buckets = new Set<string>();
  for (const r of found) {
    if (r.signature) buckets.add(r.signature);
    if (r.shrunk) buckets.add(r.shrunk.signature);
  }
  console.log(
    `${bug}: ${found.length}/${results.length} within ${budgetMs / 1000}s; median ${median}s, slowest ${times.length ? (times[times.length - 1] ?? 0).toFixed(1) : '-'}s; ` +
      `ops to detection median ${found.length ? found.map((r) => r.ops).sort((a, b) => a - b)[Math.floor((found.length - 1) / 2)] : '-'}; ` +
      `oracles ${JSON.stringify(oracleCounts)}; ${buckets.size} bucket(s): ${[...buckets].join(' ; ')}`,
  );
}
