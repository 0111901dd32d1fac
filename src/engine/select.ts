// Resolving what a run uses: policies by name or file, the oracle set (built-ins, user files,
// --only-oracle). Plugins load asynchronously, once per process or worker.

import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { Oracle } from '../api.ts';
import { builtinOracles } from '../../oracles/index.ts';
import { guestPolicies, hostPolicies } from '../policies/index.ts';
import type { GuestPolicy, HostPolicy } from '../policies/types.ts';
import { PluginError, loadPlugin, looksLikeFile, requireFields } from './plugins.ts';
import { POLICY_ERROR, type Policies } from './run.ts';

const validatePolicy = (value: unknown): string | undefined => requireFields(value, { name: 'string', description: 'string' });
const validateOracle = (value: unknown): string | undefined => {
  const problem = requireFields(value, { name: 'string', description: 'string', check: 'function' }, { final: 'function' });
  if (problem) return problem;
  const severity = (value as Oracle).severity;
  return ['security', 'correctness', 'liveness'].includes(severity) ? undefined : '"severity" must be "security", "correctness" or "liveness"';
};

/**
 * A policy file named in a repro file is looked up next to that file first, then from the
 * working directory: corpus files can name `../test/fixtures/x.ts` and replay from anywhere,
 * while a campaign's findings keep the path as it was given on the command line.
 */
export function locate(file: string, baseDir: string | undefined): string {
  if (baseDir === undefined || isAbsolute(file)) return file;
  const besideRepro = join(baseDir, file);
  return existsSync(besideRepro) ? besideRepro : file;
}

async function resolvePolicy<T>(
  nameOrFile: string,
  registry: Readonly<Record<string, T>>,
  what: string,
  flag: string,
  baseDir: string | undefined,
): Promise<T> {
  const builtin = registry[nameOrFile];
  if (builtin) return builtin;
  if (looksLikeFile(nameOrFile)) return loadPlugin<T>(locate(nameOrFile, baseDir), what, validatePolicy);
  throw new PluginError(
    flag,
    `unknown ${what} "${nameOrFile}" (built in: ${Object.keys(registry).join(', ')}; or give a .ts/.js file${baseDir === undefined ? '' : `; a repro naming a user policy replays with --${flag === 'hostPolicy' ? 'host' : 'guest'}-policy FILE`})`,
  );
}

const cache = new Map<string, Promise<unknown>>();

/** Loads once per process: workers and repeated replays share the module. */
function cached<T>(key: string, load: () => Promise<T>): Promise<T> {
  let pending = cache.get(key) as Promise<T> | undefined;
  if (!pending) {
    pending = load();
    cache.set(key, pending);
  }
  return pending;
}

export function resolveHostPolicy(nameOrFile: string, baseDir?: string): Promise<HostPolicy> {
  return cached(`host\u0000${nameOrFile}\u0000${baseDir ?? ''}`, () => resolvePolicy(nameOrFile, hostPolicies, 'host policy', 'hostPolicy', baseDir));
}

export function resolveGuestPolicy(nameOrFile: string, baseDir?: string): Promise<GuestPolicy> {
  return cached(`guest\u0000${nameOrFile}\u0000${baseDir ?? ''}`, () => resolvePolicy(nameOrFile, guestPolicies, 'guest policy', 'guestPolicy', baseDir));
}

/** The host and guest policies a config names. */
export async function resolvePolicies(hostPolicy: string, guestPolicy: string, baseDir?: string): Promise<Policies> {
  return { host: await resolveHostPolicy(hostPolicy, baseDir), guest: await resolveGuestPolicy(guestPolicy, baseDir) };
}

/** The policies a repro file names, policy files looked up beside the file first. */
export function resolveReproPolicies(repro: { config: { hostPolicy: string; guestPolicy: string }; source?: string }): Promise<Policies> {
  return resolvePolicies(repro.config.hostPolicy, repro.config.guestPolicy, repro.source === undefined ? undefined : dirname(repro.source));
}

/** The oracles for a repro: the selection plus the oracle files the repro names (beside it first). */
export function resolveReproOracles(repro: { oracles?: readonly string[]; source?: string }, selection: OracleSelection = {}): Promise<Oracle[]> {
  const baseDir = repro.source === undefined ? undefined : dirname(repro.source);
  const files = [...(selection.files ?? [])];
  for (const file of repro.oracles ?? []) {
    const found = locate(file, baseDir);
    if (!files.some((given) => resolve(given) === resolve(found))) files.push(found);
  }
  return resolveOracles({ ...selection, files });
}

export interface OracleSelection {
  /** User oracle files (--oracle), added to the built-ins. */
  files?: readonly string[];
  /** Restrict to these names (--only-oracle). */
  only?: readonly string[];
}

export async function resolveOracles(selection: OracleSelection = {}): Promise<Oracle[]> {
  const oracles: Oracle[] = [...builtinOracles];
  for (const file of selection.files ?? []) oracles.push(await loadPlugin<Oracle>(file, 'oracle', validateOracle));
  const names = new Set<string>();
  for (const oracle of oracles) {
    if (names.has(oracle.name)) throw new PluginError('--oracle', `two oracles are named "${oracle.name}"`);
    names.add(oracle.name);
  }
  if (!selection.only || selection.only.length === 0) return oracles;
  for (const name of selection.only) {
    if (!names.has(name) && name !== POLICY_ERROR) {
      throw new PluginError('--only-oracle', `no oracle named "${name}" (see cocofuzz oracles)`);
    }
  }
  return oracles.filter((oracle) => selection.only?.includes(oracle.name));
}
