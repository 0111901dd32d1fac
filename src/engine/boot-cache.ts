// Boot once per (arch, config, policies) and restore per case (issue 15). Boot makes the swiotlb
// and atomic pools shared through the policies' hooks, so its cost grows with the pool; every
// case of a campaign boots the same world. So the first case of a (config, policies) pair boots
// a template, and each case gets a copy of it (graph-copy.ts: proportional to the state's
// objects, runs and 2M regions, not to its pages; hooks do not run again).
//
// A copy equals a fresh boot because boot depends on nothing but the config and the policies:
// - the policies' random streams are seeded per case: a template whose boot drew from them is
//   never used (the pair boots per case); otherwise the copy gets fresh streams from its seed;
// - the policies are wrapped per case by the case's CallMeter: the copy uses the new case's;
// - the policies' ctx.state is copied with the world; a state the copy cannot take (a function
//   in it) makes the pair boot per case;
// - a boot that failed (a policy error, a fatal guest event) is reported at the first op:
//   such a pair boots per case, as before.
// The cache is per thread (each worker has its own module instance), small and LRU: a campaign
// runs one config, a property test a few. COCOFUZZ_BOOT_CACHE=off turns it off (as does
// RunOptions.bootCache false), which is how tests compare the two.

import type { Config } from '../ops/types.ts';
import type { GuestPolicy, HostPolicy } from '../policies/types.ts';
import type { WorldModel } from './arch.ts';
import type { CallMeter } from './call-budget.ts';
import { GraphCopyError } from '../model/graph-copy.ts';
import { callsIn } from '../model/types.ts';
import type { World } from './world.ts';

/**
 * Pairs kept per thread. A campaign runs one pair, the golden runs and property tests a handful
 * interleaved: more pairs than this in turn would boot a template per case (a boot and a copy).
 * A template of a 1 TiB guest with its default 1G pool holds about 10 MiB.
 */
export const BOOT_CACHE_ENTRIES = 8;

/**
 * A pair whose boot makes fewer primitive calls than this boots per case. A restored world runs
 * its ops a few percent slower than a fresh one (its objects are copies, whose hidden classes
 * differ from the constructors', so the model's property accesses see two shapes), which on the
 * bench workload (quiesce-dma + linux-2m-pool at 64M: 36 calls at boot, 0.7 ms) cost more than
 * the 0.3 ms a restore saved: hot.ts all 800, 11,060 and 12,130 ops/s cached vs 12,322 and 13,259
 * fresh on a loaded machine; 13,982, 13,829 and 13,661 vs 14,457, 13,477 and 14,229 idle. A boot that maps a pool 4K by 4K (kvm-iommu-4k + linux at 64M: 3,102 calls, 3.4 ms vs
 * 0.35 ms restored) or a 1 TiB guest's 1G pool (4,608 calls) gains far more than that.
 */
export const BOOT_CACHE_MIN_CALLS = 1000;

/** The threshold in force (tests set it to 0, so that every pair is copied). */
export const bootCacheSettings = { minCalls: BOOT_CACHE_MIN_CALLS };

/** A pair's template, or why the pair boots per case. */
type Entry = { template: World } | { fresh: string };

const entries = new Map<string, Entry>();
/** Each policy object's number in cache keys (policies are compared by identity, not by name). */
const policyIds = new WeakMap<object, number>();
let nextPolicyId = 0;

/** What the cache did in this thread (tests, benchmarks). */
export const bootCacheStats = { booted: 0, restored: 0, fresh: 0 };

/** Whether COCOFUZZ_BOOT_CACHE turns the cache off for this process. */
export const bootCacheDisabled = (): boolean => process.env.COCOFUZZ_BOOT_CACHE === 'off';

/** Drop every template (tests; a process otherwise keeps them until evicted). */
export function clearBootCache(): void {
  entries.clear();
}

/** Why `(config, policies)` boots per case in this thread, if it does (tests). */
export function bootsPerCase(config: Config, policies: { host: HostPolicy; guest: GuestPolicy }): string | undefined {
  const entry = entries.get(cacheKey(config, policies));
  return entry !== undefined && 'fresh' in entry ? entry.fresh : undefined;
}

/** The world of a case: a copy of its pair's template, or a fresh boot where none can serve. */
export function bootCached(model: WorldModel, config: Config, policies: { host: HostPolicy; guest: GuestPolicy }, seed: string, meter?: CallMeter): World {
  if (bootCacheDisabled()) return model.create(config, policies, seed, meter);
  const key = cacheKey(config, policies);
  let entry = entries.get(key);
  if (entry !== undefined) {
    // Most recently used last: the Map's order is the eviction order.
    entries.delete(key);
    entries.set(key, entry);
  } else {
    entry = template(model, config, policies, meter);
    entries.set(key, entry);
    if (entries.size > BOOT_CACHE_ENTRIES) entries.delete(entries.keys().next().value as string);
  }
  if ('fresh' in entry) {
    bootCacheStats.fresh++;
    return model.create(config, policies, seed, meter);
  }
  try {
    const world = model.restore(entry.template, config, policies, seed, meter);
    bootCacheStats.restored++;
    return world;
  } catch (error) {
    // The first restore of a pair is its trial: a state the copy cannot take boots per case.
    if (!(error instanceof GraphCopyError)) throw error;
    entries.set(key, { fresh: `its booted state cannot be copied: ${error.message}` });
    bootCacheStats.fresh++;
    return model.create(config, policies, seed, meter);
  }
}

/**
 * Boot the pair's template, with a seed of its own (a template that drew from it is not kept)
 * and the case's meter: boot charges nothing to it, but a worker's watchdog learns from it which
 * hook runs, so a boot hook that never returns is named as it would be in a fresh boot.
 */
function template(model: WorldModel, config: Config, policies: { host: HostPolicy; guest: GuestPolicy }, meter: CallMeter | undefined): Entry {
  const world = model.create(config, policies, 'boot-cache template', meter);
  bootCacheStats.booted++;
  if (!model.isReusable(world)) return { fresh: 'its boot failed or drew randomness' };
  // Counted over the records: reading `calls` would expand (and freeze) a boot's runs.
  let calls = 0;
  for (const record of world.boot.callRuns ?? world.boot.calls) calls += callsIn(record);
  return calls >= bootCacheSettings.minCalls ? { template: world } : { fresh: `its boot is cheaper than a copy (${calls} primitive calls)` };
}

function cacheKey(config: Config, policies: { host: HostPolicy; guest: GuestPolicy }): string {
  return `${config.arch}\u0000${policyId(policies.host)}\u0000${policyId(policies.guest)}\u0000${canonicalJson(config)}`;
}

function policyId(policy: object): number {
  let id = policyIds.get(policy);
  if (id === undefined) policyIds.set(policy, (id = nextPolicyId++));
  return id;
}

/**
 * JSON with every object's keys sorted: equal configs give one key however they were built. Built
 * by concatenation rather than map/join: it runs for every case (1.2% of the cheap ops' time with
 * every oracle, where the bench workload boots fresh per case).
 */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) {
    let out = '[';
    // A hole reads as nothing, as join() renders it.
    for (let i = 0; i < value.length; i++) out += (i > 0 ? ',' : '') + (i in value ? canonicalJson(value[i]) : '');
    return `${out}]`;
  }
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record).sort();
    let out = '{';
    for (let i = 0; i < keys.length; i++) out += `${i > 0 ? ',' : ''}${JSON.stringify(keys[i])}:${canonicalJson(record[keys[i]!])}`;
    return `${out}}`;
  }
  return JSON.stringify(value) ?? 'undefined';
}
