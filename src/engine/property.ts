// Fuzzing inside a test: `await fuzzProperty({ hostPolicy: myPolicy })` runs a bounded campaign in
// the test's own process and throws with the shrunk, explained repro when anything fires — the
// failure message is what `cocofuzz explain` would print. No test-runner import here: the package
// root re-exports this, and plain Node must load it (fuzzTest, which registers a vitest test, is
// in src/vitest.ts).

import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Oracle } from '../api.ts';
import { parseConfig } from '../ops/config.ts';
import { DEFAULT_STEPS, MAX_STEPS, type WeightKey } from '../ops/generate.ts';
import type { GuestPolicy, HostPolicy } from '../policies/types.ts';
import { encodeRepro, reproForFile } from '../repro/format.ts';
import { isInside, replayFlagFor } from '../repro/plugin-paths.ts';
import { type Bucket, type CampaignOracleError, bucketFile, runCampaign } from './campaign.ts';
import type { CampaignJob } from './case-job.ts';
import { parseDuration } from './duration.ts';
import { explainRepro } from './explain.ts';
import { checkPluginObject, resolveGuestPolicy, resolveHostPolicy, resolveOracles } from './select.ts';
import { shellWord } from '../report/escape.ts';

export interface FuzzPropertyOptions {
  /**
   * A built-in policy name, a file, or a policy object (default: the config's). Define the object
   * with `module: import.meta.url` in a file inside the repro's tree (under `out`) and the repro
   * names the file, so `cocofuzz replay` loads it; otherwise the message names the flag to pass.
   */
  hostPolicy?: string | HostPolicy;
  guestPolicy?: string | GuestPolicy;
  /** Repro "config" fields (guestMemory, devices, ...). */
  config?: Record<string, unknown>;
  /** Extra oracles (objects), added to the built-ins; with `module: import.meta.url` (inside the repro's tree) the repro names their files. */
  oracles?: readonly Oracle[];
  /** Restrict to these oracle names. */
  onlyOracles?: readonly string[];
  /**
   * The budget: stop after `runs` cases or after `time` ("3s", "1m", or milliseconds), whichever
   * comes first. With neither, `time` is 3s, which fits vitest's default 5 s test timeout with
   * room to shrink a finding; with `runs` alone, there is no time limit.
   */
  runs?: number;
  time?: string | number;
  steps?: number;
  seed?: string;
  swarm?: boolean;
  weights?: Partial<Record<WeightKey, number>>;
  /** Maximum re-runs when shrinking a finding (default 500). */
  minimizeBudget?: number;
  /**
   * Directory to write the repro file of a finding into (`<oracle>-<hash>.json`, as `fuzz`
   * writes them); the error message names the file. Default: none, the repro is in the message.
   */
  out?: string;
}

export const DEFAULT_PROPERTY_TIME_MS = 3000;

export class FuzzPropertyError extends Error {
  override name = 'FuzzPropertyError';
  constructor(
    message: string,
    readonly bucket: Bucket,
  ) {
    super(message);
  }
}

/** An oracle threw during the campaign (and no finding was made): nothing it checks was checked after that. */
export class OracleFailedError extends Error {
  override name = 'OracleFailedError';
  constructor(
    message: string,
    readonly oracleErrors: readonly CampaignOracleError[],
  ) {
    super(message);
  }
}

/**
 * `runs` and `steps` as the CLI's --runs and --steps take them: `runs: Number(process.env.RUNS)`
 * with RUNS unset (NaN) must not pass a test that ran nothing.
 */
function checkBudget(options: Pick<FuzzPropertyOptions, 'runs' | 'steps' | 'minimizeBudget'>): void {
  const positive = (field: string, value: number | undefined, most = Number.MAX_SAFE_INTEGER): void => {
    if (value !== undefined && !(Number.isInteger(value) && value > 0 && value <= most)) {
      throw new TypeError(`fuzzProperty: ${field} must be a whole number from 1 to ${most}, got ${String(value)}`);
    }
  };
  positive('runs', options.runs);
  positive('steps', options.steps, MAX_STEPS);
  positive('minimizeBudget', options.minimizeBudget);
}

