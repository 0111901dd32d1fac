// Coverage-guided case derivation (issue 16): the in-memory corpus of cases that added features,
// and which case index k of a campaign runs. Deterministic whatever the worker count: cases come
// in rounds of ROUND_SIZE, every case of a round is derived from the corpus as it stood when the
// round started (a frozen snapshot), and the campaign records outcomes in index order and starts
// no case of the next round before the whole round is recorded.
//
// A case comes from one of five *arms*. Two generate from scratch (freshOptions): `fresh` (the
// generator as configured, swarm and all) and `uniform` (every op kind at one weight, no swarm):
// bench/coverage-length.ts measured that which of them reaches a planted bug in fewest ops depends
// on the bug (uniform on those that need several op kinds at once, fresh on those a common op
// hides), so the campaign keeps both and lets the feature signal weigh them. Three derive a case
// from a corpus entry chosen by the rarity of its features per op (AFL++'s "rare" schedule,
// syzkaller's signal-weighted choice, AFL's preference for small queue entries): `havoc`
// (mutate.ts's syzkaller-style mutations), `continue` (the entry's ops, then fresh ones from where
// it got to) and `remix` (a fresh case with the entry's op-kind mix). Each arm's share of a round
// is its measured yield, new features per op, over the sum of all yields (probability matching, as
// MOpt and AFL++'s adaptive operator scheduling weigh mutation operators), above a floor that keeps
// every yield measured. The schedule reads the feature signal only, never a verdict or an oracle.

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import { DEFAULT_WEIGHTS, type GenerateOptions, caseSeed, generateCase } from '../ops/generate.ts';
import type { Case, OpName } from '../ops/types.ts';
import { encodeRepro, reproForFile, writeRepro } from '../repro/format.ts';
import type { CampaignJob } from './case-job.ts';
import { continueCase, mutateCase, remixCase } from './mutate.ts';

/** Cases per round: a round is derived from the corpus as it stood at the round's start. */
export const ROUND_SIZE = 32;
/**
 * The first FIRST_ROUNDS rounds are smaller, so that guidance starts after a few hundred ops
 * rather than after a whole round of fresh cases.
 */
export const FIRST_ROUND_SIZE = 8;
const FIRST_ROUNDS = 4;
const EARLY = FIRST_ROUND_SIZE * FIRST_ROUNDS;
/** Where a case comes from (see the top of the file). */
export const ARMS = ['fresh', 'uniform', 'havoc', 'continue', 'remix'] as const;
export type Arm = (typeof ARMS)[number];
/** Arms that generate from scratch: they run from the first round on, with or without a corpus. */
export const FRESH_ARMS = ['fresh', 'uniform'] as const;
export type FreshArm = (typeof FRESH_ARMS)[number];
const isFresh = (arm: Arm): arm is FreshArm => (FRESH_ARMS as readonly Arm[]).includes(arm);
/** The `uniform` arm's op-kind weights: every kind alike (the plain fc.commands mix). */
const UNIFORM = Object.fromEntries(Object.keys(DEFAULT_WEIGHTS).map((kind) => [kind, 1])) as Record<OpName, number>;

/**
 * The generator options of a fresh arm: `fresh` the campaign's own (swarm and all); `uniform`
 * every op kind at the same weight without swarm (a bug that needs several kinds at once survives
 * swarm's switching kinds off in few cases). Kinds and `during` the user pinned keep their weight.
 */
export function freshOptions(arm: FreshArm, generate: GenerateOptions): GenerateOptions {
  switch (arm) {
    case 'fresh':
      return generate;
    case 'uniform':
      return { ...generate, swarm: false, weights: { ...UNIFORM, ...generate.weights } };
  }
}
/**
 * The share of cases every arm keeps whatever its yield, so that its yield stays measured. 1%:
 * at 5% the five arms kept a quarter of every round whatever they yielded (havoc, whose cases
 * reach the fewest new features per op, got 7%); over 80 seeds of the six deep and
 * swarm-suppressed planted bugs 1% and 2% needed fewer ops to five and six of them
 * (bench/README.md, "The arms' floor").
 */
