// Reading user inputs for commands: repro files and directories of them, and --config.

import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PluginError } from '../engine/plugins.ts';
import { FormatError } from '../ops/errors.ts';
import { type Repro, readRepro } from '../repro/format.ts';
import { realOrResolved } from '../repro/plugin-paths.ts';
import { escapeTerminal } from '../report/escape.ts';
import { UsageError } from './errors.ts';

/**
 * `--config` as a JSON file or inline JSON: the fields of a repro file's "config". A value that
 * names an existing path is a file (a directory is an error); anything else must be inline JSON.
 */
export function readConfigFlag(value: string | undefined): Record<string, unknown> {
  if (value === undefined) return {};
  let text = value;
  let what = 'inline JSON';
  if (value.trim() !== '' && existsSync(value)) {
    if (statSync(value).isDirectory()) throw new UsageError(`--config: "${value}" is a directory (give a JSON file or inline JSON)`);
    try {
      text = readFileSync(value, 'utf8');
    } catch (error) {
      throw new UsageError(`--config: cannot read "${value}": ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    what = `"${value}"`;
  } else if (!/^\s*[[{"\d-]/.test(value) && !/^\s*(true|false|null)\s*$/.test(value)) {
    throw new UsageError(`--config: no such file "${value}" (or give inline JSON like '{"guestMemory":"1G"}')`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`--config: ${what} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`--config: ${what} must be a JSON object of config fields, got ${Array.isArray(parsed) ? 'an array' : JSON.stringify(parsed)}`);
  }
  return parsed as Record<string, unknown>;
}

/** A repro file in a subdirectory of `dir`, at most `depth` levels down (the first found), or undefined. */
function reproBelow(dir: string, depth: number): string | undefined {
  if (depth === 0) return undefined;
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (!entry.isDirectory()) continue;
    const sub = join(dir, entry.name);
    const json = readdirSync(sub).find((name) => name.endsWith('.json'));
    const found = json !== undefined ? join(sub, json) : reproBelow(sub, depth - 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** How a command takes a directory with no repro file in it. */
export interface ReproPathOptions {
  /**
   * The directory holds a collection that may be empty: a corpus on its first night, a shard or
   * campaign that found nothing (merge, report, coverage, prune); other files may be there, but no
   * repro file further down (a wrong path). Without it an empty directory is
   * an error: where files are judged (replay, corpus check) it is a wrong path far more often than
   * an empty corpus, and running nothing and exiting 0 would pass a CI job that checks nothing.
   */
  emptyOk?: boolean;
}

/** The options of the commands whose directory may be an empty corpus (merge, prune, report, coverage). */
export const EMPTY_CORPUS: ReproPathOptions = Object.freeze({ emptyOk: true });

/**
 * Files and directories (their *.json files, sorted) as one list of repro files, each file once
 * (by its real path: `d d/`, `d d/x.json` or a symlink to `d` name files twice), as first named.
 * `corpus prune` deletes by this list: a file listed twice was a duplicate of itself.
 */
export function expandReproPaths(paths: readonly string[], options: ReproPathOptions = {}): string[] {
  const files: string[] = [];
  const seen = new Set<string>();
  const add = (file: string): void => {
    const real = realOrResolved(file);
    if (seen.has(real)) return;
    seen.add(real);
    files.push(file);
  };
  for (const path of paths) {
    if (!existsSync(path)) throw new UsageError(`${path}: no such file or directory`);
    if (statSync(path).isDirectory()) {
      const found = readdirSync(path)
        .filter((name) => name.endsWith('.json'))
        .sort();
      if (found.length === 0) {
        // An empty corpus may hold other files (campaign.jsonl, a JUnit file, .gitkeep), but a
        // directory whose repro files lie further down is a wrong path: shards/ for
        // shards/x/findings would pass a CI job on nothing.
        const below = options.emptyOk === true ? reproBelow(path, 3) : undefined;
        if (options.emptyOk !== true || below !== undefined) {
          const where = below === undefined ? '' : ` (there are some further down: ${below}; name that directory)`;
          throw new UsageError(`${path}: no repro files (*.json) in this directory${where}`);
        }
      }
      for (const name of found) add(join(path, name));
    } else add(path);
  }
  return files;
}

/**
 * Reads and handles every repro file of `paths` in order. A malformed file, or one naming a
 * policy that cannot load, is reported in one line on stderr and counted, and the rest still
 * run: one bad file in a corpus must not hide the verdicts of the others. Returns the bad count.
 */
export async function forEachRepro(paths: readonly string[], handle: (file: string, repro: Repro) => Promise<void>, options: ReproPathOptions = {}): Promise<number> {
  let bad = 0;
  for (const file of expandReproPaths(paths, options)) {
    try {
      await handle(file, readRepro(file));
    } catch (error) {
      if (!(error instanceof FormatError) && !(error instanceof PluginError)) throw error;
      bad++;
      // A plugin error names the file already when it came from the file's own config.
      const named = error instanceof PluginError && !error.message.startsWith(`${file}: `) ? `${file}: ` : '';
      process.stderr.write(`cocofuzz: ${escapeTerminal(`${named}${error.message}`)}\n`);
    }
  }
  return bad;
}
