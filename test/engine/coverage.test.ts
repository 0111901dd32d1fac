// The coverage signal, mutations and guided derivation, in process (issue 16).

import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type CampaignJob, prepareRunner, runCampaignCase } from '../../src/engine/case-job.ts';
import { CoverageTracker, regionTuple } from '../../src/engine/coverage.ts';
import { ARMS, type Arm, EXPLORE, FIRST_ROUND_SIZE, FRESH_ARMS, Guide, ROUND_SIZE, cellOf, corpusFileName, freshOptions, isNearMiss } from '../../src/engine/guided.ts';
import { continueCase, mutateCase, remixCase } from '../../src/engine/mutate.ts';
import { runCase } from '../../src/engine/run.ts';
import { caseSeed, generateCase } from '../../src/ops/generate.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import type { Case, Op } from '../../src/ops/types.ts';
import { GUEST_PAGE_SHARED, GUEST_PAGE_VALIDATED, type View, defaultRmpEntry } from '../../src/api.ts';
import { encodeRepro, parseRepro } from '../../src/repro/format.ts';
import { plantedPolicies } from '../../bench/planted/index.ts';

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

  it('a count is no situation: IOTLB entries flushed are bucketed, bytes mapped are size classes', async () => {
    // kvm-iommu-4k (the default host) maps the IO S2 4K by 4K: a flush after a conversion
    // removes as many IOTLB entries as the range had pages cached, a different count each time.
    const kvm = defaultConfig({ guestMemory: '64M' });
    const { policies } = await prepareRunner({ ...job, config: kvm });
    const counts = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const tracker = new CoverageTracker();
      runCase(generateCase(kvm, `counts/${i}`, { steps: 256 }), policies, { oracles: [], onStep: (step, view) => tracker.observe(step, view) });
      for (const f of tracker.features) {
        const flush = /^call:[a-z_]+:(iommu_flush|iotlb_invalidate)=(.*)$/.exec(f);
        if (flush) counts.add(flush[2]!);
        const bytes = /^call:[a-z_]+:(npt_map|npt_unmap|io_map|io_unmap)=(.*)$/.exec(f);
        if (bytes) expect(['0', '<4K', '4K', '4K..2M', '2M', '>2M'].includes(bytes[2]!) || /^[A-Z_a-z]/.test(bytes[2]!), f).toBe(true);
      }
    }
    expect([...counts].every((c) => ['0', '1', '2', '3', '4..7', '8..15', '16..31', '32..127', '128+'].includes(c)), [...counts].join(' ')).toBe(true);
    // More than the status codes: the workload flushes many entries at once.
    expect([...counts].some((c) => c.includes('..') || c === '128+')).toBe(true);
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
  it('s2.backed and dma.live: a private fault-in under a live buffer that the IOMMU never mapped for a running TDI is a situation of its own, repaired by the resync', () => {
    // A trusted device accepted (its S2 now shows the private view), then a coherent buffer for
    // it, faulted in private. quiesce-dma maps the fault for the device: its S2 translates all
    // the region's private backing. The planted sync-repairs bug leaves it out until host_sync.
    const ops: Op[] = [{ op: 'tdi_accept', dev: 0 }, { op: 'alloc_coherent', dev: 0, bytes: 8192 }, { op: 'host_sync' }, { op: 'touch', gpa: 0x100000, write: true }];
    const tuples = (policies: typeof runner.policies): string[][] => {
      const seen: string[][] = [];
      runCase({ config, seed: 'backed', ops }, policies, {
        oracles: [],
        onStep: (step, view) => {
          const tracker = new CoverageTracker();
          tracker.observe(step, view);
          seen.push([...tracker.features].filter((f) => f.startsWith('region:')));
        },
      });
      return seen;
    };
    const lagging = (regions: string[]): boolean => regions.some((r) => /s2\.view=s2\/run s2\.backed=(none|some)/.test(r));
    const correct = tuples(runner.policies);
    expect(correct[1]!.some((r) => r.includes('s2.view=s2/run s2.backed=all dma.live=translated'))).toBe(true);
    expect(correct.some(lagging)).toBe(false);
    const buggy = tuples(plantedPolicies('sync-repairs-missing-private-map'));
    expect(lagging(buggy[1]!)).toBe(true);
    // dma.live: the hole lies under the device's live buffer, one DMA away from a failure; the
    // correct policy never leaves a live object untranslated.
    expect(buggy[1]!.some((r) => /s2\.view=s2\/run s2\.backed=(none|some) dma\.live=untranslated/.test(r))).toBe(true);
    expect(correct.some((regions) => regions.some((r) => r.includes('dma.live=untranslated')))).toBe(false);
    // host_sync rebuilds the private view: the region the touch reads is whole again.
    expect(lagging(buggy[3]!)).toBe(false);
    expect(buggy[3]!.some((r) => r.includes('s2.view=s2/run s2.backed=all'))).toBe(true);
  });

  it('reading the region tuple run by run gives what reading it frame by frame and leaf by leaf gives', () => {
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
      // Every leaf and IOTLB entry in the region, one by one.
      const leafMix = (leaves: Iterable<{ size: number }>): string => {
        const seen = new Set<string>();
        for (const leaf of leaves) seen.add(leaf.size >= 1 << 30 ? '1G' : leaf.size >= 1 << 21 ? '2M' : '4K');
        return seen.size > 1 ? 'mixed' : ([...seen][0] ?? 'none');
      };
      const end = base + (1 << 21);
      const devices = view.devices.flatMap((device) => {
        const cached = new Set<string>();
        for (const entry of device.iotlb.entries()) {
          const size = entry.size === '2M' ? 1 << 21 : 4096;
          if (entry.addr < end && entry.addr + size > base) cached.add(entry.size);
        }
        // s2.backed: of the frames the host backs in the device's view, how many its S2 translates to them.
        let inView = 0;
        let translated = 0;
        for (let i = 0; i < 512; i++) {
          const gpa = base + i * 4096;
          const hpa = view.host.backingHpa(gpa);
          if (hpa < 0 || (view.host.sharedHpa(gpa) < 0) !== (device.tdi !== 'unlocked')) continue;
          inView++;
          if (device.s2.iovaToPhys(gpa) === hpa) translated++;
        }
        const backed = `s2.backed=${inView === 0 ? 'unbacked' : translated === 0 ? 'none' : translated === inView ? 'all' : 'some'}`;
        // dma.live: does any page of the region lie in the memory of a live object made for the device?
        const dev = view.devices.indexOf(device);
        const objects = [...view.guest.buffers.filter((b) => b.dev === dev).map((b) => [b.gpa, b.bytes]), ...view.guest.mappings.filter((m) => m.dev === dev).map((m) => [m.tlbAddr ?? m.orig, m.bytes])];
        let live = 'none';
        for (let i = 0; i < 512; i++) {
          const page = base + i * 4096;
          if (!objects.some(([at, bytes]) => at! < page + 4096 && at! + bytes! > page)) continue;
          if (live === 'none') live = 'translated';
          const hpa = view.host.backingHpa(page);
          const inView = hpa >= 0 && (view.host.sharedHpa(page) < 0) === (device.tdi !== 'unlocked');
          if (inView && device.s2.iovaToPhys(page) !== hpa) live = 'untranslated';
        }
        return [`s2.leaf=${leafMix(device.s2.leaves(base, end))}`, backed, `dma.live=${live}`, `iotlb.cached=${cached.size > 1 ? 'mixed' : ([...cached][0] ?? 'none')}`];
      });
      return [
        `rmp.size=${sizes.size === 2 ? 'mixed' : ([...sizes][0] ?? 'none')}`,
        `rmp.assigned=${mix(assigned)}`,
        `rmp.validated=${mix(validated)}`,
        `npt.leaf=${leafMix(view.npt.leaves(base, end))}`,
        ...devices,
        `guest.shared=${mix(shared)}`,
        `guest.validated=${mix(guestValidated)}`,
      ];
    };
    const pick = (tuple: string[]): string[] => tuple.filter((p) => /^(rmp\.|guest\.|npt\.|s2\.leaf|s2\.backed|dma\.live|iotlb\.)/.test(p));
    let regions = 0;
    const untranslated = { correct: 0, planted: 0 };
    // The planted sync-repairs bug leaves live buffers untranslated, which the correct policy never does.
    for (const [name, policies] of [['correct', runner.policies], ['planted', plantedPolicies('sync-repairs-missing-private-map')]] as const) {
      for (let i = 0; i < 40; i++) {
        const testCase = generateCase(config, `tuple/${i}`, { steps: 64, weights: { during: 30 } });
        runCase(testCase, policies, {
          oracles: [],
          onStep: (step, view) => {
            for (const range of step.gfnRanges.slice(0, 2)) {
              const base = Math.floor(range.start / 512) * 512 * 4096;
              const tuple = pick(regionTuple(view, base));
              expect(tuple).toEqual(reference(view, base));
              if (tuple.includes('dma.live=untranslated')) untranslated[name]++;
              regions++;
            }
          },
        });
      }
    }
    expect(regions).toBeGreaterThan(400);
    expect(untranslated.correct).toBe(0);
    expect(untranslated.planted).toBeGreaterThan(0);
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

describe('continue', () => {
  it('returns to the step of a feature drawn by rarity (cellOf)', () => {
    const parent = generateCase(config, 'cell', { steps: 20, fullLength: true });
    const entry = { testCase: parent, parent, features: ['a', 'b', 'c'], steps: [2, 9, 15] };
    // Running sums of rarities 1/10, 1 and 1/10: 'b' holds (1 / 1.2) of the draws.
    const rarities = Float64Array.from([0.1, 1.1, 1.2]);
    expect(cellOf(entry, rarities, 0).ops).toEqual(parent.ops.slice(0, 3));
    expect(cellOf(entry, rarities, 0.5).ops).toEqual(parent.ops.slice(0, 10));
    expect(cellOf(entry, rarities, 0.99).ops).toEqual(parent.ops.slice(0, 16));
    // Without the steps (a corpus file replayed whole) it is the whole parent.
    expect(cellOf({ testCase: parent, parent, features: ['a'] }, Float64Array.from([1]), 0.5)).toBe(parent);
  });

  it('aims the new ops at the objects the parent made, the newest first, DMAs by their device', () => {
    // Six buffers, alternating devices: a fresh op's buf 0..3 never reaches the last two.
    const made: Op[] = Array.from({ length: 6 }, (_, i) => ({ op: 'alloc_coherent', dev: i % 2, bytes: 4096 }));
    const parent: Case = { config, seed: 'objects', ops: made };
    const generate = { steps: 256, weights: { during: 0 } };
    let aimed = 0;
    let newest = 0;
    for (let i = 0; i < 60; i++) {
      const child = continueCase(parent, `aim/${i}`, generate);
      expect(child.ops.slice(0, 6)).toEqual(made);
      // The objects live before each appended op, followed as the guest keeps its list.
      const live = made.map((op) => (op as { dev: number }).dev);
      for (const op of child.ops.slice(6)) {
        // With no live buffer left (a tdi op unbound them all), there is nothing to aim at.
        if (op.op === 'dma' && op.buf !== undefined && live.length > 0) {
          expect(op.buf).toBeLessThan(live.length);
          expect(op.dev).toBe(live[op.buf]);
          aimed++;
          if (op.buf >= 4) newest++;
        }
        if (op.op === 'alloc_coherent') live.push(op.dev);
        if (op.op === 'free_coherent' && live.length > 0) live.splice(op.buf % live.length, 1);
        if ((op.op === 'tdi_accept' || op.op === 'tdi_unlock') && live.length > 0) for (let k = live.length - 1; k >= 0; k--) if (live[k] === op.dev) live.splice(k, 1);
      }
    }
    expect(aimed).toBeGreaterThan(20);
    expect(newest).toBeGreaterThan(0);
  });
});

describe('near misses', () => {
  // The planted sync-repairs bug: a buffer of a running TDI faulted in private, which the plant
  // leaves out of the device's S2 until host_sync: dma.live=untranslated, one DMA short.
  const nearMiss: Op[] = [{ op: 'tdi_accept', dev: 0 }, { op: 'alloc_coherent', dev: 1, bytes: 4096 }, { op: 'alloc_coherent', dev: 0, bytes: 8192 }];
  const parent: Case = { config, seed: 'near', ops: nearMiss };

  it('continue from a near miss first makes the DMA it is one away from: by each newest object\'s device, over the whole object', () => {
    const child = continueCase(parent, 'probe', { steps: 256, weights: { during: 0 } }, true);
    expect(child.ops.slice(0, 3)).toEqual(nearMiss);
    expect(child.ops.slice(3, 5)).toEqual([
      { op: 'dma', dev: 0, buf: 1, len: 8192, write: false },
      { op: 'dma', dev: 1, buf: 0, len: 4096, write: false },
    ]);
    // Without a near miss, no probe; nor where the user pinned dma to 0.
    expect(continueCase(parent, 'probe', { steps: 256, weights: { during: 0 } }).ops.slice(3)).toEqual(child.ops.slice(5));
    expect(continueCase(parent, 'probe', { steps: 256, weights: { during: 0, dma: 0 } }, true).ops.some((op) => op.op === 'dma')).toBe(false);
    // The probe turns the planted bug's near miss into its finding; a correct policy stays clean.
    const probed = { ...parent, ops: child.ops.slice(0, 4) };
    expect(runCase(probed, plantedPolicies('sync-repairs-missing-private-map'), { oracles: runner.oracles }).violations[0]?.oracle).toBe('dma-liveness');
    expect(runCase(probed, runner.policies, { oracles: runner.oracles }).verdict).toBe('clean');
  });

  it('a move is a near miss by the tuple it moved to, not the one it left', () => {
    expect(isNearMiss('dma.live=untranslated')).toBe(true);
    expect(isNearMiss('move:rmp.size=2M dma.live=translated>rmp.size=2M dma.live=untranslated')).toBe(true);
    expect(isNearMiss('move:rmp.size=2M dma.live=untranslated>rmp.size=2M dma.live=translated')).toBe(false);
    expect(isNearMiss('op:dma:dma ok')).toBe(false);
  });

  it('a corpus entry remembers its first near-miss feature, where continue returns to probe', () => {
    const guide = new Guide(job);
    const entry = guide.observe(parent, ['op:tdi_accept:ok', 'region:rmp.size=2M s2.view=s2/run s2.backed=none dma.live=untranslated', 'dma.live=untranslated'], true, [0, 2, 2]);
    expect(entry?.nearMiss).toBe(1);
    expect(guide.observe({ ...parent, seed: 'other' }, ['op:share:ok'], true, [0])?.nearMiss).toBeUndefined();
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

  it('an arm with no record of its own yields what all arms pooled yield', () => {
    const guide = new Guide(job);
    for (const arm of ARMS) expect(guide.rate(arm)).toBe(0.01);
    const testCase = guide.caseFor(0);
    const outcome = runCampaignCase(job, runner, 0, undefined, testCase);
    guide.observe(testCase, outcome.features ?? [], outcome.violation === undefined, outcome.featureSteps, 0);
    const pooled = (outcome.features?.length ?? 0) / testCase.ops.length;
    // Round 0 is a fresh arm's; havoc, continue and remix are untried: each gets the pooled yield.
    for (const arm of ['havoc', 'continue', 'remix'] as const) expect(guide.rate(arm)).toBeCloseTo(pooled, 12);
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

  it('keeps a clean case that reaches what only findings had reached: the next campaign starts from the corpus', () => {
    // kvm-4k + double-validate, 30 cases with --corpus: the summary said coverage 238, and the
    // next night's replay of that corpus reached 150 (167 with this rule).
    const guide = new Guide(job);
    const a = generateCase(config, 'a', job.generate);
    expect(guide.observe(a, ['op:x:ok', 'op:y:ok'], false)).toBeUndefined();
    const clean = guide.observe({ ...a, seed: 'b' }, ['op:x:ok'], true);
    expect(clean?.features).toEqual(['op:x:ok']);
    // Counted once each, whoever reached them.
    expect(guide.coverage).toBe(2);
    expect(guide.observe({ ...a, seed: 'c' }, ['op:x:ok'], true)).toBeUndefined();
    expect(guide.observe({ ...a, seed: 'd' }, ['op:x:ok', 'op:y:ok'], true)?.features).toEqual(['op:x:ok', 'op:y:ok']);
    expect(guide.entries.length).toBe(2);
  });

  it('names a corpus file by its content as written: one name however the command line spelled a policy path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cocofuzz-names-'));
    const policy = join(process.cwd(), 'corpus', 'policies', 'broken-lazy-flush.ts');
    const base = generateCase(config, 'names', job.generate);
    const spelled = (hostPolicy: string): Case => ({ ...base, config: { ...base.config, hostPolicy } });
    // Absolute, and relative to the working directory (how the two shards of the review typed it).
    expect(corpusFileName(spelled(relative(process.cwd(), policy)), dir)).toBe(corpusFileName(spelled(policy), dir));
    const guide = new Guide(job, dir);
    guide.observe(spelled(policy), ['op:x:ok'], true);
    guide.observe(spelled(relative(process.cwd(), policy)), ['op:y:ok'], true);
    expect(readdirSync(dir)).toEqual([corpusFileName(spelled(policy), dir)]);
    expect(guide.size).toBe(1);
    // Another case is another name.
    expect(corpusFileName({ ...spelled(policy), seed: 'other' }, dir)).not.toBe(corpusFileName(spelled(policy), dir));
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
