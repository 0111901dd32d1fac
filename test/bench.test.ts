// Smoke test of the benchmarks: each benchmark function on a tiny configuration, checked for shape
// and sanity only (no timing assertions: the figures depend on the machine).
import { describe, expect, it } from 'vitest';
import { runBaseline } from '../bench/baseline-fc.ts';
import { BASELINE_COMMIT, benchBaseline } from '../bench/baseline.ts';
import { runTrial } from '../bench/bug-trials.ts';
import { benchPlantedBugs, summarizeBugs } from '../bench/bugs.ts';
import { censoredMedian, poissonLowerBound, restrictedMean, workloadConfig, workloadEngine } from '../bench/common.ts';
import { benchPageTable } from '../bench/pagetable.ts';
import { minimalCase, plantedBug, plantedPolicies } from '../bench/planted/index.ts';
import { benchScale } from '../bench/scale.ts';
import { benchThroughput, benchWorkers } from '../bench/throughput.ts';
import { runCase } from '../src/engine/run.ts';
import { resolveOracles } from '../src/engine/select.ts';

const oracles = await resolveOracles();

describe('bench statistics', () => {
  it('censors misses at the budget', () => {
    expect(censoredMedian([10, 20, 30])).toBe(20);
    expect(censoredMedian([10, undefined, undefined])).toBe(Number.POSITIVE_INFINITY);
    expect(restrictedMean([10, undefined], 100)).toBe(55);
    expect(restrictedMean([], 100)).toBe(100);
  });

  it('bounds a Poisson mean from below (95%)', () => {
    expect(poissonLowerBound(0)).toBe(0);
    expect(poissonLowerBound(1)).toBeCloseTo(0.0513, 3);
    expect(poissonLowerBound(5)).toBeCloseTo(1.97, 2);
  });
});

describe('bench: throughput and workers', () => {
  it('measures the engine, raw replay and the fc harness', async () => {
    const result = await benchThroughput({ rounds: 1, casesPerRound: 2, fcRunsPerRound: 2, warmMs: 0 });
    for (const rate of [result.engine.opsPerSec, result.raw.opsPerSec, result.fcMax.opsPerSec, result.fcDefault.opsPerSec, result.engineOnFcOps.opsPerSec]) {
      expect(rate).toBeGreaterThan(0);
    }
    expect(result.engine.findings).toBe(0);
    expect(Number.isFinite(result.ratios.oracleCost)).toBe(true);
  });

  it('runs the same campaign on 1 and 2 workers', async () => {
    const result = await benchWorkers({ runs: 3 });
    expect(result.byWorkers.map((w) => [w.workers, w.cases])).toEqual([
      [1, 3],
      [2, 3],
    ]);
    expect(result.byWorkers[0]?.ops).toBe(result.byWorkers[1]?.ops);
    expect(result.machine.speedup).toBeGreaterThan(0);
  });

  it('measures the page table', async () => {
    const figures = await benchPageTable({ quick: true });
    for (const value of Object.values(figures)) expect(value).toBeGreaterThan(0);
  });
});

describe('bench: the fc baseline harness', () => {
  it('finds a shallow planted bug and hands back a failing case the engine replays', () => {
    const bug = plantedBug('sizem-rmpupdate-rebuild');
    if (!bug) throw new Error('missing bug');
    const config = minimalCase(bug).config;
    const policies = plantedPolicies(bug.flag);
    const found = runBaseline({ config, policies, oracles, seed: 7, budget: 5000, size: 'max' });
    expect(found.violation?.oracle).toBe('no-silent-remap');
    if (!found.failing) throw new Error('no failing case');
    expect(runCase(found.failing, policies, { oracles }).violations[0]?.oracle).toBe('no-silent-remap');
  });

  it('spends its budget and finds nothing on the control', async () => {
    const { policies } = await workloadEngine();
    const result = runBaseline({ config: workloadConfig(), policies, oracles, seed: 3, budget: 60, size: 'max' });
    expect(result.violation).toBeUndefined();
    expect(result.commands).toBe(60);
  });
});

describe('bench: planted-bug trials', () => {
  it('finds a planted bug with a generous budget in every mode, and shrinks it', () => {
    for (const mode of ['swarm', 'no-swarm', 'fc'] as const) {
      const result = runTrial({ bug: 'sizem-rmpupdate-rebuild', mode, trial: 0, budgetOps: 5000, budgetMs: 60_000, shrinkBudget: 300 }, oracles);
      expect(result.found).toBe(true);
      expect(result.oracle).toBe('no-silent-remap');
      expect(result.shrunk?.length).toBeGreaterThanOrEqual(1);
      expect(result.shrunk?.oracle).toBe('no-silent-remap');
    }
  });

  it('gives no finding on the control and spends exactly the budget', () => {
    const result = runTrial({ bug: 'control', mode: 'swarm', trial: 0, budgetOps: 150, budgetMs: 60_000, shrinkBudget: 0 }, oracles);
    expect(result.found).toBe(false);
    expect(result.ops).toBe(150);
  });

  it('summarizes trials run in a child process', async () => {
    const result = await benchPlantedBugs({
      seeds: 1,
      budgetOps: 300,
      budgetMs: 30_000,
      shrinkTrials: 1,
      shrinkBudget: 100,
      jobs: 1,
      only: ['sizem-rmpupdate-rebuild', 'control'],
      modes: ['swarm'],
    });
    expect(result.trials).toHaveLength(2);
    const [bug, control] = summarizeBugs(result.trials, { budgetOps: 300 });
    expect(bug?.bug).toBe('sizem-rmpupdate-rebuild');
    expect(bug?.modes.swarm?.detected).toBe(1);
    expect(bug?.buckets.length).toBeGreaterThanOrEqual(1);
    expect(control?.class).toBe('control');
    expect(control?.modes.swarm?.detected).toBe(0);
  });
});

describe('bench: scale', () => {
  it('runs the same ops on a 64M and a 1T guest in child processes', async () => {
    const result = await benchScale({ ops: 60, longOps: 30, wide: false });
    expect(result.runs.map((r) => [r.guestMemory, r.ops, r.longOps, r.findings])).toEqual([
      ['64M', 60, 30, 0],
      ['1T', 60, 30, 0],
    ]);
    expect(result.ratios.time).toBeGreaterThan(0);
    expect(result.runs.every((r) => r.maxRssBytes > 0)).toBe(true);
    // The reported comparison gives each guest its default swiotlb pool; boot is timed apart.
    expect(result.runs.every((r) => r.swiotlb === 'default' && r.bootMs > 0 && r.bootMs < r.ms)).toBe(true);
    expect(result.pinnedRatios).toBeUndefined();
  });
});

describe('bench: against baed79b', () => {
  it('replays baed79b\'s own workload in a checkout of it and in this tree, the same ops on both sides', async () => {
    const result = await benchBaseline({ cases: 4, rounds: 1, minMs: 1 });
    if ('skipped' in result) {
      // A shallow clone has no baed79b: the bench says so instead of failing.
      expect(result.skipped).toContain(BASELINE_COMMIT);
      return;
    }
    expect(result.oracles).toHaveLength(12);
    expect(result.opsPerPass).toBeGreaterThan(0);
    for (const side of [result.baseline, result.current]) {
      expect(side.all.opsPerSec).toBeGreaterThan(0);
      expect(side.raw.opsPerSec).toBeGreaterThan(0);
    }
    expect(result.ratios.all).toBeGreaterThan(0);
  });
});
