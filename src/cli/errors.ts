// Exit codes are a contract (DESIGN.md, "CLI"): 0 nothing found, 1 violation / unmet expectation,
// 2 bad usage or bad input, 3 internal error.
export const EXIT_OK = 0;
export const EXIT_FOUND = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERNAL = 3;

/**
 * The exit code of a verdict: 1 when something was found; else 2 when an oracle threw (it checked
 * nothing from then on: a run that only looks clean must not pass a CI job); else 0.
 */
export function verdictCode(found: boolean, oracleErrors: number): number {
  return found ? EXIT_FOUND : oracleErrors > 0 ? EXIT_USAGE : EXIT_OK;
}

/**
 * process.exit as Node made it, for cocofuzz's own exits: while a command runs, plugins (loaded and
 * run in this process by replay, explain, corpus, coverage, minimize and report) get one that
 * throws (engine/plugins.ts guardProcessExit()).
 */
export const exitNow: (code?: number) => never = process.exit.bind(process);

/** Bad usage or bad input: printed as one line (naming the file, field or flag), exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
