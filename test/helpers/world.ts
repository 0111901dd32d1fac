// Building worlds for the actor and policy tests.

import type { Step } from '../../src/api.ts';
import type { ActorEnv } from '../../src/host/env.ts';
import type { Machine } from '../../src/model/machine.ts';
import { createWorld, type World } from '../../src/engine/world.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import type { Config, Op } from '../../src/ops/types.ts';
import { guestPolicies, hostPolicies } from '../../src/policies/index.ts';
import type { GuestPolicy, HostPolicy } from '../../src/policies/types.ts';

export const SZ_4K = 4096;
export const SZ_2M = 2 * 1024 * 1024;

/** An actor environment with no budget and no guard: hooks run as they are (a Host or Iommu built by hand). */
export function bareEnv(machine: Machine): ActorEnv {
  return { guard: (fn) => fn(), charge: () => {}, chargeRun: () => true, policyMachine: machine, random: () => 0.5 };
}

/** One trusted and one untrusted device behind the host S2 (the config's defaults). */
export function makeConfig(overrides: Record<string, unknown> = {}): Config {
  return defaultConfig(overrides);
}

export function makeWorld(
  overrides: Record<string, unknown> = {},
  policies: { host?: HostPolicy; guest?: GuestPolicy } = {},
  seed = 'test',
): World {
  const config = makeConfig(overrides);
  const host = policies.host ?? hostPolicies[config.hostPolicy];
  const guest = policies.guest ?? guestPolicies[config.guestPolicy];
  if (!host || !guest) throw new Error(`unknown policy in ${JSON.stringify(overrides)}`);
  return createWorld(config, { host, guest }, seed);
}

/** Apply ops in order, numbering steps from `first`. */
export function run(world: World, ops: readonly Op[], first = 0): Step[] {
  return ops.map((op, i) => world.apply(op, first + i));
}

export const prims = (step: Pick<Step, 'calls'>): string[] => step.calls.map((c) => c.prim);

export const countPrims = (step: Pick<Step, 'calls'>, prim: string): number => step.calls.filter((c) => c.prim === prim).length;

/** The HPA the host backs `gpa` with (the NPT's frame once mapped). */
export function frameOf(world: World, gpa: number): number {
  const backing = world.host.backing(gpa);
  if (!backing) throw new Error(`gpa 0x${gpa.toString(16)} is not backed`);
  return backing.hpa;
}
