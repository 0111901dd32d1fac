// CPU per op of each trial mode (issue 16): the coverage signal's cost against plain swarm and
// fc, measured where wall-clock times are not (a shared, loaded machine): the same trials as
// bench/coverage.ts, one after the other in this process (after one untimed warm-up trial per
// mode on the control), with process.cpuUsage() around each mode. Op counts are deterministic.
//
//   node bin/run-ts.js bench/coverage-cpu.ts --bugs no-cut-before-first-sync --seeds 40 --modes swarm,coverage,fc

import { resolveOracles } from '../src/engine/select.ts';
import { type TrialMode, runTrial } from './bug-trials.ts';
import { CONTROL } from './planted/index.ts';

const flag = (name: string, fallback: string): string => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? (process.argv[at + 1] ?? fallback) : fallback;
};
const seeds = Number(flag('seeds', '40'));
const budgetOps = Number(flag('budget-ops', '20000'));
const modes = flag('modes', 'swarm,coverage,fc').split(',') as TrialMode[];
const bugs = flag('bugs', 'no-cut-before-first-sync').split(',');
const oracles = await resolveOracles();

console.log(['bug', 'mode', 'trials found', 'ops', 'cpu ms', 'us/op'].join('\t'));
for (const bug of bugs) {
  for (const mode of modes) {
    runTrial({ bug: CONTROL, mode, trial: -1, budgetOps: 3000, budgetMs: Number.MAX_SAFE_INTEGER, shrinkBudget: 0 }, oracles);
    let ops = 0;
    let found = 0;
    const before = process.cpuUsage();
    for (let trial = 0; trial < seeds; trial++) {
      const result = runTrial({ bug, mode, trial, budgetOps, budgetMs: Number.MAX_SAFE_INTEGER, shrinkBudget: 0 }, oracles);
      ops += result.ops;
      if (result.found) found++;
    }
    const cpu = process.cpuUsage(before);
    const us = cpu.user + cpu.system;
    console.log([bug, mode, `${found}/${seeds}`, String(ops), String(Math.round(us / 1000)), (us / Math.max(1, ops)).toFixed(1)].join('\t'));
  }
}
