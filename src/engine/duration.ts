// Durations as users write them: "30s", "10m", "2h", "1h30m", "2m30.5s", "500ms", or a bare
// number of seconds. Compound parts go from the largest unit down, each unit once, as Go's
// time.ParseDuration reads them.

const UNITS: Record<string, number> = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
const ORDER = ['d', 'h', 'm', 's', 'ms'];

/** Milliseconds, or undefined when `text` is not a duration. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  let total = 0;
  let last = -1;
  let rest = trimmed;
  while (rest !== '') {
    const match = /^(\d+(?:\.\d+)?)(ms|d|h|m|s)/.exec(rest);
    const rank = match ? ORDER.indexOf(match[2]!) : -1;
    if (!match || rank <= last) return undefined;
    total += Number(match[1]) * UNITS[match[2]!]!;
    last = rank;
    rest = rest.slice(match[0].length);
  }
  return trimmed === '' ? undefined : total;
}
