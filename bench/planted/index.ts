// The planted-bug suite, in report order (by class), and what a run of one bug needs: its config
// and the policy pair with its flag on. `undefined` stands for the bug-free control.

import type { Policies } from '../../src/engine/run.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import type { Case, Config } from '../../src/ops/types.ts';
import coherentPoolForAccepted from './coherent-pool-for-accepted.ts';
import coherentPrivateForAtomic from './coherent-private-for-atomic.ts';
import greedyMirrorAfterConversions from './greedy-mirror-after-conversions.ts';
import { plantedGuestPolicy } from './guest.ts';
import { plantedHostPolicy } from './host.ts';
import noCutBeforeFirstSync from './no-cut-before-first-sync.ts';
import repromoteAfterRoundTrips from './repromote-after-round-trips.ts';
import rescindSkippedFor2m from './rescind-skipped-for-2m.ts';
import share2mKeepsPrivateS2 from './share-2m-keeps-private-s2.ts';
import sizemRmpupdateRebuild from './sizem-rmpupdate-rebuild.ts';
import smashKeepsS22m from './smash-keeps-s2-2m.ts';
import smashNoCutAbove1g from './smash-no-cut-above-1g.ts';
import stalePinAfterReshare from './stale-pin-after-reshare.ts';
import syncRepairsMissingPrivateMap from './sync-repairs-missing-private-map.ts';
import type { BugFlag, PlantedBug } from './types.ts';
import validateBeforePsc from './validate-before-psc.ts';
import skipInvalidateOnPrivate from './skip-invalidate-on-private.ts';
import unpinBeforeFlush from './unpin-before-flush.ts';
import sizemIgnored from './sizem-ignored.ts';
import poolTailLeftPrivate from './pool-tail-left-private.ts';

export type { BugClass, BugFlag, PlantedBug } from './types.ts';

export const plantedBugs: readonly PlantedBug[] = [
  smashKeepsS22m,
  coherentPrivateForAtomic,
  coherentPoolForAccepted,
  smashNoCutAbove1g,
  share2mKeepsPrivateS2,
  rescindSkippedFor2m,
  repromoteAfterRoundTrips,
  greedyMirrorAfterConversions,
  stalePinAfterReshare,
  syncRepairsMissingPrivateMap,
  noCutBeforeFirstSync,
  sizemRmpupdateRebuild,
  validateBeforePsc,
  skipInvalidateOnPrivate,
  unpinBeforeFlush,
  sizemIgnored,
  poolTailLeftPrivate,
];

/** The name the control goes by in tables and results. */
export const CONTROL = 'control';

/** The policies the copies stand for: config.hostPolicy/guestPolicy are names only, runCase takes the objects. */
export const PLANTED_BASE = { hostPolicy: 'quiesce-dma', guestPolicy: 'linux-2m-pool' } as const;

export function plantedBug(flag: string): PlantedBug | undefined {
  return plantedBugs.find((bug) => bug.flag === flag);
}

/** The config a bug (or the control) runs under: the defaults, the base policy names, the bug's extras. */
export function plantedConfig(bug: PlantedBug | undefined, overrides: Record<string, unknown> = {}): Config {
  return defaultConfig({ ...PLANTED_BASE, ...(bug?.config ?? {}), ...overrides });
}

/** The policy pair with exactly this bug's flag on (none: the control). */
export function plantedPolicies(flag: BugFlag | undefined): Policies {
  return { host: plantedHostPolicy(flag), guest: plantedGuestPolicy(flag) };
}

/** A bug's hand-minimal sequence as a case. */
export function minimalCase(bug: PlantedBug): Case {
  return { config: plantedConfig(bug), seed: `minimal/${bug.flag}`, ops: bug.minimal.map((op) => ({ ...op })) };
}
