// The planted-bug suite of bench/planted: each bug's hand-minimal sequence fires the oracle it is
// meant for (at its last op, not before), the control stays clean on it, and the control copies
// behave exactly like the built-in policies they copy.
import { describe, expect, it } from 'vitest';
import { minimalCase, plantedBugs, plantedConfig, plantedPolicies } from '../bench/planted/index.ts';
import { workloadCases } from '../bench/common.ts';
import { runCase } from '../src/engine/run.ts';
import { resolveOracles, resolvePolicies } from '../src/engine/select.ts';

const oracles = await resolveOracles();

describe('planted bugs', () => {
  it('has at least 12 bugs with distinct flags, covering every class', () => {
    expect(plantedBugs.length).toBeGreaterThanOrEqual(12);
    expect(new Set(plantedBugs.map((b) => b.flag)).size).toBe(plantedBugs.length);
    expect(new Set(plantedBugs.map((b) => b.class))).toEqual(new Set(['shallow', 'deep', 'boundary', 'swarm-suppressed', 'interleaving']));
    for (const bug of plantedBugs) expect(oracles.map((o) => o.name)).toContain(bug.oracle);
  });

  for (const bug of plantedBugs) {
    it(`${bug.flag}: the ${bug.minimal.length}-op hand-minimal sequence fires ${bug.oracle}`, () => {
      const testCase = minimalCase(bug);
      const found = runCase(testCase, plantedPolicies(bug.flag), { oracles });
      expect(found.violations[0]?.oracle).toBe(bug.oracle);
      expect(found.violations[0]?.step).toBe(testCase.ops.length - 1);
      expect(runCase(testCase, plantedPolicies(undefined), { oracles }).violations).toEqual([]);
      const prefix = { ...testCase, ops: testCase.ops.slice(0, -1) };
      expect(runCase(prefix, plantedPolicies(bug.flag), { oracles }).violations).toEqual([]);
    });
  }

  it('the control copies behave like quiesce-dma + linux-2m-pool', async () => {
    const builtin = await resolvePolicies('quiesce-dma', 'linux-2m-pool');
    const control = plantedPolicies(undefined);
    // Interleaving on too: the copy's smash stalls DMA as quiesce-dma's does.
    for (const testCase of workloadCases(plantedConfig(undefined), 'planted-control', 0, 12, { weights: {} })) {
      const a = runCase(testCase, builtin, { oracles, allViolations: true });
      const b = runCase(testCase, control, { oracles, allViolations: true });
      expect(b.verdict).toBe(a.verdict);
      expect(b.stepsRun).toBe(a.stepsRun);
      expect(b.metrics).toEqual(a.metrics);
      expect(b.violations.map((v) => v.message)).toEqual(a.violations.map((v) => v.message));
    }
  });
});
