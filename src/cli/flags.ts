import { parseDuration } from '../engine/duration.ts';
import { UsageError } from './errors.ts';

// Flag parsers used as yargs `coerce` functions: they throw a UsageError naming the flag, which
// main.ts turns into one line and exit code 2.

// Numeric flags are declared `type: 'number'` (help shows [number]); yargs hands over NaN for
// text that is not a number, so the message cannot quote it.
function integerAtLeast(flag: string, min: number, what: string) {
  return (value: unknown): number => {
    const number = Number(value);
    if (!Number.isSafeInteger(number) || number < min) {
      throw new UsageError(`--${flag}: expected ${what}${Number.isNaN(number) ? '' : `, got ${String(value)}`}`);
    }
    return number;
  };
}

export const positiveInt = (flag: string) => integerAtLeast(flag, 1, 'a positive integer');
export const nonNegativeInt = (flag: string) => integerAtLeast(flag, 0, 'an integer >= 0');

/** A duration flag (engine/duration.ts: "30s", "1h30m"...), in milliseconds. */
export function duration(flag: string) {
  return (value: unknown): number => {
    const ms = parseDuration(String(value));
    if (ms === undefined || ms <= 0) throw new UsageError(`--${flag}: expected a duration like 30s, 10m, 2h or 1h30m, got '${String(value)}'`);
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
    const text = String(value);
    const match = /^(\d+)\/(\d+)$/.exec(text);
    const index = Number(match?.[1]);
    const count = Number(match?.[2]);
    if (!match || count < 1 || index >= count) {
      throw new UsageError(`--${flag}: expected i/n with 0 <= i < n, got '${text}'`);
    }
    return { index, count };
  };
}
