// Exit codes are a contract (DESIGN.md, "CLI"): 0 nothing found, 1 violation / unmet expectation,
// 2 bad usage or bad input, 3 internal error.
export const EXIT_OK = 0;
export const EXIT_FOUND = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERNAL = 3;

/** Bad usage or bad input: printed as one line (naming the file, field or flag), exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
