// Shrinking a failing case the way syzkaller minimizes programs: drop chunks of ops (halves down to
// single ops, ddmin-style), then simplify each op's fields toward canonical values and its
// interleaved ops (`during`: drop entries, run them earlier, simplify the inner op), re-running the
// case each time, until nothing more can go or the budget runs out. Because references are indices
// resolved at run time, every candidate is a valid case.
//
// The algorithm is one generator that yields candidates and is told whether each still fails, so
// the same steps drive a synchronous predicate (minimizeCase) and one that has to wait for a worker
// (minimizeCaseAsync: candidates of a timed-out case run under the watchdog, timeout-shrink.ts).

import { SZ_2M } from '../model/size.ts';
import { OP_SPECS } from '../ops/schema.ts';
import type { Case, During, Op } from '../ops/types.ts';

export interface MinimizeOptions {
  /** Maximum number of candidate runs. */
  budget?: number;
}

export interface MinimizeResult {
  testCase: Case;
  runs: number;
}

/** Which kind of live object an op creates, and which fields refer to one. */
const CREATES: Partial<Record<Op['op'], 'buf' | 'map'>> = { alloc_coherent: 'buf', map_single: 'map' };

/**
 * References are positions among live objects, so dropping an op that created one shifts what
 * later references point at. After such a removal, this candidate decrements the later
 * references of that kind, so `alloc; alloc; dma buf=1` can lose its first alloc as
 * `alloc; dma buf=0`.
 */
function shiftReferences(ops: readonly Op[], from: number, removed: readonly Op[]): Op[] | undefined {
  const shifts = { buf: 0, map: 0 };
  for (const op of removed) {
    const kind = CREATES[op.op];
    if (kind) shifts[kind]++;
  }
  if (shifts.buf === 0 && shifts.map === 0) return undefined;
  const shift = <T extends object>(op: T): T => {
    const record = op as unknown as Record<string, unknown>;
    let next: Record<string, unknown> | undefined;
    for (const kind of ['buf', 'map'] as const) {
      const value = record[kind];
      if (typeof value === 'number' && shifts[kind] > 0 && value > 0) {
        next ??= { ...record };
        next[kind] = Math.max(0, value - shifts[kind]);
      }
    }
    return (next ?? op) as T;
  };
  return ops.map((op, index) => {
    if (index < from) return op;
    const shifted = shift(op);
    if (shifted.during === undefined) return shifted;
    return { ...shifted, during: shifted.during.map((entry) => ({ after: entry.after, op: shift(entry.op) })) };
  });
}

/** Simpler values for one field, most canonical first. */
function simplerValues(kind: string, value: unknown, optional: boolean): unknown[] {
  const out: unknown[] = [];
  if (optional) out.push(undefined);
  switch (kind) {
    case 'pages':
      if (value !== 1) out.push(1);
      break;
    case 'bytes':
      for (const candidate of [4096, 64]) if (typeof value === 'number' && candidate < value) out.push(candidate);
      break;
    case 'ref':
    case 'dev':
      if (value !== 0) out.push(0);
      break;
    case 'bool':
      if (value !== false) out.push(false);
      break;
    case 'addr':
      if (typeof value === 'number' && value % SZ_2M !== 0) out.push(value - (value % SZ_2M));
      break;
    case 'dir':
      if (value !== 'to_device') out.push('to_device');
      break;
  }
  return out;
}

/** A step of the search: yields a candidate, is told whether it still fails. */
type Search<T> = Generator<Case, T, boolean>;

/** Tries simpler values for each field of `op`; `take` runs a candidate and keeps it when it still fails. */
function* simplifyFields<T extends Op>(op: T, take: (next: T) => Search<boolean>): Search<void> {
  let current = op;
  const spec = OP_SPECS[op.op];
  for (const [field, fieldSpec] of Object.entries(spec.fields)) {
    const value = (current as unknown as Record<string, unknown>)[field];
    if (value === undefined) continue;
    // Keep exactly one of a oneOf group (dma: buf | map | iova).
    const optional = fieldSpec.optional === true && !spec.oneOf?.includes(field);
    for (const simpler of simplerValues(fieldSpec.kind, value, optional)) {
      const next = { ...current } as Record<string, unknown>;
      if (simpler === undefined) delete next[field];
      else next[field] = simpler;
      if (yield* take(next as unknown as T)) {
        current = next as unknown as T;
        break;
      }
    }
  }
}

