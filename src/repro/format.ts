// The repro file, `cocofuzz-repro/1` (DESIGN.md, "Repro file"): a case (config, seed, explicit ops)
// plus what it is expected to do. Users commit these, so unknown fields and ops are errors that
// name the op index and field, and files are written atomically.

import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { encodeConfig, parseConfig } from '../ops/config.ts';
import { encodeOp, parseOp } from '../ops/codec.ts';
import { FormatError } from '../ops/errors.ts';
import type { Case } from '../ops/types.ts';
import { escapeJsonText } from '../report/escape.ts';
import { looksLikeFile, pluginPathForRepro } from './plugin-paths.ts';

export const REPRO_FORMAT = 'cocofuzz-repro/1';

export type Expectation = { verdict: 'clean' } | { verdict: 'violation'; oracle: string; step?: number };

export interface Repro extends Case {
  title: string;
  expect?: Expectation;
  /**
   * User oracle files the verdict needs (the campaign's `--oracle` files, or the oracle objects
   * fuzzProperty was given with `module: import.meta.url`), relative to the repro file: replay
   * loads them, from inside the repro's directory tree only (see plugin-paths.ts).
   */
  oracles?: string[];
  /** The file it was read from (not written): policy files it names are looked up beside it. */
  source?: string;
}

// `$schema` lets editors validate the file against schema/repro.schema.json; it is not data.
const TOP_FIELDS = new Set(['$schema', 'format', 'title', 'config', 'seed', 'ops', 'expect', 'oracles']);

function parseExpect(raw: unknown): Expectation {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new FormatError('expect', 'expected an object');
  const record = raw as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!['verdict', 'oracle', 'step'].includes(key)) throw new FormatError(`expect.${key}`, 'unknown field');
  }
  if (record.verdict === 'clean') {
    if (record.oracle !== undefined) throw new FormatError('expect.oracle', 'a clean verdict names no oracle');
    return { verdict: 'clean' };
  }
  if (record.verdict !== 'violation') throw new FormatError('expect.verdict', 'expected "clean" or "violation"');
  if (typeof record.oracle !== 'string' || record.oracle === '') throw new FormatError('expect.oracle', 'a violation needs the oracle name');
  if (record.step !== undefined && (!Number.isInteger(record.step) || (record.step as number) < -1)) {
    throw new FormatError('expect.step', 'expected an op index');
  }
  return record.step === undefined
    ? { verdict: 'violation', oracle: record.oracle }
    : { verdict: 'violation', oracle: record.oracle, step: record.step as number };
}

/** Validates a parsed JSON document as a repro; errors name the field (`ops[2].gpa`). */
export function parseRepro(raw: unknown): Repro {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new FormatError('(top level)', 'expected a JSON object');
  const record = raw as Record<string, unknown>;
  if (record.format !== REPRO_FORMAT) throw new FormatError('format', `expected "${REPRO_FORMAT}", got ${JSON.stringify(record.format)}`);
  for (const key of Object.keys(record)) {
    if (!TOP_FIELDS.has(key)) throw new FormatError(key, 'unknown field');
  }
  const config = parseConfig(record.config);
  const seed = record.seed ?? '0';
  if (typeof seed !== 'string' && typeof seed !== 'number') throw new FormatError('seed', 'expected a string or number');
  if (!Array.isArray(record.ops)) throw new FormatError('ops', 'expected an array of ops');
  const ops = record.ops.map((op: unknown, index: number) => parseOp(op, `ops[${index}]`, config));
  const title = record.title ?? '';
  if (typeof title !== 'string') throw new FormatError('title', 'expected a string');
  const repro: Repro = { title, config, seed: String(seed), ops };
  if (record.expect !== undefined) repro.expect = parseExpect(record.expect);
  // Steps are op indexes; one more is after the last op (the watchdog stopping a case's settling,
  // watchdog.ts), and a violation at boot is reported with step 0 even in a file of no ops.
  const expected = repro.expect?.verdict === 'violation' ? repro.expect.step : undefined;
  if (expected !== undefined && expected > Math.max(0, ops.length)) throw new FormatError('expect.step', `${expected} is past the last op (the file has ${ops.length} op(s), numbered from 0)`);
  if (record.oracles !== undefined) {
    if (!Array.isArray(record.oracles)) throw new FormatError('oracles', 'expected an array of oracle files');
    repro.oracles = record.oracles.map((file: unknown, index: number) => {
      if (typeof file !== 'string' || !looksLikeFile(file) || !/\.(m?[jt]s)$/.test(file)) throw new FormatError(`oracles[${index}]`, 'expected a .ts/.js oracle file path');
      return file;
    });
  }
  return repro;
}

