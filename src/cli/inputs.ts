// Reading user inputs for commands: repro files and directories of them, and --config.

import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from './errors.ts';

/** `--config` as a JSON file or inline JSON: the fields of a repro file's "config". */
export function readConfigFlag(value: string | undefined): Record<string, unknown> {
  if (value === undefined) return {};
  const text = value.trim().startsWith('{') ? value : existsSync(value) ? readFileSync(value, 'utf8') : undefined;
  if (text === undefined) throw new UsageError(`--config: no such file "${value}" (or give inline JSON)`);
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('expected an object');
    return parsed as Record<string, unknown>;
  } catch (error) {
    throw new UsageError(`--config: not a JSON object: ${(error as Error).message}`);
  }
}

/** Files and directories (their *.json files, sorted) as one list of repro files. */
export function expandReproPaths(paths: readonly string[]): string[] {
  const files: string[] = [];
  for (const path of paths) {
    if (!existsSync(path)) throw new UsageError(`${path}: no such file or directory`);
    if (statSync(path).isDirectory()) {
      for (const name of readdirSync(path).sort()) {
        if (name.endsWith('.json')) files.push(join(path, name));
      }
    } else files.push(path);
  }
  return files;
}
