// In-process throughput of the bench workload (bench/common.ts), every oracle on or none, for
// profiling a change to the core: run it under `node --cpu-prof` and compare against the same
// command on the parent commit in the same session (ratios, never absolute times: the machine is
// shared).
//
//   node --conditions=cocofuzz-source bin/run-ts.js bench/hot.ts [all|raw|ORACLE,...] [cases]
//
// A comma-separated list of oracle names runs only those (one oracle's cost is its run minus raw).

import { runCase } from '../src/engine/run.ts';
import { WORKLOAD_SEED, workloadCases, workloadConfig, workloadEngine } from './common.ts';

const mode = process.argv[2] ?? 'all';
const count = Number.parseInt(process.argv[3] ?? '400', 10);
const engine = await workloadEngine();
const cases = workloadCases(workloadConfig(), WORKLOAD_SEED, 0, count);
let ops = 0;
for (const c of cases) ops += c.ops.length;
const only = mode === 'all' || mode === 'raw' ? undefined : new Set(mode.split(','));
const oracles = mode === 'raw' ? [] : only === undefined ? engine.oracles : engine.oracles.filter((o) => only.has(o.name));
if (only !== undefined && oracles.length !== only.size) throw new Error(`bench/hot.ts: unknown oracle in ${mode}`);
let findings = 0;
const started = performance.now();
for (const c of cases) findings += runCase(c, engine.policies, { oracles }).violations.length;
const ms = performance.now() - started;
console.log(`${mode}: ${cases.length} cases, ${ops} ops, ${findings} findings, ${Math.round(ms)} ms, ${Math.round((ops * 1000) / ms)} ops/s`);
