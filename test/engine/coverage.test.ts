// The coverage signal, mutations and guided derivation, in process (issue 16).

import { describe, expect, it } from 'vitest';
import { type CampaignJob, prepareRunner, runCampaignCase } from '../../src/engine/case-job.ts';
import { CoverageTracker, regionTuple } from '../../src/engine/coverage.ts';
import { ARMS, type Arm, EXPLORE, FIRST_ROUND_SIZE, FRESH_ARMS, Guide, ROUND_SIZE, freshOptions } from '../../src/engine/guided.ts';
import { continueCase, mutateCase, remixCase } from '../../src/engine/mutate.ts';
import { runCase } from '../../src/engine/run.ts';
import { caseSeed, generateCase } from '../../src/ops/generate.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import type { Case, Op } from '../../src/ops/types.ts';
import { GUEST_PAGE_SHARED, GUEST_PAGE_VALIDATED, type View, defaultRmpEntry } from '../../src/api.ts';
import { encodeRepro, parseRepro } from '../../src/repro/format.ts';

const config = defaultConfig({ hostPolicy: 'quiesce-dma', guestMemory: '64M' });
const job: CampaignJob = { config, seed: 'cov', generate: { steps: 24 }, oracleFiles: [], onlyOracles: [], minimizeBudget: 100, shard: { index: 0, count: 1 }, coverage: true };
const runner = await prepareRunner(job);

function features(ops: Op[], seed = '0'): Set<string> {
  const tracker = new CoverageTracker();
  runCase({ config, seed, ops }, runner.policies, { oracles: runner.oracles, onStep: (step, view) => tracker.observe(step, view) });
  return tracker.features;
}

describe('coverage signal', () => {
  it('an old situation at a new address is no new feature', () => {
    const a = features([{ op: 'accept', gpa: 0x200000, size: '2M' }, { op: 'share', gpa: 0x200000, pages: 1 }, { op: 'touch', gpa: 0x201000, write: true }]);
    const b = features([{ op: 'accept', gpa: 0x1400000, size: '2M' }, { op: 'share', gpa: 0x1400000, pages: 1 }, { op: 'touch', gpa: 0x1401000, write: true }]);
    expect(a.size).toBeGreaterThan(10);
    expect([...b].filter((f) => !a.has(f))).toEqual([]);
    expect([...a].filter((f) => !b.has(f))).toEqual([]);
  });

  it('a new situation is a new feature: a region tuple, a transition and an op outcome', () => {
    const whole = features([{ op: 'accept', gpa: 0x200000, size: '2M' }]);
    const split = features([{ op: 'accept', gpa: 0x200000, size: '2M' }, { op: 'share', gpa: 0x200000, pages: 1 }]);
    const added = [...split].filter((f) => !whole.has(f));
    expect(added.some((f) => f.startsWith('region:') && f.includes('guest.shared=some'))).toBe(true);
    expect(added.some((f) => f.startsWith('move:'))).toBe(true);
    expect(added.some((f) => f.startsWith('op:share:'))).toBe(true);
    // No feature carries an address.
    for (const f of split) expect(f).not.toMatch(/0x[0-9a-f]{4,}/);
  });

  it('coverage does not change any verdict', () => {
    const off: CampaignJob = { ...job, config: defaultConfig({ guestMemory: '64M' }), coverage: false };
    const on: CampaignJob = { ...off, coverage: true };
    for (let index = 0; index < 30; index++) {
      const a = runCampaignCase(off, runner, index);
      const b = runCampaignCase(on, runner, index);
      expect(b.signature).toEqual(a.signature);
      expect(b.stepsRun).toEqual(a.stepsRun);
      expect(a.features).toBeUndefined();
      expect(b.features?.length).toBeGreaterThan(0);
    }
  });
  it('reading the region tuple run by run gives what reading it frame by frame gives', () => {
    // The reference: every one of the region's 512 frames through the view, as the signal is defined.
    const mix = (n: number): string => (n === 0 ? 'none' : n === 512 ? 'all' : 'some');
    const reference = (view: View, base: number): string[] => {
      let assigned = 0;
      let validated = 0;
      const sizes = new Set<string>();
      let shared = 0;
      let guestValidated = 0;
      for (let i = 0; i < 512; i++) {
        const hpa = view.host.backingHpa(base + i * 4096);
        if (hpa >= 0) {
          const entry = view.rmp.load(Math.floor(hpa / 4096), defaultRmpEntry());
          if (entry.assigned && entry.asid === view.asid) {
            assigned++;
            sizes.add(entry.size);
            if (entry.validated) validated++;
          }
        }
        const flags = view.guest.pageFlags(base / 4096 + i);
        if ((flags & GUEST_PAGE_SHARED) !== 0) shared++;
        if ((flags & GUEST_PAGE_VALIDATED) !== 0) guestValidated++;
      }
      return [
        `rmp.size=${sizes.size === 2 ? 'mixed' : ([...sizes][0] ?? 'none')}`,
        `rmp.assigned=${mix(assigned)}`,
        `rmp.validated=${mix(validated)}`,
        `guest.shared=${mix(shared)}`,
        `guest.validated=${mix(guestValidated)}`,
      ];
    };
    const pick = (tuple: string[]): string[] => tuple.filter((p) => /^(rmp\.|guest\.)/.test(p));
    let regions = 0;
    for (let i = 0; i < 40; i++) {
      const testCase = generateCase(config, `tuple/${i}`, { steps: 64, weights: { during: 30 } });
      runCase(testCase, runner.policies, {
        oracles: [],
        onStep: (step, view) => {
          for (const range of step.gfnRanges.slice(0, 2)) {
            const base = Math.floor(range.start / 512) * 512 * 4096;
            expect(pick(regionTuple(view, base))).toEqual(reference(view, base));
            regions++;
          }
        },
      });
    }
    expect(regions).toBeGreaterThan(200);
  });
});