/** The budget in milliseconds (undefined: no time limit). */
export function propertyTimeMs(options: Pick<FuzzPropertyOptions, 'runs' | 'time'>): number | undefined {
  if (options.time === undefined) return options.runs === undefined ? DEFAULT_PROPERTY_TIME_MS : undefined;
  const ms = typeof options.time === 'number' ? options.time : parseDuration(options.time);
  if (ms === undefined || !(ms > 0)) throw new TypeError(`fuzzProperty: time must be a duration like "3s" or a number of milliseconds, got ${JSON.stringify(options.time)}`);
  return ms;
}

/** The file a plugin object says it comes from (`module: import.meta.url`), absolute. */
function moduleFile(plugin: { module?: string }): string | undefined {
  if (!plugin.module) return undefined;
  return resolve(plugin.module.startsWith('file:') ? fileURLToPath(plugin.module) : plugin.module);
}

/**
 * What the repro records for a plugin object: its file, but only when the file lies inside the
 * repro's own directory tree (`out`, or the working directory), since a repro file never loads
 * code from outside it (repro/plugin-paths.ts); otherwise its name, and replayHint says which
 * flag replays it. Absolute here: writeRepro spells it relative to the repro file.
 */
function pluginRef(plugin: { name: string; module?: string }, baseDir: string): string | undefined {
  const file = moduleFile(plugin);
  return file !== undefined && isInside(baseDir, file) ? file : undefined;
}

/** A file as the user pastes it: relative to the working directory, forward slashes, quoted for the shell. */
const pasteable = (file: string): string => shellWord(relative(process.cwd(), file).split(sep).join('/') || file);

/** Objects the repro cannot load by itself: say exactly which flags replay it (`file`: the repro saved, if it was). */
function replayHint(options: FuzzPropertyOptions, baseDir: string, file?: string): string {
  const flags: string[] = [];
  const needs = (flag: string, plugin: { name: string; module?: string }): void => {
    if (pluginRef(plugin, baseDir) !== undefined) return;
    const file = moduleFile(plugin);
    if (file === undefined) flags.push(`${flag} FILE (FILE: the file defining "${plugin.name}")`);
    else flags.push(`${flag} ${pasteable(file)}`);
  };
  for (const [flag, plugin] of [['--host-policy', options.hostPolicy], ['--guest-policy', options.guestPolicy]] as const) {
    if (typeof plugin === 'object') needs(flag, plugin);
    // A policy given as a file outside the repro's tree: the repro names it, replay refuses it.
    else if (plugin !== undefined) {
      const needed = replayFlagFor(flag, plugin, baseDir);
      if (needed !== undefined) flags.push(needed);
    }
  }
  for (const oracle of options.oracles ?? []) needs('--oracle', oracle);
  if (flags.length === 0) return '';
  return (
    `\nto replay or explain this repro: cocofuzz replay ${file === undefined ? 'REPRO' : pasteable(file)} ${flags.join(' ')}\n` +
    '(a repro file loads plugin files only from inside its own directory tree; define a plugin with module: import.meta.url in a file under `out` and the repro names it)\n'
  );
}

