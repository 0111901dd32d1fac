// Behaviour coverage: what a step did, as coarse labels (the op kind with each primitive it called
// and that call's result class, each fault kind, a skip, the op's own result). Their union over a
// campaign is its behaviour coverage (the status line's and summary's `coverage` without guidance,
// plotted over time by the HTML report): flat means the generator has stopped reaching anything new.
//
// A label is built once per process and then looked up: a campaign labels every record of every
// step, and building the strings per step (a concatenation and a fresh hash for the Set per
// record) was 5.8% of a CLI campaign's CPU (`fuzz --runs 2000 --workers 1`, quiesce-dma +
// linux-2m-pool, node --cpu-prof) for a few dozen distinct labels.

import type { Step } from '../api.ts';

/**
 * A primitive's result as a class: return codes as they are, byte counts (io_map returns the bytes
 * mapped) by power of two, as AFL buckets hit counts, so coverage counts kinds of outcome rather
 * than every size a case happened to map.
 */
export function resultClass(result: number | string): string {
  if (typeof result !== 'number' || result <= 0 || result < 16) return String(result);
  return `2^${Math.floor(Math.log2(result))}`;
}

/** The labels of one (op, prim): by the result itself, and by power of two for a byte count. */
interface ResultLabels {
  byValue: Map<number | string, string>;
  byPower: Map<number, string>;
}

/** `${op}>${prim}=${resultClass(result)}` by op and prim. */
const callLabels = new Map<string, Map<string, ResultLabels>>();
/** `${op}!${kind}` by op and fault kind, `${op}:skipped` by op. */
const faultLabels = new Map<string, Map<string, string>>();
const skipLabels = new Map<string, string>();

function callLabel(op: string, prim: string, result: number | string): string {
  let byPrim = callLabels.get(op);
  if (byPrim === undefined) callLabels.set(op, (byPrim = new Map<string, ResultLabels>()));
  let labels = byPrim.get(prim);
  if (labels === undefined) byPrim.set(prim, (labels = { byValue: new Map(), byPower: new Map() }));
  // The same split as resultClass().
  const power = typeof result === 'number' && result >= 16 ? Math.floor(Math.log2(result)) : undefined;
  const map: Map<number | string, string> = power === undefined ? labels.byValue : labels.byPower;
  const key = power ?? result;
  let label = map.get(key);
  if (label === undefined) map.set(key, (label = `${op}>${prim}=${resultClass(result)}`));
  return label;
}

function faultLabel(op: string, kind: string): string {
  let byKind = faultLabels.get(op);
  if (byKind === undefined) faultLabels.set(op, (byKind = new Map<string, string>()));
  let label = byKind.get(kind);
  if (label === undefined) byKind.set(kind, (label = `${op}!${kind}`));
  return label;
}

/** Adds the labels of what `step` did to `into`. */
export function stepBehaviours(step: Step, into: Set<string>): void {
  const op = step.op.op;
  if (step.skipped) {
    let label = skipLabels.get(op);
    if (label === undefined) skipLabels.set(op, (label = `${op}:skipped`));
    into.add(label);
  }
  // The op's own result is free text (sizes, addresses): few steps have one.
  if (step.result) into.add(`${op}=${step.result}`);
  // Per record: a run of calls (CallRun) shares one prim and result.
  for (const call of step.callRuns ?? step.calls) into.add(callLabel(op, call.prim, call.result));
  for (const fault of step.faults) into.add(faultLabel(op, fault.kind));
}
