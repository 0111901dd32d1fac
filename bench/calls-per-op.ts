// Where raw replay's time goes (issue 15): the primitive calls each op kind of the bench workload
// records, and how many records would remain if consecutive calls that differ only by addresses
// advancing at a fixed stride (same primitive, same result, same other arguments) were kept as one
// run, and if a block of up to 4 calls repeated that way (a per-page loop: PVALIDATE, #NPF, NPT map,
// PVALIDATE again) were one record. Every recorded call is a point `during.after` may name
// (DESIGN.md "Operations"), so a core that records runs instead of calls must still number the
// calls inside them.
//
//   node --conditions=cocofuzz-source bin/run-ts.js bench/calls-per-op.ts [cases]

import type { PrimitiveCall } from '../src/api.ts';
import { runCase } from '../src/engine/run.ts';
import { WORKLOAD_SEED, workloadCases, workloadConfig, workloadEngine } from './common.ts';

const count = Number.parseInt(process.argv[2] ?? '800', 10);
const engine = await workloadEngine();
const cases = workloadCases(workloadConfig(), WORKLOAD_SEED, 0, count);

/** The per-argument step from `prev` to `call`, or undefined when they cannot share a run. */
function strideOf(prev: PrimitiveCall, call: PrimitiveCall): string | undefined {
  if (prev.prim !== call.prim || prev.result !== call.result || prev.during !== call.during) return undefined;
  const keys = Object.keys(call.args);
  if (keys.length !== Object.keys(prev.args).length) return undefined;
  const steps: number[] = [];
  for (const key of keys) {
    const a = prev.args[key];
    const b = call.args[key];
    if (a === b) steps.push(0);
    else if (typeof a === 'number' && typeof b === 'number') steps.push(b - a);
    else return undefined;
  }
  return steps.join(',');
}

/** Records left when each repetition of a block of `period` calls at fixed strides is one record. */
function periodicRecords(calls: readonly PrimitiveCall[], maxPeriod: number): number {
  let records = 0;
  let i = 0;
  while (i < calls.length) {
    let best = 1;
    let bestPeriod = 1;
    for (let period = 1; period <= maxPeriod && i + 2 * period <= calls.length; period++) {
      // Repetitions of calls[i, i + period): each call at the same stride from its predecessor block.
      const strides: (string | undefined)[] = [];
      let reps = 1;
      for (let at = i + period; at + period <= calls.length; at += period) {
        let same = true;
        for (let k = 0; k < period && same; k++) {
          const stride = strideOf(calls[at - period + k]!, calls[at + k]!);
          if (stride === undefined || (strides[k] !== undefined && strides[k] !== stride)) same = false;
          else strides[k] = stride;
        }
        if (!same) break;
        reps++;
      }
      if (reps * period > best * bestPeriod) {
        best = reps;
        bestPeriod = period;
      }
    }
    records++;
    i += best * bestPeriod;
  }
  return records;
}

let blocks = 0;
const byOp = new Map<string, { ops: number; calls: number; records: number }>();
let records = 0;
const byPrim = new Map<string, { calls: number; runs: number }>();
let ops = 0;
let calls = 0;
let runs = 0;
for (const testCase of cases) {
  runCase(testCase, engine.policies, {
    oracles: [],
    onStep: (step) => {
      ops++;
      calls += step.calls.length;
      const kind = byOp.get(step.op.op) ?? { ops: 0, calls: 0, records: 0 };
      kind.ops++;
      kind.calls += step.calls.length;
      kind.records += (step.callRuns ?? step.calls).length;
      records += (step.callRuns ?? step.calls).length;
      byOp.set(step.op.op, kind);
      blocks += periodicRecords(step.calls, 4);
      let prev: PrimitiveCall | undefined;
      let stride: string | undefined;
      for (const call of step.calls) {
        const next = prev === undefined ? undefined : strideOf(prev, call);
        const extends_ = next !== undefined && (stride === undefined || stride === next);
        stride = extends_ ? next : undefined;
        const prim = byPrim.get(call.prim) ?? { calls: 0, runs: 0 };
        prim.calls++;
        if (!extends_) {
          prim.runs++;
          runs++;
        }
        byPrim.set(call.prim, prim);
        prev = call;
      }
    },
  });
}
const fixed = (n: number): string => n.toFixed(1);
console.log(`${cases.length} cases, ${ops} ops, ${calls} primitive calls (${fixed(calls / ops)} per op), ${runs} runs (${fixed(calls / runs)} calls per run), ${blocks} repeated blocks of <= 4 calls (${fixed(calls / blocks)} calls per record)`);
console.log(`the recorder kept ${records} records (${fixed(records / ops)} per op; Step.callRuns: a run of calls is one record)`);
console.log('\nop kind          ops     calls  per op  records per op');
for (const [kind, v] of [...byOp].sort((a, b) => b[1].calls - a[1].calls)) console.log(`${kind.padEnd(15)} ${String(v.ops).padStart(5)} ${String(v.calls).padStart(9)} ${fixed(v.calls / v.ops).padStart(7)} ${fixed(v.records / v.ops).padStart(15)}`);
console.log('\nprimitive        calls     runs  calls per run');
for (const [prim, v] of [...byPrim].sort((a, b) => b[1].calls - a[1].calls)) console.log(`${prim.padEnd(14)} ${String(v.calls).padStart(7)} ${String(v.runs).padStart(8)} ${fixed(v.calls / v.runs).padStart(14)}`);
