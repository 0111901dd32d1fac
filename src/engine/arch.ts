// The architectures a case can name in `config.arch`. The runner looks the world up here instead
// of assuming SEV-SNP, so Arm CCA and Intel TDX models can join as entries of their own (each with
// its machine, actors and a World that implements the same View).

import type { Config } from '../ops/types.ts';
import type { GuestPolicy, HostPolicy } from '../policies/types.ts';
import type { CallMeter } from './call-budget.ts';
import { type World, createWorld as createSnpWorld } from './world.ts';

export type WorldFactory = (config: Config, policies: { host: HostPolicy; guest: GuestPolicy }, seed: string, meter?: CallMeter) => World;

export const ARCHITECTURES: Readonly<Record<Config['arch'], WorldFactory>> = {
  snp: createSnpWorld,
};

export function worldFor(config: Config, policies: { host: HostPolicy; guest: GuestPolicy }, seed: string, meter?: CallMeter): World {
  const factory = ARCHITECTURES[config.arch];
  if (!factory) throw new Error(`no model for arch "${String(config.arch)}"`);
  return factory(config, policies, seed, meter);
}
