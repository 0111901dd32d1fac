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

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * "30s", "10m", "2h", "1h30m", "2m30.5s", "500ms" or a bare number of seconds, in milliseconds.
 * Compound parts go from the largest unit down, each unit once (as Go's time.ParseDuration reads).
 */
export function duration(flag: string) {
  return (value: unknown): number => {
    const text = String(value).trim();
    if (/^\d+(?:\.\d+)?$/.test(text)) return Number(text) * 1000;
    const order = ['d', 'h', 'm', 's', 'ms'];
    let total = 0;
    let last = -1;
    let rest = text;
    while (rest !== '') {
      const match = /^(\d+(?:\.\d+)?)(ms|d|h|m|s)/.exec(rest);
      const rank = match ? order.indexOf(match[2]!) : -1;
      if (!match || rank <= last) throw new UsageError(`--${flag}: expected a duration like 30s, 10m, 2h or 1h30m, got '${text}'`);
      total += Number(match[1]) * DURATION_UNITS[match[2]!]!;
      last = rank;
      rest = rest.slice(match[0].length);
    }
    if (text === '' || total <= 0) throw new UsageError(`--${flag}: expected a duration like 30s, 10m, 2h or 1h30m, got '${text}'`);
    return total;
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
