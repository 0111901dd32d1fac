// Shrinking a failing case the way syzkaller minimizes programs: drop chunks of ops (halves down to
// single ops, ddmin-style), then simplify each op's fields toward canonical values, re-running the
// case each time, until nothing more can go or the budget runs out. Because references are indices
// resolved at run time, every candidate is a valid case.

import { SZ_2M } from '../model/size.ts';
import { OP_SPECS } from '../ops/schema.ts';
import type { Case, Op } from '../ops/types.ts';

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
  return ops.map((op, index) => {
    if (index < from) return op;
    const record = op as unknown as Record<string, unknown>;
    let next: Record<string, unknown> | undefined;
    for (const kind of ['buf', 'map'] as const) {
      const value = record[kind];
      if (typeof value === 'number' && shifts[kind] > 0 && value > 0) {
        next ??= { ...record };
        next[kind] = Math.max(0, value - shifts[kind]);
      }
    }
    return (next ?? op) as Op;
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

export function minimizeCase(original: Case, fails: (candidate: Case) => boolean, options: MinimizeOptions = {}): MinimizeResult {
  const budget = options.budget ?? 2000;
  let runs = 0;
  let ops = original.ops;
  const attempt = (candidate: Op[]): boolean => {
    if (runs >= budget) return false;
    runs++;
    return fails({ ...original, ops: candidate });
  };
  /** Drops ops[start, start + count); returns the smaller ops when the case still fails. */
  const without = (start: number, count: number): Op[] | undefined => {
    const candidate = [...ops.slice(0, start), ...ops.slice(start + count)];
    if (attempt(candidate)) return candidate;
    const shifted = shiftReferences(candidate, start, ops.slice(start, start + count));
    return shifted && attempt(shifted) ? shifted : undefined;
  };

  // Drop chunks, largest first.
  for (let chunk = Math.max(1, Math.floor(ops.length / 2)); chunk >= 1 && runs < budget; chunk = Math.floor(chunk / 2)) {
    for (let start = ops.length - chunk; start >= 0 && runs < budget; start -= chunk) {
      const smaller = without(start, chunk);
      if (smaller) ops = smaller;
    }
    if (chunk === 1) break;
  }
  // A last pass of single-op removal from the front catches ops freed by later removals.
  for (let i = 0; i < ops.length && runs < budget; ) {
    const smaller = without(i, 1);
    if (smaller) ops = smaller;
    else i++;
  }
  // Simplify fields toward canonical values.
  let changed = true;
  while (changed && runs < budget) {
    changed = false;
    for (let i = 0; i < ops.length && runs < budget; i++) {
      for (const [field, spec] of Object.entries(OP_SPECS[ops[i]!.op].fields)) {
        // Re-read the op: an earlier field of it may have been simplified already.
        const op = ops[i]!;
        const current = (op as unknown as Record<string, unknown>)[field];
        if (current === undefined) continue;
        // Keep exactly one of a oneOf group (dma: buf | map | iova).
        const optional = spec.optional === true && !OP_SPECS[op.op].oneOf?.includes(field);
        for (const value of simplerValues(spec.kind, current, optional)) {
          const next = { ...op } as Record<string, unknown>;
          if (value === undefined) delete next[field];
          else next[field] = value;
          const candidate = [...ops.slice(0, i), next as unknown as Op, ...ops.slice(i + 1)];
          if (attempt(candidate)) {
            ops = candidate;
            changed = true;
            break;
          }
        }
      }
    }
  }
  return { testCase: { ...original, ops }, runs };
}
