import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The CLI from the sources (bin/run-ts.js + src/cli/main.ts), as the tests run the TypeScript:
 * bin/cocofuzz.js runs dist/, which test/package.test.ts checks from a packed tarball.
 */
export const CLI = [
  fileURLToPath(new URL('../../bin/run-ts.js', import.meta.url)),
  fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url)),
];

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `cocofuzz` binary as a user would, in a child process. */
export function runCli(args: string[], options: { cwd?: string; timeoutMs?: number } = {}): CliResult {
  // fuzz writes ./cocofuzz-out by default: never into the checkout.
  const cwd = options.cwd ?? (args[0] === 'fuzz' ? mkdtempSync(join(tmpdir(), 'cocofuzz-cwd-')) : undefined);
  const result = spawnSync(process.execPath, [...CLI, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 120_000,
    env: { ...process.env, FORCE_COLOR: '0' },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}