describe('mutations', () => {
  it('every mutant (havoc, continue, remix) is a valid case: it encodes, parses back identically and replays', () => {
    const generate = { steps: 24, weights: { during: 40 } };
    for (let i = 0; i < 150; i++) {
      const parent = generateCase(config, `m/${i}`, generate);
      const donor = generateCase(config, `d/${i}`, generate);
      const mutant = [mutateCase(parent, `mut/${i}`, generate, i % 2 === 0 ? donor : undefined), continueCase(parent, `cont/${i}`, generate), remixCase(parent, `remix/${i}`, generate)][i % 3]!;
      expect(mutant.ops.length).toBeGreaterThan(0);
      expect(mutant.ops.length).toBeLessThanOrEqual(generate.steps);
      const text = encodeRepro({ ...mutant, title: '' });
      const back = parseRepro(JSON.parse(text));
      expect(encodeRepro({ ...back, title: '' })).toBe(text);
      expect(() => runCase(back, runner.policies, { oracles: runner.oracles })).not.toThrow();
    }
  });

  it('adds no interleaving when during=0 is pinned', () => {
    const generate = { steps: 24, weights: { during: 0 } };
    for (let i = 0; i < 100; i++) {
      const mutant = mutateCase(generateCase(config, `n/${i}`, generate), `nm/${i}`, generate, generateCase(config, `nd/${i}`, generate), 3);
      expect(mutant.ops.every((op) => op.during === undefined)).toBe(true);
    }
  });

  it('is deterministic in its seed and never changes the parent', () => {
    const parent = generateCase(config, 'p', job.generate);
    const before = JSON.stringify(parent);
    expect(JSON.stringify(mutateCase(parent, 'x', job.generate))).toBe(JSON.stringify(mutateCase(parent, 'x', job.generate)));
    expect(JSON.stringify(parent)).toBe(before);
  });
});

