// Coverage on/off ablation on the planted bugs (issue 16): the same trials (bench/bug-trials.ts,
// the same seeds per mode) with coverage guidance, plain swarm generation and the plain
// fc.commands harness, each until the first violation or a wall-clock budget. Reports, per bug and
// mode, the detection rate and the restricted mean time and ops to the bug (misses censored at
// the budget, FuzzBench-style), and fc's restricted mean over coverage's.
//
//   node bin/run-ts.js bench/coverage.ts --seeds 20 --budget-ms 60000 --jobs 2 \
//     --bugs repromote-after-round-trips,no-cut-before-first-sync --modes coverage,swarm,fc --out /tmp/cov.json

import { writeFileSync } from 'node:fs';
import type { TrialMode } from './bug-trials.ts';
import { benchPlantedBugs } from './bugs.ts';
import { plantedBugs } from './planted/index.ts';

const flag = (name: string, fallback: string): string => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? (process.argv[at + 1] ?? fallback) : fallback;
};
const seeds = Number(flag('seeds', '20'));
const budgetMs = Number(flag('budget-ms', '60000'));
// An op budget makes every figure but the times deterministic (with a --budget-ms too large to cut).
const budgetOps = Number(flag('budget-ops', String(Number.MAX_SAFE_INTEGER)));
const jobs = Number(flag('jobs', '2'));
const modes = flag('modes', 'coverage,swarm,fc').split(',') as TrialMode[];
const defaultBugs = plantedBugs.filter((b) => b.class === 'deep' || b.class === 'swarm-suppressed').map((b) => b.flag as string);
const bugs = flag('bugs', defaultBugs.join(',')).split(',');
const out = flag('out', '');

const started = Date.now();
const result = await benchPlantedBugs({
  seeds,
  budgetOps,
  budgetMs,
  shrinkTrials: 0,
  shrinkBudget: 0,
  jobs,
  chunksPerJob: 4,
  // Every chunk warms each mode up first (untimed), for a few seconds: 3,000 ops (what this was
  // before 2026-11-26, late) left V8 compiling through the first trials, and a coverage trial on
  // skip-invalidate took 73 ms in a fresh process against 25 ms warm (fc's: 583 and 550 ms).
  warmupMs: 4000,
  only: bugs,
  modes,
  onProgress: (done, total) => process.stderr.write(`\r${done}/${total} trials, ${Math.round((Date.now() - started) / 1000)}s`),
});
process.stderr.write('\n');
console.log(`seeds ${seeds}, budget ${budgetMs / 1000}s per trial, ${jobs} job(s); RM = restricted mean (misses count the whole budget), med ops = median ops to detection (miss: half the trials or more missed), RM ops = restricted mean ops (misses count the ops they ran)`);
console.log(['bug', ...modes.flatMap((m) => [`${m} found`, `${m} RM s`, `${m} med ops`, `${m} RM ops`, `${m} ops/s`]), 'fc/coverage RM time'].join('\t'));
for (const summary of result.summaries) {
  const cells = modes.flatMap((m) => {
    const s = summary.modes[m];
    return s ? [`${s.detected}/${s.trials}`, (s.restrictedMeanMs / 1000).toFixed(2), Number.isFinite(s.medianOps) ? String(s.medianOps) : 'miss', s.detected < s.trials && budgetOps === Number.MAX_SAFE_INTEGER ? '-' : String(Math.round(s.restrictedMeanOps)), String(Math.round(s.opsPerSec))] : ['-', '-', '-', '-', '-'];
  });
  const fc = summary.modes.fc;
  const coverage = summary.modes.coverage;
  const ratio = fc && coverage ? `${(fc.restrictedMeanMs / Math.max(1, coverage.restrictedMeanMs)).toFixed(2)}${fc.detected === 0 ? ' (fc found none: lower bound)' : ''}` : '-';
  console.log([summary.bug, ...cells, ratio].join('\t'));
}
if (out) writeFileSync(out, `${JSON.stringify({ seeds, budgetMs, jobs, modes, bugs, summaries: result.summaries, trials: result.trials }, null, 1)}\n`);
