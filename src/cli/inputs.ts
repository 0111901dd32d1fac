// Reading user inputs for commands: repro files and directories of them, and --config.

import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PluginError, looksLikeFile } from '../engine/plugins.ts';
import { FormatError } from '../ops/errors.ts';
import { type Repro, readRepro } from '../repro/format.ts';
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

/**
 * Reads and handles every repro file of `paths` in order. A malformed file, or one naming a
 * policy that cannot load, is reported in one line on stderr and counted, and the rest still
 * run: one bad file in a corpus must not hide the verdicts of the others. Returns the bad count.
 */
export async function forEachRepro(paths: readonly string[], handle: (file: string, repro: Repro) => Promise<void>): Promise<number> {
  let bad = 0;
  for (const file of expandReproPaths(paths)) {
    try {
      await handle(file, readRepro(file));
    } catch (error) {
      if (!(error instanceof FormatError) && !(error instanceof PluginError)) throw error;
      bad++;
      process.stderr.write(`cocofuzz: ${error instanceof PluginError ? `${file}: ` : ''}${error.message}\n`);
    }
  }
  return bad;
}

export interface PolicyOverride {
  hostPolicy?: string;
  guestPolicy?: string;
}

/**
 * `replay`/`explain --host-policy FILE`: run a repro with a policy it names only by name (one a
 * test defined without `module: import.meta.url`). A flag file is taken from the working directory.
 */
export function withPolicies(repro: Repro, override: PolicyOverride): Repro {
  if (!override.hostPolicy && !override.guestPolicy) return repro;
  const abs = (file: string | undefined): string | undefined => (file === undefined ? undefined : looksLikeFile(file) ? resolve(file) : file);
  return {
    ...repro,
    config: { ...repro.config, hostPolicy: abs(override.hostPolicy) ?? repro.config.hostPolicy, guestPolicy: abs(override.guestPolicy) ?? repro.config.guestPolicy },
  };
}

export const policyOverrideOptions = {
  'host-policy': { type: 'string', describe: "run with this host policy (name or file) instead of the repro's" },
  'guest-policy': { type: 'string', describe: "run with this guest policy (name or file) instead of the repro's" },
} as const;
