// Output paths are checked before any work starts (issue 14, item 10): a campaign that runs for an
// hour and then cannot write its JUnit file or its findings must fail at the start, with one line
// naming the flag, not at the end with the findings lost.

import { accessSync, constants, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Config } from '../ops/types.ts';
import { replayFlagFor } from '../repro/plugin-paths.ts';
import { UsageError } from './errors.ts';

const code = (error: unknown): string => (error as NodeJS.ErrnoException).code ?? String(error);

/** A directory that output files go into: created if missing, and writable. */
export function prepareOutputDir(flag: string, dir: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UsageError(`${flag}: "${dir}" exists and is not a directory`);
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (error) {
    throw new UsageError(`${flag}: cannot write into "${dir}" (${code(error)})`);
  }
}

/** A file about to be written: not a directory, and its directory exists and is writable. */
export function checkOutputFile(flag: string, file: string): void {
  if (existsSync(file) && statSync(file).isDirectory()) throw new UsageError(`${flag}: "${file}" is a directory, expected a file name`);
  const dir = dirname(resolve(file));
  if (!existsSync(dir)) throw new UsageError(`${flag}: the directory "${dirname(file)}" does not exist`);
  try {
    accessSync(dir, constants.W_OK);
    if (existsSync(file)) accessSync(file, constants.W_OK);
  } catch (error) {
    throw new UsageError(`${flag}: cannot write "${file}" (${code(error)})`);
  }
}

/**
 * A directory that output files may go into later (the default findings directory, made at the
 * first finding): not a file, and writable, or its nearest existing parent writable.
 */
export function checkOutputDir(flag: string, dir: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UsageError(`${flag}: "${dir}" exists and is not a directory`);
  let existing = resolve(dir);
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  try {
    accessSync(existing, constants.W_OK);
  } catch (error) {
    throw new UsageError(`${flag}: cannot write into "${dir}" (${code(error)})`);
  }
}

/**
 * The flags a replay of this campaign's repro files needs: plugin files outside the findings
 * directory, which a repro file may not load by itself (repro/plugin-paths.ts).
 */
export function replayFlags(out: string, config: Pick<Config, 'hostPolicy' | 'guestPolicy'>, oracleFiles: readonly string[]): string[] {
  const flags = [replayFlagFor('--host-policy', config.hostPolicy, out), replayFlagFor('--guest-policy', config.guestPolicy, out), ...oracleFiles.map((file) => replayFlagFor('--oracle', file, out))];
  return flags.filter((flag): flag is string => flag !== undefined);
}
