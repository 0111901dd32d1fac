// Content tokens as runs (API 4). Memory gives every 2 KiB chunk a write touches a fresh token
// from a counter (memory.ts), so the tokens of one write are consecutive and a DMA of any length
// writes one run: pairs of a first token and a count stand for first, first + 1, ...; a first
// token of 0 stands for that many chunks never written (all 0). A DMA's record and the machine's
// answer keep the pairs (`tokenRuns`) and give the per-chunk list of API 1-3 (`tokens`) from them
// on first read, as an own enumerable accessor: JSON, `{ ...record }`, structuredClone and an
// oracle's finding details see it as the plain field it was.

/**
 * Appends the tokens `first`, `first + 1`, ... (`count` of them; `first` 0: `count` chunks never
 * written, all 0) to `runs`, extending the last pair where the new tokens continue it.
 */
export function appendTokenRun(runs: number[], first: number, count: number): void {
  if (count <= 0) return;
  const n = runs.length;
  if (n >= 2) {
    const lastFirst = runs[n - 2]!;
    const lastCount = runs[n - 1]!;
    if (first === 0 ? lastFirst === 0 : lastFirst !== 0 && lastFirst + lastCount === first) {
      runs[n - 1] = lastCount + count;
      return;
    }
  }
  runs.push(first, count);
}

/** The tokens `runs` stand for, one per chunk. */
export function expandTokenRuns(runs: readonly number[]): number[] {
  const out: number[] = [];
  for (let r = 0; r < runs.length; r += 2) {
    const first = runs[r]!;
    for (let i = 0, n = runs[r + 1]!; i < n; i++) out.push(first === 0 ? 0 : first + i);
  }
  return out;
}

/** `tokens` as runs: for a record made without them (an oracle's test that builds one by hand). */
export function tokenRunsOf(tokens: readonly number[]): number[] {
  const runs: number[] = [];
  for (const token of tokens) appendTokenRun(runs, token, 1);
  return runs;
}

/** Each record's expanded tokens, made on the first read of its `tokens`. */
const expanded = new WeakMap<object, readonly number[]>();

/** One accessor for every record, so that records share a hidden class. */
const TOKENS: PropertyDescriptor = {
  get(this: { readonly tokenRuns: readonly number[] }): readonly number[] {
    let tokens = expanded.get(this);
    if (tokens === undefined) expanded.set(this, (tokens = expandTokenRuns(this.tokenRuns)));
    return tokens;
  },
  // Writable as the plain field it was: a set makes it that field again.
  set(this: object, value: readonly number[]) {
    Object.defineProperty(this, 'tokens', { value, writable: true, enumerable: true, configurable: true });
  },
  enumerable: true,
  configurable: true,
};

/**
 * `head` with `tokens` (the accessor), `tokenRuns` and then the properties of `rest`, in that order
 * after head's own: the key order of the records of API 3, where `tokens` was a data field. The
 * accessor is added as a new property, never by redefining a data one (which puts an object in
 * V8's dictionary mode: world.ts RecordedStep).
 */
export function withTokens<H extends object, R extends object = object>(head: H, tokenRuns: number[], rest?: R): H & R & { readonly tokens: readonly number[]; readonly tokenRuns: number[] } {
  Object.defineProperty(head, 'tokens', TOKENS);
  (head as H & { tokenRuns: number[] }).tokenRuns = tokenRuns;
  return (rest === undefined ? head : Object.assign(head, rest)) as H & R & { readonly tokens: readonly number[]; readonly tokenRuns: number[] };
}