/**
 * The text of an input file (a repro, a campaign log), or a FormatError naming it. A FIFO or a
 * device under that name would block the read or never end: only a regular file (or a link to one)
 * is read; a directory answers EISDIR.
 */
export function readRegularFile(file: string): string {
  let regular: boolean;
  let text = '';
  try {
    const stat = statSync(file);
    regular = stat.isFile() || stat.isDirectory();
    if (regular) text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new FormatError(file, `cannot read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  if (!regular) throw new FormatError(file, 'cannot read: not a regular file (a FIFO, socket or device)');
  return text;
}

/** Reads and validates a repro file; a FormatError's field is prefixed with the file name. */
export function readRepro(file: string): Repro {
  const text = readRegularFile(file);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new FormatError(file, `not valid JSON: ${(error as Error).message}`);
  }
  try {
    return { ...parseRepro(json), source: file };
  } catch (error) {
    if (error instanceof FormatError) throw new FormatError(`${file}: ${error.field}`, error.problem);
    throw error;
  }
}

export function encodeRepro(repro: Repro): string {
  const head: Record<string, unknown> = { format: REPRO_FORMAT, title: repro.title, config: encodeConfig(repro.config), seed: repro.seed };
  const tail: Record<string, unknown> = {};
  if (repro.expect) tail.expect = repro.expect;
  if (repro.oracles && repro.oracles.length > 0) tail.oracles = repro.oracles;
  // One op per line: diffs of corpus files stay readable. The document is put together around
  // the ops, never by searching its text (a title could hold anything).
  const ops = repro.ops.map((op) => `    ${JSON.stringify(encodeOp(op))}`).join(',\n');
  const members = (part: Record<string, unknown>): string => JSON.stringify(part, null, 2).slice(2, -2);
  const parts = [members(head), `  "ops": ${ops === '' ? '[]' : `[\n${ops}\n  ]`}`, ...(Object.keys(tail).length > 0 ? [members(tail)] : [])];
  // Printed too (a repro that could not be saved), and read with cat: C1 controls, line
  // separators and bidi overrides as \uNNNN, the same value.
  return escapeJsonText(`{\n${parts.join(',\n')}\n}\n`);
}

/** Temp file + rename: a reader (or a campaign killed mid-write) never sees half a file. */
export function writeFileAtomic(file: string, text: string): void {
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(temp, text);
    renameSync(temp, file);
  } catch (error) {
    try {
      unlinkSync(temp);
    } catch {
      // The temp file was never created.
    }
    throw error;
  }
}

/**
 * `repro` as it must be written to `file`: plugin paths (given relative to `baseDir`, the working
 * directory by default) rewritten relative to the file, so that its directory stays loadable.
 */
export function reproForFile(repro: Repro, file: string, baseDir?: string): Repro {
  const moved: Repro = {
    ...repro,
    config: {
      ...repro.config,
      hostPolicy: pluginPathForRepro(repro.config.hostPolicy, file, baseDir),
      guestPolicy: pluginPathForRepro(repro.config.guestPolicy, file, baseDir),
    },
  };
  if (repro.oracles) moved.oracles = repro.oracles.map((oracle) => pluginPathForRepro(oracle, file, baseDir));
  delete moved.source;
  return moved;
}

/** Writes `repro` atomically, plugin paths (relative to `baseDir`) made relative to `file`. */
export function writeRepro(file: string, repro: Repro, baseDir?: string): void {
  writeFileAtomic(file, encodeRepro(reproForFile(repro, file, baseDir)));
}