describe('guided derivation', () => {
  /** A guided campaign by hand: cases in index order, observed in order. */
  function run(count: number): { cases: Case[]; guide: Guide } {
    const guide = new Guide(job);
    const cases: Case[] = [];
    for (let index = 0; index < count; index++) {
      const testCase = guide.caseFor(index);
      cases.push(testCase);
      const outcome = runCampaignCase(job, runner, index, undefined, testCase);
      guide.observe(testCase, outcome.features ?? [], outcome.violation === undefined, outcome.featureSteps, index);
    }
    return { cases, guide };
  }

  it('a round is derived from the corpus as it stood at its start, whatever was observed since', () => {
    // The first rounds are FIRST_ROUND_SIZE cases, then ROUND_SIZE: cases 32..63 are one round.
    const early = FIRST_ROUND_SIZE * 4;
    const { cases, guide } = run(early + ROUND_SIZE);
    expect(guide.entries.length).toBeGreaterThan(1);
    expect(guide.roundStart(early - 1)).toBe(early - FIRST_ROUND_SIZE);
    expect(guide.roundStart(early + ROUND_SIZE - 1)).toBe(early);
    // Derive the last round again from a guide that saw only the cases before it: the same cases.
    const replay = new Guide(job);
    for (let index = 0; index < early; index++) {
      const outcome = runCampaignCase(job, runner, index, undefined, replay.caseFor(index));
      replay.observe(cases[index]!, outcome.features ?? [], outcome.violation === undefined, outcome.featureSteps, index);
    }
    for (let index = early + ROUND_SIZE - 1; index >= early; index--) expect(replay.caseFor(index)).toEqual(cases[index]);
    // Round 0 had an empty corpus: every case is generated from scratch by one of the fresh arms;
    // later rounds also derive cases from the corpus.
    const fromScratch = (c: Case, index: number): boolean =>
      FRESH_ARMS.some((arm) => JSON.stringify(c) === JSON.stringify(generateCase(config, caseSeed('cov', index), freshOptions(arm, job.generate))));
    for (let index = 0; index < FIRST_ROUND_SIZE; index++) expect(fromScratch(cases[index]!, index)).toBe(true);
    expect(cases.slice(FIRST_ROUND_SIZE).some((c, k) => !fromScratch(c, FIRST_ROUND_SIZE + k))).toBe(true);
  });

  it('keeps only clean cases that add features', () => {
    const guide = new Guide(job);
    const a = generateCase(config, 'a', job.generate);
    expect(guide.observe(a, ['op:x:ok'], true)).toBeDefined();
    expect(guide.observe(a, ['op:x:ok'], true)).toBeUndefined();
    expect(guide.observe(a, ['op:y:ok'], false)).toBeUndefined();
    expect(guide.coverage).toBe(2);
    expect(guide.entries.length).toBe(1);
  });

  it('keeps the prefix of a case that reached its new features, and that prefix reaches them', () => {
    const guide = new Guide(job);
    let trimmed = 0;
    for (let index = 0; index < 40; index++) {
      const testCase = generateCase(config, `trim/${index}`, { steps: 48, fullLength: true });
      const outcome = runCampaignCase(job, runner, index, undefined, testCase);
      const entry = guide.observe(testCase, outcome.features ?? [], outcome.violation === undefined, outcome.featureSteps);
      if (!entry) continue;
      expect(entry.testCase).toBe(testCase);
      expect(testCase.ops.slice(0, entry.parent.ops.length)).toEqual(entry.parent.ops);
      if (entry.parent.ops.length < testCase.ops.length) trimmed++;
      const again = features(entry.parent.ops, entry.parent.seed);
      for (const feature of entry.features) expect(again.has(feature)).toBe(true);
    }
    expect(trimmed).toBeGreaterThan(0);
  });

  it('credits what a case reached to the arm that made it, and shares cases by yield', () => {
    const { cases, guide } = run(160);
    // Every arm ran (each keeps a share) and was credited with the ops of its cases.
    for (const arm of ARMS) expect(guide.yields[arm].ops).toBeGreaterThan(100);
    // Probability matching: shares sum to 1, follow the yields, and keep every arm above a floor.
    const rate = (arm: Arm): number => guide.rate(arm);
    const shares = guide.shares(true);
    expect(Object.values(shares).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    const sorted = [...ARMS].sort((a, b) => rate(b) - rate(a));
    for (let i = 1; i < sorted.length; i++) expect(shares[sorted[i - 1]!]).toBeGreaterThanOrEqual(shares[sorted[i]!]);
    for (const arm of ARMS) expect(shares[arm]).toBeGreaterThanOrEqual(EXPLORE);
    // Without a corpus only the fresh arms run.
    const early = guide.shares(false);
    for (const arm of ARMS) expect(early[arm] > 0).toBe((FRESH_ARMS as readonly Arm[]).includes(arm));
    expect(Object.values(early).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    // The fresh arms generate from the case's own index seed; derived cases keep their parent's seed.
    const scratch = cases.filter((c, index) => c.seed === caseSeed('cov', index)).length;
    expect(scratch).toBeGreaterThan(0);
    expect(scratch).toBeLessThan(cases.length);
  });

  it('the fresh arms: the campaign generator as configured, and uniform cases with every kind and pinned weights kept', () => {
    const generate = { steps: 256, weights: { during: 0, dma: 0 } };
    const uniform = freshOptions('uniform', generate);
    expect(uniform.swarm).toBe(false);
    expect(uniform.weights?.dma).toBe(0);
    expect(uniform.weights?.during).toBe(0);
    expect(uniform.weights?.share).toBe(uniform.weights?.accept);
    expect(freshOptions('fresh', generate)).toBe(generate);
    // A uniform case meets every kind the config allows and the user did not switch off.
    const kinds = new Set(generateCase(config, 'u', { ...uniform, fullLength: true }).ops.map((op) => op.op));
    expect(kinds.has('dma')).toBe(false);
    expect(kinds.size).toBeGreaterThan(10);
  });
});
