// Resolving what a run uses: policies by name or file, the oracle set (built-ins, user files,
// --only-oracle). Plugins load asynchronously, once per process or worker.

import { existsSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { Oracle } from '../api.ts';
import { builtinOracles } from '../../oracles/index.ts';
import { BUILTIN_POLICY, guestPolicies, hostPolicies } from '../policies/index.ts';
import type { GuestPolicy, HostPolicy } from '../policies/types.ts';
import { containedPluginPath, isInside, looksLikeFile, realOrResolved } from '../repro/plugin-paths.ts';
import { PluginError, loadPlugin, requireFields } from './plugins.ts';
import { POLICY_ERROR, type Policies } from './run.ts';
import { GUEST_POLICY_HOOKS, HOST_POLICY_DATA, HOST_POLICY_HOOKS } from '../policies/types.ts';
import { privateFaultMaxSizeProblem } from '../policies/check.ts';

// A policy or oracle is told apart by its fields: a host policy given as --guest-policy, or an
// oracle given as --host-policy, is an error naming what it looks like, not a run with default
// hooks (issue 14, item 8).
const ORACLE_FIELDS = ['check', 'final', 'severity'] as const;
/** Every field some kind of plugin has: a field outside it is a typo, whatever else the object has. */
const PLUGIN_FIELDS: ReadonlySet<string> = new Set(['name', 'description', 'module', 'boot', 'checkCoversFinal', ...ORACLE_FIELDS, ...HOST_POLICY_HOOKS, ...HOST_POLICY_DATA, ...GUEST_POLICY_HOOKS]);

function kindOf(record: Record<string, unknown>): string | undefined {
  const has = (fields: readonly string[]): boolean => fields.some((field) => Object.hasOwn(record, field));
  if (has(ORACLE_FIELDS)) return 'an oracle';
  if (has(HOST_POLICY_HOOKS) || has(HOST_POLICY_DATA)) return 'a host policy';
  if (has(GUEST_POLICY_HOOKS)) return 'a guest policy';
  return undefined;
}

/** `extra`: the data fields a policy may have besides its hooks; `booleans`: those of them that are flags. */
function validatePolicyOf(what: PluginKind, hooks: readonly string[], extra: readonly string[], booleans: readonly string[] = []) {
  return (value: unknown): string | undefined => {
    const problem = requireFields(value, { name: 'string', description: 'string' });
    if (problem) return problem;
    const record = value as Record<string, unknown>;
    const allowed = new Set(['name', 'description', ...hooks, ...extra]);
    const strays = Object.keys(record).filter((key) => !allowed.has(key));
    // A misspelled hook is named as one, even beside a field of another kind: `ioo` in a host
    // policy that also has a guest hook is a typo first.
    const unknown = strays.find((key) => !PLUGIN_FIELDS.has(key));
    if (unknown !== undefined) return `unknown field "${unknown}" for a ${what} (hooks: ${hooks.join(', ')})`;
    const stray = strays[0];
    if (stray !== undefined) {
      const kind = kindOf(record);
      return kind && kind !== `a ${what}`
        ? `this is ${kind} (it has "${stray}"), not a ${what}`
        : `"${stray}" is not a field of a ${what} (hooks: ${hooks.join(', ')})`;
    }
    // A repro and every report name a policy by its name, and a built-in's name replays the
    // built-in: an object of its own under that name would have its findings replay clean.
    const builtin = REGISTRIES.get(what)?.get(String(record.name));
    if (builtin !== undefined && builtin !== value && !Object.hasOwn(record, BUILTIN_POLICY)) return `"name": ${JSON.stringify(record.name)} is the name of a built-in ${what}: give yours a name of its own (a repro names policies by name, and that name replays the built-in)`;
    const notFunction = hooks.find((hook) => record[hook] !== undefined && typeof record[hook] !== 'function');
    if (notFunction !== undefined) return `"${notFunction}" must be a function`;
    const notBoolean = booleans.find((field) => record[field] !== undefined && typeof record[field] !== 'boolean');
    return notBoolean === undefined ? undefined : `"${notBoolean}" must be a boolean`;
  };
}

// `module` (the file's own import.meta.url) is what fuzzProperty records in repros.
const validateHostFields = validatePolicyOf('host policy', HOST_POLICY_HOOKS, [...HOST_POLICY_DATA, 'module'], ['ioIgnoresUnseen', 'ioMapsPages']);
const validateHostPolicy = (value: unknown): string | undefined => validateHostFields(value) ?? privateFaultMaxSizeProblem(value as HostPolicy);
const validateGuestPolicy = validatePolicyOf('guest policy', GUEST_POLICY_HOOKS, ['module']);
const validateOracle = (value: unknown): string | undefined => {
  if (typeof value === 'object' && value !== null && typeof (value as Record<string, unknown>).check !== 'function') {
    const kind = kindOf(value as Record<string, unknown>);
    if (kind && kind !== 'an oracle') return `this is ${kind}, not an oracle (an oracle has a "check" function)`;
  }
  const problem = requireFields(value, { name: 'string', description: 'string', check: 'function' }, { final: 'function', boot: 'function' });
  if (problem) return problem;
  const covers = (value as Oracle).checkCoversFinal;
  if (covers !== undefined && typeof covers !== 'boolean') return '"checkCoversFinal" must be a boolean';
  const severity = (value as Oracle).severity;
  return ['security', 'correctness', 'liveness'].includes(severity) ? undefined : '"severity" must be "security", "correctness" or "liveness"';
};

type PluginKind = 'host policy' | 'guest policy';

/**
 * A plugin given as an object (fuzzProperty) gets the checks a plugin file's default export gets:
 * a misspelled hook (`pagesize`) must not silently run the default. `field` names it in the error.
 */
export function checkPluginObject(what: PluginKind | 'oracle', value: unknown, field: string): void {
  const validate = what === 'host policy' ? validateHostPolicy : what === 'guest policy' ? validateGuestPolicy : validateOracle;
  const problem = validate(value);
  if (problem !== undefined) throw new PluginError(field, problem);
}

// Names are looked up in Maps: an object registry would take `constructor`, `__proto__` or
// `toString` for built-in policies (issue 14, item 3).
const REGISTRIES: ReadonlyMap<PluginKind, ReadonlyMap<string, HostPolicy | GuestPolicy>> = new Map<PluginKind, ReadonlyMap<string, HostPolicy | GuestPolicy>>([
  ['host policy', new Map(Object.entries(hostPolicies))],
  ['guest policy', new Map(Object.entries(guestPolicies))],
]);

async function resolvePolicy<T>(nameOrFile: string, what: PluginKind, field: string): Promise<T> {
  const registry = REGISTRIES.get(what) ?? new Map<string, HostPolicy | GuestPolicy>();
  const builtin = registry.get(nameOrFile);
  if (builtin) return builtin as T;
  if (looksLikeFile(nameOrFile)) {
    // Named where it came from (--host-policy, --config: config.hostPolicy, a repro's field); a
    // relative path is the working directory's, which a policy named inside a --config file is not.
    if (!existsSync(resolve(nameOrFile))) {
      throw new PluginError(field, `${nameOrFile}: no such ${what} file${isAbsolute(nameOrFile) ? '' : ` (relative to the working directory, ${process.cwd()})`}`);
    }
    return loadPlugin<T>(nameOrFile, what, what === 'host policy' ? validateHostPolicy : validateGuestPolicy);
  }
  throw new PluginError(field, `unknown ${what} ${JSON.stringify(nameOrFile)} (built in: ${[...registry.keys()].join(', ')}; or give a .ts/.js file)`);
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

/** `field` names where the name came from in an error (`--host-policy`, `config.hostPolicy`). */
export function resolveHostPolicy(nameOrFile: string, field = 'config.hostPolicy'): Promise<HostPolicy> {
  return cached(`host\u0000${field}\u0000${looksLikeFile(nameOrFile) ? resolve(nameOrFile) : nameOrFile}`, () => resolvePolicy(nameOrFile, 'host policy', field));
}

export function resolveGuestPolicy(nameOrFile: string, field = 'config.guestPolicy'): Promise<GuestPolicy> {
  return cached(`guest\u0000${field}\u0000${looksLikeFile(nameOrFile) ? resolve(nameOrFile) : nameOrFile}`, () => resolvePolicy(nameOrFile, 'guest policy', field));
}

/** The host and guest policies a config names (files relative to the working directory). */
export async function resolvePolicies(hostPolicy: string, guestPolicy: string, fields: { host?: string; guest?: string } = {}): Promise<Policies> {
  return { host: await resolveHostPolicy(hostPolicy, fields.host), guest: await resolveGuestPolicy(guestPolicy, fields.guest) };
}

/** Policies and oracle files given on the command line: they replace or add to a repro's. */
export interface ReproOverrides {
  hostPolicy?: string | undefined;
  guestPolicy?: string | undefined;
  /** --oracle files: loaded in addition to the repro's own `oracles`. */
  oracles?: readonly string[] | undefined;
}

/**
 * A policy named by a repro file: a built-in name, or a file inside the repro's directory tree
 * (plugin-paths.ts). A repro built in memory (no `source`) is trusted code's own data.
 */
function reproPolicyPath(named: string, source: string | undefined, field: string, flag: string, what: PluginKind): string {
  if (source === undefined) return named;
  if (looksLikeFile(named)) return containedPluginPath(source, field, named, flag);
  // A policy object fuzzProperty could not record by file (no `module`, or a file outside the
  // repro's tree) is named by its name: say how to replay it.
  if (!REGISTRIES.get(what)?.has(named)) {
    throw new PluginError(`${source}: ${field}`, `${JSON.stringify(named)} is not a built-in ${what}: a repro naming a user policy replays with ${flag} FILE`);
  }
  return named;
}

/** The policies a repro file names, unless the command line names others. */
export async function resolveReproPolicies(
  repro: { config: { hostPolicy: string; guestPolicy: string }; source?: string },
  overrides: ReproOverrides = {},
): Promise<Policies> {
  const host = overrides.hostPolicy ?? reproPolicyPath(repro.config.hostPolicy, repro.source, 'config.hostPolicy', '--host-policy', 'host policy');
  const guest = overrides.guestPolicy ?? reproPolicyPath(repro.config.guestPolicy, repro.source, 'config.guestPolicy', '--guest-policy', 'guest policy');
  return resolvePolicies(host, guest, {
    host: overrides.hostPolicy !== undefined ? '--host-policy' : 'config.hostPolicy',
    guest: overrides.guestPolicy !== undefined ? '--guest-policy' : 'config.guestPolicy',
  });
}

/**
 * Whether the --oracle file `flag` stands for a recorded oracle path outside the repro's tree: its
 * path ends with the recorded one less its leading `./` and `../` (`../oracles/o.ts` from a
 * shard's findings is `.../oracles/o.ts` in the project), not merely the same file name.
 */
function standsFor(flag: string, named: string): boolean {
  const tail = named.split(/[\\/]/).filter((part) => part !== '' && part !== '.' && part !== '..');
  if (tail.length === 0) return false;
  const parts = resolve(flag).split(/[\\/]/);
  return tail.every((part, i) => parts[parts.length - tail.length + i] === part);
}

/** What a repro runs with: its policies (or the flags') and its oracles with the --oracle files. */
export interface ReproPlugins {
  policies: Policies;
  oracles: readonly Oracle[];
}

/** resolveReproPolicies() and the oracles of reproOracleFiles(), together: what explain and report run a file with. */
export async function resolveReproPlugins(repro: { config: { hostPolicy: string; guestPolicy: string }; oracles?: readonly string[]; source?: string }, oracleFiles: readonly string[] = [], overrides: ReproOverrides = {}): Promise<ReproPlugins> {
  return { policies: await resolveReproPolicies(repro, overrides), oracles: await resolveOracles({ files: reproOracleFiles(repro, oracleFiles) }) };
}

/**
 * The oracle files a replay of `repro` loads: the command line's, then the repro's own (inside
 * its directory tree, unless the command line names the same file). A recorded oracle outside the
 * tree is never loaded from the file's say-so; an --oracle flag whose path ends as the recorded
 * one does stands for it (standsFor(): a finding downloaded from a CI shard names
 * `../oracles/o.ts` from the shard's checkout, which the artifact does not carry, and fuzz told
 * the user to pass `--oracle ./oracles/o.ts`).
 */
export function reproOracleFiles(repro: { oracles?: readonly string[]; source?: string }, flagFiles: readonly string[] = []): string[] {
  const files = [...flagFiles];
  const seen = new Set(flagFiles.map(realOrResolved));
  (repro.oracles ?? []).forEach((named, index) => {
    if (repro.source === undefined) {
      if (!seen.has(resolve(named))) files.push(named);
      return;
    }
    const besideRepro = resolve(dirname(repro.source), named);
    if (existsSync(besideRepro) && seen.has(realpathSync(besideRepro))) return;
    if (!isInside(resolve(dirname(repro.source)), besideRepro) && flagFiles.some((flag) => standsFor(flag, named))) return;
    const real = containedPluginPath(repro.source, `oracles[${index}]`, named, '--oracle');
    if (!seen.has(real)) {
      seen.add(real);
      files.push(real);
    }
  });
  return files;
}

export interface OracleSelection {
  /** User oracle files (--oracle), added to the built-ins. */
  files?: readonly string[];
  /** Restrict to these names (--only-oracle), among the built-ins, the files and the objects. */
  only?: readonly string[];
  /** Oracle objects (fuzzProperty's `oracles`), checked as a file's export is and added like files. */
  objects?: readonly Oracle[];
  /** How errors name where the oracles and the names came from (default: the CLI's flags). */
  fields?: { oracles: string; only: string };
}

export async function resolveOracles(selection: OracleSelection = {}): Promise<Oracle[]> {
  const fields = selection.fields ?? { oracles: '--oracle', only: '--only-oracle' };
  const oracles: Oracle[] = [...builtinOracles];
  for (const file of selection.files ?? []) oracles.push(await loadPlugin<Oracle>(file, 'oracle', validateOracle));
  (selection.objects ?? []).forEach((oracle, i) => {
    checkPluginObject('oracle', oracle, `${fields.oracles}[${i}]`);
    oracles.push(oracle);
  });
  const names = new Set<string>();
  for (const oracle of oracles) {
    if (names.has(oracle.name)) throw new PluginError(fields.oracles, `two oracles are named "${oracle.name}"`);
    names.add(oracle.name);
  }
  if (!selection.only || selection.only.length === 0) return oracles;
  for (const name of selection.only) {
    if (!names.has(name) && name !== POLICY_ERROR) {
      throw new PluginError(fields.only, `no oracle named "${name}" (see cocofuzz oracles)`);
    }
  }
  return oracles.filter((oracle) => selection.only?.includes(oracle.name));
}