export async function fuzzProperty(options: FuzzPropertyOptions = {}): Promise<{ cases: number; ops: number }> {
  const baseDir = resolve(options.out ?? '.');
  const hostName = typeof options.hostPolicy === 'object' ? (pluginRef(options.hostPolicy, baseDir) ?? options.hostPolicy.name) : options.hostPolicy;
  const guestName = typeof options.guestPolicy === 'object' ? (pluginRef(options.guestPolicy, baseDir) ?? options.guestPolicy.name) : options.guestPolicy;
  const config = parseConfig({ arch: 'snp', ...options.config, ...(hostName ? { hostPolicy: hostName } : {}), ...(guestName ? { guestPolicy: guestName } : {}) });
  checkBudget(options);
  // Policy objects get the checks of a plugin file's export; names and files resolve like the CLI's.
  if (typeof options.hostPolicy === 'object') checkPluginObject('host policy', options.hostPolicy, 'fuzzProperty: hostPolicy');
  if (typeof options.guestPolicy === 'object') checkPluginObject('guest policy', options.guestPolicy, 'fuzzProperty: guestPolicy');
  const policies = {
    host: typeof options.hostPolicy === 'object' ? options.hostPolicy : await resolveHostPolicy(config.hostPolicy),
    guest: typeof options.guestPolicy === 'object' ? options.guestPolicy : await resolveGuestPolicy(config.guestPolicy),
  };
  const oracles = await resolveOracles({
    objects: options.oracles ?? [],
    ...(options.onlyOracles ? { only: options.onlyOracles } : {}),
    fields: { oracles: 'fuzzProperty: oracles', only: 'fuzzProperty: onlyOracles' },
  });
  const oracleFiles = (options.oracles ?? []).flatMap((oracle) => pluginRef(oracle, baseDir) ?? []);
  const job: CampaignJob = {
    config,
    seed: options.seed ?? 'vitest',
    generate: { steps: options.steps ?? DEFAULT_STEPS, ...(options.swarm === undefined ? {} : { swarm: options.swarm }), ...(options.weights ? { weights: options.weights } : {}) },
    // Recorded in the repro; the campaign itself uses the objects (runner below).
    oracleFiles,
    onlyOracles: [],
    minimizeBudget: options.minimizeBudget ?? 500,
    shard: { index: 0, count: 1 },
  };
  const timeMs = propertyTimeMs(options);
  let found: Bucket | undefined;
  const oracleErrors: CampaignOracleError[] = [];
  const stats = await runCampaign({
    job,
    ...(options.runs !== undefined ? { runs: options.runs } : {}),
    ...(timeMs !== undefined ? { timeMs } : {}),
    workers: 1,
    runner: { policies, oracles },
    ...(options.out ? { out: options.out } : {}),
    maxFindings: 1,
    onBucket: (bucket) => {
      found ??= bucket;
    },
    onOracleError: (error) => oracleErrors.push(error),
  });
  // An oracle that threw checked nothing from then on: the test must not pass (the CLI exits 2).
  const broken = oracleErrors.map((e) => `oracle ${e.oracle} threw at step ${e.step} of case ${e.case} (seed ${e.repro.seed}): ${e.message}\n`).join('');
  if (found) {
    const text = explainRepro(found.repro, policies, oracles);
    const saved = found.file ? `repro file: ${found.file}${found.kept ? ' (already there from an earlier run)' : ''}\n` : `repro file (pass out: DIR to save it as ${bucketFile(found)}):\n`;
    // Plugin paths spelled as the saved file spells them (relative to it).
    const shown = reproForFile(found.repro, found.file ?? join(baseDir, bucketFile(found)));
    throw new FuzzPropertyError(
      `cocofuzz found ${found.oracle} (case ${found.firstCase}, seed ${found.repro.seed}):\n\n${text}\n${saved}${encodeRepro(shown)}${replayHint(options, baseDir, found.file)}${broken ? `\nand ${broken}` : ''}`,
      found,
    );
  }
  if (oracleErrors.length > 0) {
    const first = oracleErrors[0]!;
    throw new OracleFailedError(`cocofuzz: ${broken}repro of the case it threw on:\n${encodeRepro(reproForFile(first.repro, join(baseDir, 'oracle-error.json')))}${replayHint(options, baseDir)}`, oracleErrors);
  }
  return { cases: stats.cases, ops: stats.ops };
}
