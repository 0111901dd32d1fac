// The persistent corpus of a campaign (`--corpus DIR`, issue 16): a directory of repro files, one
// case each, named by a hash of its content (guided.ts writes them as `expect: clean`). At the
// start of a campaign every file is replayed first, with the campaign's own policies and oracles:
// a file supplies config, seed and ops only. So a corpus never makes cocofuzz load code: the
// policy names in its configs and its `oracles` fields are not used (plugin-paths.ts rules stay
// for `replay`/`corpus check`, which do load them, from inside the directory tree only).

import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Case, Config } from '../ops/types.ts';
import { FormatError } from '../ops/errors.ts';
import { readRepro } from './format.ts';

export interface CorpusFile {
  file: string;
  testCase: Case;
}

/** The *.json files of `dir`, sorted (created if missing: an empty corpus is valid). */
export function corpusFiles(dir: string): string[] {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new FormatError(dir, 'exists and is not a directory');
  mkdirSync(dir, { recursive: true });
  return readdirSync(dir)
    .filter((name) => name.endsWith('.json'))
    .sort()
    .map((name) => join(dir, name));
}

/**
 * Every case of `dir`, with the campaign's policies in its config. A malformed file is a
 * FormatError naming it: checked before any work starts.
 */
export function loadCorpusDir(dir: string, campaign: Pick<Config, 'hostPolicy' | 'guestPolicy'>): CorpusFile[] {
  return corpusFiles(dir).map((file) => {
    const repro = readRepro(file);
    return { file, testCase: { config: { ...repro.config, hostPolicy: campaign.hostPolicy, guestPolicy: campaign.guestPolicy }, seed: repro.seed, ops: repro.ops } };
  });
}