export const EXPLORE = 0.01;
/**
 * The pseudo-ops of an arm's prior: its yield counts as PRIOR_OPS ops at the pooled yield of all
 * arms so far (an empirical-Bayes prior), so an untried arm gets an average share and its own
 * record takes over within a few cases.
 */
const PRIOR_OPS = 100;
/** The pooled yield before any case was observed. */
const FIRST_YIELD = 0.01;

export interface CorpusEntry {
  /** The case as run (and as written to the corpus directory). */
  testCase: Case;
  /** What mutations start from: the prefix of `testCase` that reached its new features. */
  parent: Case;
  /** The features `parent` reaches. */
  features: readonly string[];
  /** The step of `parent` each feature was first reached at (same order); absent: its last op. */
  steps?: readonly number[];
  /** The first feature that is a near miss (NEAR_MISS), where `continue` returns to probe; with `steps` only. */
  nearMiss?: number;
  /** The file the entry was read from or written to (absent without --corpus). */
  file?: string;
}

/**
 * The file name of a corpus case in `dir`: a hash of its content as written there (plugin paths
 * relative to the file, as writeRepro() writes them), so the same case is one file however the
 * command line spelled a policy's path.
 */
export function corpusFileName(testCase: Case, dir: string): string {
  const text = encodeRepro(reproForFile({ title: '', config: testCase.config, seed: testCase.seed, ops: testCase.ops }, join(dir, 'corpus.json')));
  return `${createHash('sha256').update(text).digest('hex').slice(0, 16)}.json`;
}

/**
 * Where `continue` returns to in `entry` (Go-Explore's "return to a cell, then explore", cells
 * chosen by 1/visits): the prefix of its parent up to the step that first reached one of its
 * features, the feature drawn in proportion to its rarity. `rarities` holds the running sums of
 * its features' rarities (1 / hits at the round's start), `draw` is uniform in [0, 1). The
 * parent's end is only where its last new feature was reached; a rarer situation reached earlier
 * may have been left since (a resync repairing it, a conversion undoing it), and exploring from it
 * needs the state as it was then.
 */
export function cellOf(entry: CorpusEntry, rarities: Float64Array, draw: number): Case {
  return cellAt(entry, cellIndex(entry, rarities, draw));
}

/** The feature cellOf() returns to (its index in `entry.features`), or -1: the parent's end. */
function cellIndex(entry: CorpusEntry, rarities: Float64Array, draw: number): number {
  if (entry.steps === undefined || rarities.length === 0) return -1;
  const target = draw * rarities[rarities.length - 1]!;
  let i = 0;
  while (i < rarities.length - 1 && rarities[i]! <= target) i++;
  return i;
}

/** The prefix of `entry`'s parent up to the step that first reached feature `i` (-1: all of it). */
function cellAt(entry: CorpusEntry, i: number): Case {
  const { parent, steps } = entry;
  if (i < 0 || steps === undefined) return parent;
  return { ...parent, ops: parent.ops.slice(0, Math.min(parent.ops.length, steps[i]! + 1)) };
}

/**
 * A near miss (`dma.live=untranslated`, README "Coverage and the corpus"): a live DMA object whose
 * memory the device's S2 does not translate, one DMA away from a dma-liveness finding, a
 * situation no correct policy reaches. `continue` returns to the step that first reached it in
 * NEAR_MISS_SHARE of its picks of such an entry, and makes that DMA first (continueCase's probes),
 * as a fuzzer completes a comparison it came close to (AFL++'s CmpLog, libFuzzer's value
 * profile). Measured on the 80 seeds of bench/README.md ("Near misses"): sync-repairs 3,198 ->
 * 2,116 restricted-mean ops, the other five planted bugs unchanged (none reaches the situation).
 */
const NEAR_MISS = 'dma.live=untranslated';
const NEAR_MISS_SHARE = 0.5;

/** Is the situation `feature` names a near miss? A move's is the tuple it moved to (`move:<from>><to>`). */
export function isNearMiss(feature: string): boolean {
  return feature.startsWith('move:') ? feature.slice(feature.indexOf('>') + 1).includes(NEAR_MISS) : feature.includes(NEAR_MISS);
}