/** Earlier points for an interleaved op, most aggressive first: before the op, half-way, one call earlier. */
function earlierAfters(after: number): number[] {
  return [...new Set([0, Math.floor(after / 2), after - 1])].filter((k) => k >= 0 && k < after).sort((a, b) => a - b);
}

/** Shrinks the `during` of the op `current()`: drop entries, run them earlier, simplify the inner ops. */
function* shrinkDuring(current: () => Op, take: (next: Op) => Search<boolean>, more: () => boolean): Search<void> {
  const withDuring = (during: During[]): Op => {
    const next = { ...current() };
    if (during.length === 0) delete next.during;
    else next.during = during;
    return next;
  };
  for (let j = (current().during?.length ?? 0) - 1; j >= 0 && more(); j--) {
    const during = current().during ?? [];
    yield* take(withDuring([...during.slice(0, j), ...during.slice(j + 1)]));
  }
  for (let j = 0; j < (current().during?.length ?? 0) && more(); j++) {
    for (const after of earlierAfters(current().during?.[j]?.after ?? 0)) {
      const during = [...(current().during ?? [])];
      during[j] = { ...during[j]!, after };
      if (yield* take(withDuring(during))) break;
    }
    const entry = current().during?.[j];
    if (entry === undefined) continue;
    yield* simplifyFields(entry.op, (inner) => {
      const during = [...(current().during ?? [])];
      during[j] = { after: during[j]!.after, op: inner };
      return take(withDuring(during));
    });
  }
}

export function minimizeCase(original: Case, fails: (candidate: Case) => boolean, options: MinimizeOptions = {}): MinimizeResult {
  const search = minimizeSearch(original, options.budget ?? 2000);
  for (let next = search.next(); ; ) {
    if (next.done) return next.value;
    next = search.next(fails(next.value));
  }
}

/** minimizeCase with a predicate that answers asynchronously (a candidate run on a worker). */
export async function minimizeCaseAsync(original: Case, fails: (candidate: Case) => Promise<boolean>, options: MinimizeOptions = {}): Promise<MinimizeResult> {
  const search = minimizeSearch(original, options.budget ?? 2000);
  for (let next = search.next(); ; ) {
    if (next.done) return next.value;
    next = search.next(await fails(next.value));
  }
}

function* minimizeSearch(original: Case, budget: number): Search<MinimizeResult> {
  let runs = 0;
  let ops = original.ops;
  function* attempt(candidate: Op[]): Search<boolean> {
    if (runs >= budget) return false;
    runs++;
    return yield { ...original, ops: candidate };
  }
  /** Drops ops[start, start + count); returns the smaller ops when the case still fails. */
  function* without(start: number, count: number): Search<Op[] | undefined> {
    const candidate = [...ops.slice(0, start), ...ops.slice(start + count)];
    if (yield* attempt(candidate)) return candidate;
    const shifted = shiftReferences(candidate, start, ops.slice(start, start + count));
    return shifted && (yield* attempt(shifted)) ? shifted : undefined;
  }

  // Drop chunks, largest first.
  for (let chunk = Math.max(1, Math.floor(ops.length / 2)); chunk >= 1 && runs < budget; chunk = Math.floor(chunk / 2)) {
    for (let start = ops.length - chunk; start >= 0 && runs < budget; start -= chunk) {
      const smaller = yield* without(start, chunk);
      if (smaller) ops = smaller;
    }
    if (chunk === 1) break;
  }
  // Single-op removal from the front (it catches ops freed by later removals), then fields
  // simplified toward canonical values and the interleaved ops; after a sweep that changed
  // something, both again: a simpler op can free another (an interleaved DMA moved to an earlier
  // call may no longer need the op that filled the IOTLB for it).
  let changed = true;
  while (changed && runs < budget) {
    for (let i = 0; i < ops.length && runs < budget; ) {
      const smaller = yield* without(i, 1);
      if (smaller) ops = smaller;
      else i++;
    }
    changed = false;
    for (let i = 0; i < ops.length && runs < budget; i++) {
      const index = i;
      function* replace(next: Op): Search<boolean> {
        const candidate = [...ops.slice(0, index), next, ...ops.slice(index + 1)];
        if (!(yield* attempt(candidate))) return false;
        ops = candidate;
        changed = true;
        return true;
      }
      yield* simplifyFields(ops[i]!, replace);
      // Re-read the op after each change: the previous candidate may have been taken.
      yield* shrinkDuring(() => ops[index]!, replace, () => runs < budget);
    }
  }
  return { testCase: { ...original, ops }, runs };
}
