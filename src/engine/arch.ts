// The architectures a case can name in `config.arch`. The runner looks the world up here instead
// of assuming SEV-SNP, so Arm CCA and Intel TDX models can join as entries of their own (each with
// its machine, actors and a World that implements the same View).

import type { Config } from '../ops/types.ts';
import type { GuestPolicy, HostPolicy } from '../policies/types.ts';
import { bootCached } from './boot-cache.ts';
import type { CallMeter } from './call-budget.ts';
import { type World, createWorld as createSnpWorld, isReusable as isReusableSnp, restoreWorld as restoreSnpWorld } from './world.ts';

export type WorldFactory = (config: Config, policies: { host: HostPolicy; guest: GuestPolicy }, seed: string, meter?: CallMeter) => World;

/** How an architecture builds the world of a case, and restores one from a booted template. */
export interface WorldModel {
  create: WorldFactory;
  /** A copy of `template` (a world `create` booted for the same config and policies) for this case. */
  restore(template: World, config: Config, policies: { host: HostPolicy; guest: GuestPolicy }, seed: string, meter?: CallMeter): World;
  /** Whether a booted world may be a template: its boot failed in no way and drew no randomness. */
  isReusable(world: World): boolean;
}

export const ARCHITECTURES: Readonly<Record<Config['arch'], WorldModel>> = {
  snp: { create: createSnpWorld, restore: restoreSnpWorld, isReusable: isReusableSnp },
};

/**
 * The world of a case: booted once per (arch, config, policies) in this thread and restored for
 * each case (boot-cache.ts), or booted for this case alone when `cache` is false.
 */
export function worldFor(config: Config, policies: { host: HostPolicy; guest: GuestPolicy }, seed: string, meter?: CallMeter, cache = true): World {
  const model = ARCHITECTURES[config.arch];
  if (!model) throw new Error(`no model for arch "${String(config.arch)}"`);
  return cache ? bootCached(model, config, policies, seed, meter) : model.create(config, policies, seed, meter);
}