/** `{ nearMiss }`: the first of `features` that is a near miss (NEAR_MISS), if any. */
function withNearMiss(features: readonly string[]): { nearMiss?: number } {
  const i = features.findIndex(isNearMiss);
  return i < 0 ? {} : { nearMiss: i };
}

/** What a round derives its cases from, frozen at its start. */
interface Snapshot {
  round: number;
  entries: CorpusEntry[];
  /** Running sums of the entries' weights (rarity per op). */
  cumulative: number[];
  /** Per entry, running sums of its features' rarities (1 / hits): where `continue` returns to. */
  cells: Float64Array[];
  /** Running sums of the arms' shares. */
  arms: number[];
}

export class Guide {
  readonly entries: CorpusEntry[] = [];
  /** Every feature reached (generated cases, findings and the corpus replay), with its hit count. */
  readonly counts = new Map<string, number>();
  /**
   * The features some clean case reached: the corpus's. A finding's features count (rarity, the
   * coverage figure) but a failing case never joins the corpus, so a clean case that reaches a
   * feature only findings had reached joins it: else tomorrow's campaign, which starts from the
   * corpus, would never see that feature again (AFL likewise keeps crashes out of the queue's
   * coverage map, virgin_bits vs virgin_crash).
   */
  private readonly kept = new Set<string>();
  /** Files written to the corpus directory (and why writing failed, if it did). */
  writeErrors: string[] = [];
  /** New features and ops of the cases each arm made (recorded in index order). */
  readonly yields = Object.fromEntries(ARMS.map((arm) => [arm, { features: 0, ops: 0 }])) as Record<Arm, { features: number; ops: number }>;
  /** The arm behind each case index this guide derived, until that case is observed. */
  private readonly arms = new Map<number, Arm>();
  private snapshot: Snapshot | undefined;

  /**
   * `dir`: the corpus directory new corpus cases are written to; `files`: the corpus files it
   * held at the start (all of them, replayed or not: an interrupted replay still has them).
   */
  constructor(
    private readonly job: CampaignJob,
    private readonly dir?: string,
    files = 0,
  ) {
    this.files = files;
  }

  /** The corpus size: its file count with a directory, else the in-memory entries. */
  get size(): number {
    return this.dir === undefined ? this.entries.length : this.files;
  }

  get coverage(): number {
    return this.counts.size;
  }

  /** First case index of the round that case `index` belongs to. */
  roundStart(index: number): number {
    if (index < EARLY) return index - (index % FIRST_ROUND_SIZE);
    return index - ((index - EARLY) % ROUND_SIZE);
  }

  /**
   * Counts `features`; returns how many ops of the case it takes to reach every feature that was
   * new (0: none was) and how many were new. Without `steps` (the step each feature was first
   * reached at), reaching them takes the whole case.
   */
  private count(features: readonly string[], ops: number, steps?: readonly number[]): { reach: number; fresh: number } {
    let reach = 0;
    let fresh = 0;
    for (let i = 0; i < features.length; i++) {
      const feature = features[i]!;
      const known = this.counts.get(feature) ?? 0;
      if (known === 0) {
        fresh++;
        reach = Math.max(reach, steps === undefined ? ops : Math.min(ops, (steps[i] ?? ops) + 1));
      }
      this.counts.set(feature, known + 1);
    }
    return { reach, fresh };
  }

  /**
   * Adds a clean case's `features` to the corpus's; returns how many ops of the case it takes to
   * reach every one the corpus lacked (0: it lacked none), as count() does for all reached.
   */
  private keep(features: readonly string[], ops: number, steps?: readonly number[]): number {
    let reach = 0;
    for (let i = 0; i < features.length; i++) {
      const feature = features[i]!;
      if (this.kept.has(feature)) continue;
      this.kept.add(feature);
      reach = Math.max(reach, steps === undefined ? ops : Math.min(ops, (steps[i] ?? ops) + 1));
    }
    return reach;
  }

