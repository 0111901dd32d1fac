import type { Argv } from 'yargs';
import { parseDuration } from '../engine/duration.ts';
import { UsageError } from './errors.ts';

// Flag parsers used as yargs `coerce` functions: they throw a UsageError naming the flag, which
// main.ts turns into one line and exit code 2.

/**
 * A flag given twice is refused before parsing (repeatedFlag()); should an array still arrive
 * (through an alias yargs expands), its last value is the one taken.
 */
const last = (value: unknown): string => String(Array.isArray(value) ? value[value.length - 1] : value);

/** What a flag was given, for its error line: yargs hands over '' when a value is missing. */
const shown = (value: unknown): string => {
  const text = last(value);
  return text === '' ? 'no value' : `'${text}'`;
};

// Numeric flags are declared `type: 'number'` (help shows [number]); yargs hands over NaN for
// text that is not a number, so the message cannot quote it.
function integerAtLeast(flag: string, min: number, what: string, max: number, why: string) {
  return (value: unknown): number => {
    const text = last(value);
    const number = Number(text);
    if (text === '' || !Number.isSafeInteger(number) || number < min) {
      throw new UsageError(`--${flag}: expected ${what}${Number.isNaN(number) ? '' : `, got ${shown(value)}`}`);
    }
    if (number > max) throw new UsageError(`--${flag}: at most ${max}${why}, got '${text}'`);
    return number;
  };
}

/** A positive integer, at most `max` (documented with the flag) when a larger one is meaningless. */
export const positiveInt = (flag: string, max = Number.MAX_SAFE_INTEGER, why = '') => integerAtLeast(flag, 1, 'a positive integer', max, why);
export const nonNegativeInt = (flag: string, max = Number.MAX_SAFE_INTEGER, why = '') => integerAtLeast(flag, 0, 'an integer >= 0', max, why);

/** The longest duration a flag takes: past it, timers overflow (setTimeout's 2^31-1 ms). */
const MAX_DURATION_MS = 24 * 3_600_000;

/** A duration flag (engine/duration.ts: "30s", "1h30m", a bare number of seconds), in milliseconds. */
export function duration(flag: string) {
  return (value: unknown): number => {
    const text = last(value);
    const ms = parseDuration(text);
    if (ms === undefined) throw new UsageError(`--${flag}: expected a duration like 30s, 10m, 2h or 1h30m, got ${shown(value)}`);
    if (!(ms >= 1)) throw new UsageError(`--${flag}: the duration must be at least 1ms, got '${text}'`);
    if (ms > MAX_DURATION_MS) throw new UsageError(`--${flag}: at most 24h, got '${text}'`);
    return ms;
  };
}

export interface Shard {
  index: number;
  count: number;
}

/** "i/n" with 0 <= i < n: this machine's part of the seed space. */
export function shard(flag: string) {
  return (value: unknown): Shard => {
    const text = last(value);
    const match = /^(\d+)\/(\d+)$/.exec(text);
    const index = Number(match?.[1]);
    const count = Number(match?.[2]);
    if (!match || count < 1 || index >= count || !Number.isSafeInteger(count)) {
      throw new UsageError(`--${flag}: expected i/n with 0 <= i < n, got ${shown(value)}`);
    }
    return { index, count };
  };
}

/**
 * Flags whose next word starts with "-" and a digit (`--time -5s`, `--shard -1/2`): yargs reads
 * the word as another flag and hands over an empty value, so the user would see "got ''". Named
 * here with what they typed. Returns the message, or undefined.
 */
export function negativeValue(argv: readonly string[]): string | undefined {
  for (let i = 0; i + 1 < argv.length; i++) {
    const flag = argv[i]!;
    const next = argv[i + 1]!;
    if (flag === '--') return undefined;
    if (/^--[a-z][\w-]*$/.test(flag) && /^-\d/.test(next)) return `${flag}: negative values are not allowed, got '${next}'`;
  }
  return undefined;
}

/** The flags that may be given more than once (each takes one value: `--oracle a.ts --oracle b.ts`). */
export const REPEATABLE_FLAGS: ReadonlySet<string> = new Set(['oracle', 'only-oracle']);

/**
 * A flag given twice that takes one value: yargs would hand its coercion an array (`--out a
 * --out b` crashed with a TypeError, exit 3; `--seed a --seed b` ran seed "a,b"). `--x` and
 * `--no-x` count as the same flag. Scanning stops at `--`.
 */
export function repeatedFlag(argv: readonly string[]): string | undefined {
  const seen = new Set<string>();
  for (const arg of argv) {
    if (arg === '--') return undefined;
    const match = /^--([a-z][\w-]*)(=.*)?$/.exec(arg);
    if (!match) continue;
    const name = match[1]!.replace(/^no-/, '');
    if (REPEATABLE_FLAGS.has(name)) continue;
    if (seen.has(name)) return `--${name}: given more than once (it takes one value; only --${[...REPEATABLE_FLAGS].join(' and --')} repeat)`;
    seen.add(name);
  }
  return undefined;
}

/**
 * The flags that name plugin files for commands that read repro files: a repro file itself may
 * only load plugins from its own directory tree, so these are how a user runs one that needs
 * another (and how they swap a policy when replaying).
 */
export function reproPluginOptions<T>(yargs: Argv<T>) {
  return yargs
    .option('host-policy', { type: 'string', describe: "use this host policy (name or .ts/.js file) instead of the repro's" })
    .option('guest-policy', { type: 'string', describe: "use this guest policy (name or .ts/.js file) instead of the repro's" })
    .option('oracle', { type: 'string', array: true, nargs: 1, describe: 'add a user oracle from a .ts/.js file (repeatable)' });
}

export interface ReproPluginArgs {
  hostPolicy?: string;
  guestPolicy?: string;
  oracle?: string[];
}
