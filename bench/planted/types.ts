// The planted-bug suite (research/fuzzer-anchors.md section 5): each bug lives behind its own flag
// in a copy of a correct policy pair (host.ts copies quiesce-dma, guest.ts copies
// linux-2m-pool), so a run carries exactly one bug; with no flag the copies are the bug-free
// control. Each bug file names its class, the oracle that should catch it and a hand-written
// minimal op sequence (test/bench-planted.test.ts checks that the sequence fires that oracle and
// that the control stays clean on it).

import type { Op } from '../../src/ops/types.ts';

export type BugClass = 'shallow' | 'deep' | 'boundary' | 'swarm-suppressed' | 'interleaving';

/** One flag per planted bug. */
export type BugFlag =
  | 'smash-keeps-s2-2m'
  | 'coherent-private-for-atomic'
  | 'coherent-pool-for-accepted'
  | 'smash-no-cut-above-1g'
  | 'share-2m-keeps-private-s2'
  | 'rescind-skipped-for-2m'
  | 'repromote-after-round-trips'
  | 'greedy-mirror-after-conversions'
  | 'stale-pin-after-reshare'
  | 'sync-repairs-missing-private-map'
  | 'no-cut-before-first-sync'
  | 'sizem-rmpupdate-rebuild'
  | 'validate-before-psc'
  | 'skip-invalidate-on-private'
  | 'unpin-before-flush'
  | 'sizem-ignored'
  | 'pool-tail-left-private';

export interface PlantedBug {
  flag: BugFlag;
  class: BugClass;
  /** Which policy carries it. */
  side: 'host' | 'guest';
  /** What the planted code does wrong, and what real mistake it stands for. */
  description: string;
  /** The oracle that should report it. */
  oracle: string;
  /** Config fields besides the defaults (parseConfig form), when the bug needs them. */
  config?: Record<string, unknown>;
  /** A shortest op sequence that triggers it, written by hand; its length is the reference for shrinking. */
  minimal: Op[];
}

export const definePlantedBug = (bug: PlantedBug): PlantedBug => bug;
