import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { distIsCurrent } from '../../scripts/source-digest.js';
import { withoutSourceCondition } from '../../src/engine/watchdog.ts';

/**
 * Whether the CLI tests run the built CLI: only while dist/ is a build of the sources as they are
 * now (scripts/source-digest.js; `npm ci` builds it, so CI and a fresh clone do). It starts in
 * about 0.35 s where the sources through tsx take 0.85 s, and its workers load one bundle: most of
 * the suite's time is CLI start-ups. COCOFUZZ_TEST_CLI=source runs the sources regardless.
 */
export const CLI_FROM_DIST = process.env.COCOFUZZ_TEST_CLI !== 'source' && distIsCurrent();

/**
 * The `cocofuzz` command: bin/cocofuzz.js (dist/), or the sources (bin/run-ts.js +
 * src/cli/main.ts) when dist/ is missing or was built from other sources. test/package.test.ts checks dist/
 * from a packed tarball as users install it.
 */
export const CLI = CLI_FROM_DIST
  ? [fileURLToPath(new URL('../../bin/cocofuzz.js', import.meta.url))]
  : [fileURLToPath(new URL('../../bin/run-ts.js', import.meta.url)), fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url))];

/**
 * The environment of a spawned CLI: this process's, as it is at the call. The built CLI runs
 * without the cocofuzz-source condition (vitest.config.ts puts it in NODE_OPTIONS for the
 * sources): a TypeScript plugin's `cocofuzz/api` then resolves to dist/, the engine that runs it,
 * as in an installed package.
 */
export function cliEnv(): NodeJS.ProcessEnv {
  return CLI_FROM_DIST ? withoutSourceConditionEnv() : { ...process.env };
}

/**
 * This process's environment without the cocofuzz-source condition in NODE_OPTIONS, however it is
 * spelled (watchdog.ts's rule for a worker's flags). NODE_OPTIONS is split at white space: a
 * quoted value with a space in it would be split too.
 */
function withoutSourceConditionEnv(): NodeJS.ProcessEnv {
  const options = withoutSourceCondition((process.env.NODE_OPTIONS ?? '').split(/\s+/).filter((option) => option !== ''));
  return { ...process.env, NODE_OPTIONS: options.join(' ') };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** fuzz writes ./cocofuzz-out by default: never into the checkout. */
const workingDir = (args: readonly string[], cwd: string | undefined): string | undefined =>
  cwd ?? (args[0] === 'fuzz' ? mkdtempSync(join(tmpdir(), 'cocofuzz-cwd-')) : undefined);

/** Runs the real `cocofuzz` binary as a user would, in a child process. */
export function runCli(args: string[], options: { cwd?: string; timeoutMs?: number } = {}): CliResult {
  const cwd = workingDir(args, options.cwd);
  const result = spawnSync(process.execPath, [...CLI, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 120_000,
    env: { ...cliEnv(), FORCE_COLOR: '0' },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * Runs the binary asynchronously, so that several runs can share the machine (the bad-input table
 * runs its entries in small batches). `nodeArgs` go to node itself (a heap limit, say).
 */
export function runCliAsync(args: string[], options: { cwd?: string; timeoutMs?: number; nodeArgs?: string[] } = {}): Promise<CliResult & { ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...CLI, ...args], {
      cwd: workingDir(args, options.cwd),
      env: { ...cliEnv(), FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('latin1').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('latin1').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** Runs `tasks` with at most `limit` in flight, results in order. */
export async function inBatches<T>(tasks: readonly (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array<T>(tasks.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < tasks.length) {
      const index = next++;
      results[index] = await tasks[index]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, lane));
  return results;
}

/**
 * A campaign's --json output without what README "JSON lines" names as wall-clock: progress lines
 * (every 10 s), elapsedMs, startedAt and the worker count itself.
 */
export const deterministic = (stdout: string): string =>
  stdout
    .trim()
    .split('\n')
    .filter((line) => !line.includes('"type":"progress"'))
    .map((line) => line.replace(/"(elapsedMs|startedAt|workers)":("[^"]*"|\d+),?/g, ''))
    .join('\n');
