// Behaviour coverage: what a step did, as coarse labels (the op kind with each primitive it called
// and that call's result class, each fault kind, a skip, the op's own result). Their union over a
// campaign is its behaviour coverage (the status line's and summary's `coverage` without guidance,
// plotted over time by the HTML report): flat means the generator has stopped reaching anything new.
//
// A label is built once per process and then looked up (names.ts, as the coverage signal's
// features are): a campaign labels every record of every step, and building the strings per step
// (a concatenation and a fresh hash for the Set per record) was 5.8% of a CLI campaign's CPU
// (`fuzz --runs 2000 --workers 1`, quiesce-dma + linux-2m-pool, node --cpu-prof) for a few dozen
// distinct labels.

import type { Step } from '../api.ts';
import { Names } from './names.ts';
import { faultKindOf, faultRecordsOf } from '../model/types.ts';

/**
 * A primitive's result as a class: return codes as they are, byte counts (io_map returns the bytes
 * mapped) by power of two, as AFL buckets hit counts, so coverage counts kinds of outcome rather
 * than every size a case happened to map.
 */
export function resultClass(result: number | string): string {
  if (typeof result !== 'number' || result <= 0 || result < 16) return String(result);
  return `2^${Math.floor(Math.log2(result))}`;
}

/** `${prim}=${resultClass(result)}` by prim and raw result, then each label by op and that key. */
const callKeys = new Names<number | string>();
const callKey = (prim: string, result: number | string): string => `${prim}=${resultClass(result)}`;
const callLabels = new Names<string>();
const callLabel = (op: string, key: string): string => `${op}>${key}`;
const faultLabels = new Names<string>();
const faultLabel = (op: string, kind: string): string => `${op}!${kind}`;
const skipLabels = new Names<string>();
const skipLabel = (op: string): string => `${op}:skipped`;

/** Adds the labels of what `step` did to `into`. */
export function stepBehaviours(step: Step, into: Set<string>): void {
  const op = step.op.op;
  if (step.skipped) into.add(skipLabels.get(op, '', skipLabel));
  // The op's own result is free text (sizes, addresses): few steps have one.
  if (step.result) into.add(`${op}=${step.result}`);
  // Per record: a run of calls (CallRun) shares one prim and result.
  for (const call of step.callRuns ?? step.calls) into.add(callLabels.get(op, callKeys.get(call.prim, call.result, callKey), callLabel));
  for (const fault of faultRecordsOf(step)) into.add(faultLabels.get(op, faultKindOf(fault), faultLabel));
}