  /**
   * The in-memory corpus entry of a case whose first `reach` ops reached something new: that
   * prefix, as syzkaller minimizes a program to the calls that gave new signal and AFL trims a
   * queue entry, so that mutants start from the short way into a new situation.
   */
  private entry(testCase: Case, features: readonly string[], reach: number, steps?: readonly number[]): CorpusEntry {
    if (steps === undefined) return { testCase, parent: testCase, features };
    if (reach >= testCase.ops.length) return { testCase, parent: testCase, features, steps, ...withNearMiss(features) };
    const kept = features.flatMap((_, i) => ((steps[i] ?? 0) < reach ? [i] : []));
    const keptFeatures = kept.map((i) => features[i]!);
    return { testCase, parent: { ...testCase, ops: testCase.ops.slice(0, reach) }, features: keptFeatures, steps: kept.map((i) => steps[i]!), ...withNearMiss(keptFeatures) };
  }

  /** Files in the corpus directory: those it held at the start and those written since. */
  private files: number;

  /** A replayed corpus file: its features count; a clean one joins the in-memory corpus. */
  addReplayed(testCase: Case, features: readonly string[], file: string, clean: boolean, steps?: readonly number[]): void {
    this.count(features, testCase.ops.length, steps);
    if (!clean) return;
    const reach = this.keep(features, testCase.ops.length, steps);
    this.entries.push({ ...this.entry(testCase, features, reach > 0 ? reach : testCase.ops.length, steps), file });
  }

