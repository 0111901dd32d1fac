// Coverage-guided case derivation (issue 16): the in-memory corpus of cases that added features,
// and which case index k of a campaign runs. Deterministic whatever the worker count: cases come
// in rounds of ROUND_SIZE, every case of a round is derived from the corpus as it stood when the
// round started (a frozen snapshot), and the campaign records outcomes in index order and starts
// no case of the next round before the whole round is recorded.
//
// A case is fresh from the generator (swarm and all) or a mutant of a corpus entry chosen by the
// rarity of its features (AFL++'s "rare" schedule, syzkaller's signal-weighted choice): an entry
// that reached a feature few others reached is picked more often.

import { createHash } from 'node:crypto';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import { caseSeed, generateCase } from '../ops/generate.ts';
import type { Case } from '../ops/types.ts';
import { encodeRepro, writeRepro } from '../repro/format.ts';
import type { CampaignJob } from './case-job.ts';
import { mutateCase } from './mutate.ts';

/** Cases per round: a round is derived from the corpus as it stood at the round's start. */
export const ROUND_SIZE = 32;
/**
 * The share of cases that mutate a corpus entry once there is one; the rest are fresh. 0.75 found
 * repromote-after-round-trips in 3/10 seeds within 30 s, 0.25 in 8/10 (bench/README.md).
 */
export const MUTATE_SHARE = 0.25;

export interface CorpusEntry {
  testCase: Case;
  features: readonly string[];
  /** The file the entry was read from or written to (absent without --corpus). */
  file?: string;
}

/** The file name of a corpus case: a hash of its content, so the same case is one file. */
export function corpusFileName(testCase: Case): string {
  const text = encodeRepro({ title: '', config: testCase.config, seed: testCase.seed, ops: testCase.ops });
  return `${createHash('sha256').update(text).digest('hex').slice(0, 16)}.json`;
}

export class Guide {
  readonly entries: CorpusEntry[] = [];
  /** Every feature reached (generated cases, findings and the corpus replay), with its hit count. */
  readonly counts = new Map<string, number>();
  /** Files written to the corpus directory (and why writing failed, if it did). */
  writeErrors: string[] = [];
  private snapshot: { round: number; entries: CorpusEntry[]; cumulative: number[] } | undefined;

  constructor(
    private readonly job: CampaignJob,
    private readonly dir?: string,
  ) {}

  /** The corpus size: its file count with a directory, else the in-memory entries. */
  get size(): number {
    return this.dir === undefined ? this.entries.length : this.files;
  }

  get coverage(): number {
    return this.counts.size;
  }

  /** First case index of the round that case `index` belongs to. */
  roundStart(index: number): number {
    return index - (index % ROUND_SIZE);
  }

  /** Counts `features`; true when one of them is new. */
  private count(features: readonly string[]): boolean {
    let fresh = false;
    for (const feature of features) {
      const known = this.counts.get(feature) ?? 0;
      if (known === 0) fresh = true;
      this.counts.set(feature, known + 1);
    }
    return fresh;
  }

  /** Files in the corpus directory: the replayed ones and those written since. */
  files = 0;

  /** A replayed corpus file: its features count; a clean one joins the in-memory corpus. */
  addReplayed(testCase: Case, features: readonly string[], file: string, clean: boolean): void {
    this.count(features);
    this.files++;
    if (clean) this.entries.push({ testCase, features, file });
  }

  /**
   * A campaign case's outcome, in index order. A clean case that reached something new joins the
   * corpus (and DIR, as an `expect: clean` repro); a failing one goes to the findings only.
   */
  observe(testCase: Case, features: readonly string[], clean: boolean): CorpusEntry | undefined {
    const fresh = this.count(features);
    if (!fresh || !clean) return undefined;
    const entry: CorpusEntry = { testCase, features };
    if (this.dir !== undefined) {
      const file = join(this.dir, corpusFileName(testCase));
      try {
        writeRepro(file, { title: `corpus: ${features.length} features`, config: testCase.config, seed: testCase.seed, ops: testCase.ops, expect: { verdict: 'clean' } });
        entry.file = file;
        this.files++;
      } catch (error) {
        this.writeErrors.push(`${file}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    this.entries.push(entry);
    return entry;
  }

  /** The corpus frozen at the start of round `round`, with rarity weights. */
  private frozen(round: number): { entries: CorpusEntry[]; cumulative: number[] } {
    if (this.snapshot?.round === round) return this.snapshot;
    const entries = this.entries.slice();
    const cumulative: number[] = [];
    let total = 0;
    for (const entry of entries) {
      let weight = 0;
      for (const feature of entry.features) weight += 1 / (this.counts.get(feature) ?? 1);
      total += weight;
      cumulative.push(total);
    }
    this.snapshot = { round, entries, cumulative };
    return this.snapshot;
  }

  /**
   * The case behind index `index` (this shard's numbering). Must be called only once every case
   * before the index's round start has been observed.
   */
  caseFor(index: number): Case {
    const seed = caseSeed(this.job.seed, this.job.shard.index + index * this.job.shard.count);
    const { entries, cumulative } = this.frozen(this.roundStart(index));
    const rng = seedrandom(`${seed}/guide`);
    const total = cumulative[cumulative.length - 1] ?? 0;
    if (entries.length === 0 || total <= 0 || rng() >= MUTATE_SHARE) return generateCase(this.job.config, seed, this.job.generate);
    const choose = (): CorpusEntry => {
      const target = rng() * total;
      let k = 0;
      while ((cumulative[k] ?? total) <= target && k < entries.length - 1) k++;
      return entries[k]!;
    };
    const parent = choose();
    const other = choose();
    const sameConfig = JSON.stringify(other.testCase.config) === JSON.stringify(parent.testCase.config);
    return mutateCase(parent.testCase, `${seed}/mutate`, this.job.generate, sameConfig ? other.testCase : undefined);
  }
}
