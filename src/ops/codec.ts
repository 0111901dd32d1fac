// Parse, validate and encode ops with the one table in schema.ts. Files spell addresses in hex and
// sizes as "4K"/"2M"; inside, everything is a number of bytes.

import { SZ_4K, hex, parseAddress, parseSize } from '../model/size.ts';
import { FormatError } from './errors.ts';
import { DURING, type FieldKind, OP_SPECS } from './schema.ts';
import type { Config, During, InnerOp, Op } from './types.ts';

const MAX_PAGES = 1 << 20;
const MAX_BYTES = 2 ** 40;

function parseField(kind: FieldKind, raw: unknown, field: string, config: Config | undefined): unknown {
  const fail = (expected: string): never => {
    throw new FormatError(field, `expected ${expected}, got ${JSON.stringify(raw)}`);
  };
  switch (kind) {
    case 'addr': {
      const value = typeof raw === 'string' || typeof raw === 'number' ? parseAddress(raw) : undefined;
      if (value === undefined || value % SZ_4K !== 0) return fail('a 4K-aligned hex address like "0x200000"');
      return value;
    }
    case 'iova': {
      const value = typeof raw === 'string' || typeof raw === 'number' ? parseAddress(raw) : undefined;
      return value ?? fail('a hex address like "0x200000"');
    }
    case 'pagesize':
      return raw === '4K' || raw === '2M' ? raw : fail('"4K" or "2M"');
    case 'pages':
      return Number.isInteger(raw) && (raw as number) >= 1 && (raw as number) <= MAX_PAGES ? raw : fail(`a page count from 1 to ${MAX_PAGES}`);
    case 'bytes': {
      const value = typeof raw === 'string' || typeof raw === 'number' ? parseSize(raw) : undefined;
      return value !== undefined && value <= MAX_BYTES ? value : fail('a byte count like 4096 or "4K"');
    }
    case 'bool':
      return typeof raw === 'boolean' ? raw : fail('true or false');
    case 'dev': {
      if (!Number.isInteger(raw) || (raw as number) < 0) return fail('a device id');
      if (config && (raw as number) >= config.devices.length) {
        throw new FormatError(field, `no device ${String(raw)}: the config has ${config.devices.length}`);
      }
      return raw;
    }
    case 'ref':
    case 'asid':
      return Number.isInteger(raw) && (raw as number) >= 0 ? raw : fail('a non-negative integer');
    case 'dir':
      return raw === 'to_device' || raw === 'from_device' || raw === 'bidirectional' ? raw : fail('"to_device", "from_device" or "bidirectional"');
    case 'table':
      return raw === 'npt' || raw === 'iommu' ? raw : fail('"npt" or "iommu"');
    case 'align': {
      const value = typeof raw === 'string' || typeof raw === 'number' ? parseSize(raw) : undefined;
      const powerOfTwo = value !== undefined && value > 0 && 2 ** Math.round(Math.log2(value)) === value;
      return powerOfTwo ? value : fail('a power-of-two alignment like 4096 or "2M"');
    }
  }
}

/** The `during` list of a top-level op: `[{ after: K, op: <dma or touch> }, ...]`. */
function parseDuring(raw: unknown, field: string, config: Config | undefined): During[] {
  if (!Array.isArray(raw)) throw new FormatError(field, 'expected an array of { after, op } entries');
  return raw.map((entry: unknown, index) => {
    const at = `${field}[${index}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new FormatError(at, 'expected an object { after, op }');
    const record = entry as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (key !== 'after' && key !== 'op') throw new FormatError(`${at}.${key}`, 'unknown field (an interleaved entry has "after" and "op")');
    }
    const after = record.after;
    if (!Number.isInteger(after) || (after as number) < 0 || (after as number) > DURING.maxAfter) {
      throw new FormatError(`${at}.after`, `expected a primitive-call count from 0 to ${DURING.maxAfter}, got ${JSON.stringify(after)}`);
    }
    if (record.op === undefined) throw new FormatError(`${at}.op`, 'missing (the interleaved dma or touch op)');
    const inner = record.op as Record<string, unknown> | null;
    const name = typeof inner === 'object' && inner !== null ? inner.op : undefined;
    if (typeof name === 'string' && Object.hasOwn(OP_SPECS, name) && !(DURING.innerOps as readonly string[]).includes(name)) {
      throw new FormatError(`${at}.op.op`, `op "${name}" cannot be interleaved (only ${DURING.innerOps.join(' and ')})`);
    }
    const op = parseOp(record.op, `${at}.op`, config, true) as InnerOp;
    return { after: after as number, op };
  });
}

/**
 * Validates one op of a repro file; `field` is its path (`ops[3]`) for error messages. `inner`:
 * the op sits inside another op's `during`, where `during` itself is not allowed.
 */
export function parseOp(raw: unknown, field: string, config?: Config, inner = false): Op {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new FormatError(field, 'expected an object with an "op" field');
  const record = raw as Record<string, unknown>;
  const name = record.op;
  if (typeof name !== 'string' || !Object.hasOwn(OP_SPECS, name)) {
    throw new FormatError(`${field}.op`, `unknown op ${JSON.stringify(name)}`);
  }
  const spec = OP_SPECS[name as Op['op']];
  const op: Record<string, unknown> = { op: name };
  for (const key of Object.keys(record)) {
    if (key === 'during') {
      if (inner) throw new FormatError(`${field}.during`, 'an interleaved op cannot carry "during"');
      continue;
    }
    if (key !== 'op' && !Object.hasOwn(spec.fields, key)) throw new FormatError(`${field}.${key}`, `unknown field for op "${name}"`);
  }
  for (const [key, fieldSpec] of Object.entries(spec.fields)) {
    const value = record[key];
    if (value === undefined) {
      if (!fieldSpec.optional) throw new FormatError(`${field}.${key}`, `missing (op "${name}" needs it)`);
      continue;
    }
    op[key] = parseField(fieldSpec.kind, value, `${field}.${key}`, config);
  }
  if (spec.oneOf) {
    const present = spec.oneOf.filter((key) => op[key] !== undefined);
    if (present.length !== 1) throw new FormatError(field, `op "${name}" needs exactly one of ${spec.oneOf.join(', ')}`);
  }
  if (record.during !== undefined) op.during = parseDuring(record.during, `${field}.during`, config);
  return op as unknown as Op;
}

/** The JSON form of an op, in the field order of the schema. */
export function encodeOp(op: Op): Record<string, unknown> {
  const spec = OP_SPECS[op.op];
  const out: Record<string, unknown> = { op: op.op };
  const record = op as unknown as Record<string, unknown>;
  for (const [key, fieldSpec] of Object.entries(spec.fields)) {
    const value = record[key];
    if (value === undefined) continue;
    out[key] = fieldSpec.kind === 'addr' || fieldSpec.kind === 'iova' ? hex(value as number) : value;
  }
  if (op.during !== undefined && op.during.length > 0) out.during = op.during.map((entry) => ({ after: entry.after, op: encodeOp(entry.op) }));
  return out;
}

/** One line per op, for traces and explain: `accept gpa=0x200000 size=2M`. */
export function formatOp(op: Op): string {
  const encoded = encodeOp(op);
  const parts = Object.entries(encoded)
    .filter(([key]) => key !== 'op' && key !== 'during')
    .map(([key, value]) => `${key}=${String(value)}`);
  const during = (op.during ?? []).map((entry) => `after ${entry.after}: ${formatOp(entry.op)}`);
  if (during.length > 0) parts.push(`during=[${during.join('; ')}]`);
  return [op.op, ...parts].join(' ');
}