  /**
   * A campaign case's outcome, in index order. A clean case that reached something the corpus
   * lacked joins it (and DIR, as an `expect: clean` repro, whole); a failing one goes to the
   * findings only.
   * `steps` (the step each feature was first reached at, CoverageTracker.firstSteps order) lets
   * the in-memory entry keep only the prefix that reached the new features; `index` (the case's
   * index, as given to caseFor) credits what it reached to the arm that made it.
   */
  observe(testCase: Case, features: readonly string[], clean: boolean, steps?: readonly number[], index?: number): CorpusEntry | undefined {
    const { fresh } = this.count(features, testCase.ops.length, steps);
    const arm = index === undefined ? undefined : this.arms.get(index);
    if (arm !== undefined) {
      this.yields[arm].features += fresh;
      this.yields[arm].ops += testCase.ops.length;
      this.arms.delete(index!);
    }
    if (!clean) return undefined;
    const reach = this.keep(features, testCase.ops.length, steps);
    if (reach === 0) return undefined;
    const entry = this.entry(testCase, features, reach, steps);
    if (this.dir !== undefined) {
      const file = join(this.dir, corpusFileName(testCase, this.dir));
      try {
        // Named by its content: a case the directory already holds is the same file.
        const known = existsSync(file);
        writeRepro(file, { title: `corpus: ${features.length} features`, config: testCase.config, seed: testCase.seed, ops: testCase.ops, expect: { verdict: 'clean' } });
        entry.file = file;
        if (!known) this.files++;
      } catch (error) {
        this.writeErrors.push(`${file}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    this.entries.push(entry);
    return entry;
  }

  /**
   * An arm's yield, new features per op: what it measured, after PRIOR_OPS ops at the pooled
   * yield of every arm. A fixed prior (it was 1 feature per 100 ops) sat far below what the fresh
   * arms measure in a campaign's first rounds (30-50 per 1000 ops, everything being new then), so
   * the derived arms, untried when the corpus first held a case, started with a fraction of an
   * average share and stayed there while their own record grew.
   */
  rate(arm: Arm): number {
    let features = 0;
    let ops = 0;
    for (const a of ARMS) {
      features += this.yields[a].features;
      ops += this.yields[a].ops;
    }
    const pooled = ops > 0 ? features / ops : FIRST_YIELD;
    return (this.yields[arm].features + PRIOR_OPS * pooled) / (this.yields[arm].ops + PRIOR_OPS);
  }

  /**
   * The share of cases each arm gets with the yields measured so far, by probability matching
   * (MOpt, AFL++'s adaptive operator scheduling): an arm's measured yield over the sum of them,
   * above a floor of EXPLORE. Without a corpus (`corpus` false) only the fresh arms run.
   */
  shares(corpus: boolean): Record<Arm, number> {
    const usable = ARMS.filter((arm) => corpus || isFresh(arm));
    const rate = (arm: Arm): number => this.rate(arm);
    const rates = usable.reduce((sum, arm) => sum + rate(arm), 0);
    const shares = Object.fromEntries(ARMS.map((arm) => [arm, 0])) as Record<Arm, number>;
    for (const arm of usable) shares[arm] = EXPLORE + (1 - EXPLORE * usable.length) * (rates > 0 ? rate(arm) / rates : 1 / usable.length);
    return shares;
  }

  /** The corpus frozen at the start of round `round`: rarity-per-op weights, cells and arm shares. */
  private frozen(round: number): Snapshot {
    if (this.snapshot?.round === round) return this.snapshot;
    const entries = this.entries.slice();
    const cumulative: number[] = [];
    const cells: Float64Array[] = [];
    let total = 0;
    for (const entry of entries) {
      const rarities = new Float64Array(entry.features.length);
      let weight = 0;
      entry.features.forEach((feature, i) => (rarities[i] = weight += 1 / (this.counts.get(feature) ?? 1)));
      cells.push(rarities);
      // Per op: a short way into a rare situation is worth more than a long one.
      total += weight / Math.max(1, entry.parent.ops.length);
      cumulative.push(total);
    }
    const shares = this.shares(entries.length > 0 && total > 0);
    const arms: number[] = [];
    let sum = 0;
    for (const arm of ARMS) arms.push((sum += shares[arm]));
    this.snapshot = { round, entries, cumulative, cells, arms };
    return this.snapshot;
  }

  /** The arm that made case `index`, until that case is observed (for benchmarks). */
  armOf(index: number): Arm | undefined {
    return this.arms.get(index);
  }

  /**
   * The case behind index `index` (this shard's numbering). Must be called only once every case
   * before the index's round start has been observed.
   */
  caseFor(index: number): Case {
    const seed = caseSeed(this.job.seed, this.job.shard.index + index * this.job.shard.count);
    const snapshot = this.frozen(this.roundStart(index));
    const { entries, cumulative, arms } = snapshot;
    const rng = seedrandom(`${seed}/guide`);
    const pick = rng();
    const arm = ARMS[arms.findIndex((share) => pick < share)] ?? 'fresh';
    const total = cumulative[cumulative.length - 1] ?? 0;
    const chooseIndex = (): number => {
      const target = rng() * total;
      let k = 0;
      while ((cumulative[k] ?? total) <= target && k < entries.length - 1) k++;
      return k;
    };
    const choose = (): CorpusEntry => entries[chooseIndex()]!;
    let testCase: Case;
    // Without a corpus frozen() gives only the fresh arms a share, so a derived arm has a parent.
    if (isFresh(arm)) testCase = generateCase(this.job.config, seed, freshOptions(arm, this.job.generate));
    else if (arm === 'continue') {
      const k = chooseIndex();
      const entry = entries[k]!;
      const drawn = cellIndex(entry, snapshot.cells[k]!, rng());
      // An entry that came one DMA short of a finding returns there half of the time, and probes.
      const cell = entry.nearMiss !== undefined && rng() < NEAR_MISS_SHARE ? entry.nearMiss : drawn;
      testCase = continueCase(cellAt(entry, cell), `${seed}/continue`, this.job.generate, cell >= 0 && isNearMiss(entry.features[cell]!));
    }
    else if (arm === 'remix') testCase = remixCase(choose().parent, `${seed}/remix`, this.job.generate);
    else {
      const parent = choose().parent;
      const other = choose().parent;
      const sameConfig = JSON.stringify(other.config) === JSON.stringify(parent.config);
      testCase = mutateCase(parent, `${seed}/mutate`, this.job.generate, sameConfig ? other : undefined);
    }
    this.arms.set(index, arm);
    return testCase;
  }
}
