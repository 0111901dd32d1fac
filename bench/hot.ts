// In-process throughput of the bench workload (bench/common.ts), every oracle on or none, for
// profiling a change to the core: run it under `node --cpu-prof` and compare against the same
// command on the parent commit in the same session (ratios, never absolute times: the machine is
// shared).
//
//   node --conditions=cocofuzz-source bin/run-ts.js bench/hot.ts [all|raw] [cases]

import { runCase } from '../src/engine/run.ts';
import { WORKLOAD_SEED, workloadCases, workloadConfig, workloadEngine } from './common.ts';

const mode = process.argv[2] ?? 'all';
const count = Number.parseInt(process.argv[3] ?? '400', 10);
const engine = await workloadEngine();
const cases = workloadCases(workloadConfig(), WORKLOAD_SEED, 0, count);
let ops = 0;
for (const c of cases) ops += c.ops.length;
const oracles = mode === 'raw' ? [] : engine.oracles;
let findings = 0;
const started = performance.now();
for (const c of cases) findings += runCase(c, engine.policies, { oracles }).violations.length;
const ms = performance.now() - started;
console.log(`${mode}: ${cases.length} cases, ${ops} ops, ${findings} findings, ${Math.round(ms)} ms, ${Math.round((ops * 1000) / ms)} ops/s`);
