import { UsageError } from './errors.ts';

// Flag parsers used as yargs `coerce` functions: they throw a UsageError naming the flag, which
// main.ts turns into one line and exit code 2.

export function positiveInt(flag: string) {
  return (value: unknown): number => {
    const text = String(value);
    if (!/^\d+$/.test(text) || Number(text) < 1) {
      throw new UsageError(`--${flag}: expected a positive integer, got '${text}'`);
    }
    return Number(text);
  };
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "30s", "10m", "2h", "500ms" or a bare number of seconds, in milliseconds. */
export function duration(flag: string) {
  return (value: unknown): number => {
    const text = String(value);
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text);
    if (!match) throw new UsageError(`--${flag}: expected a duration like 30s, 10m or 2h, got '${text}'`);
    return Number(match[1]) * (DURATION_UNITS[match[2] ?? 's'] ?? 1000);
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
