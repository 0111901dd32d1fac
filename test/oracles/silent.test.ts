// The correct policies (cut-on-convert with linux-2m-pool, and with today's linux guest) keep
// every built-in oracle silent over long random runs: no false positives.

import { beforeAll, describe, expect, it } from 'vitest';
import type { Violation } from '../../src/api.ts';
import { generateCase } from '../../src/ops/generate.ts';
import { builtinOracles, caseOf, runSpec } from './cases.ts';

const SEEDS = 4;
const STEPS = 200;

const setups = [
  { host: 'cut-on-convert', guest: 'linux-2m-pool', config: {} },
  { host: 'cut-on-convert', guest: 'linux', config: {} },
  // vIOMMU devices, 4K guest_memfd folios, four swiotlb areas.
  {
    host: 'cut-on-convert',
    guest: 'linux-2m-pool',
    config: {
      hugeBacking: false,
      cpus: 4,
      devices: [
        { id: 0, trusted: true, iommu: 'nested' },
        { id: 1, trusted: false, iommu: 'nested' },
        { id: 2, trusted: true, iommu: 's2' },
      ],
    },
  },
];

describe('correct policies keep every oracle silent', () => {
  const found: { setup: string; seed: string; violation: Violation }[] = [];
  const errors: string[] = [];
  let ops = 0;

  beforeAll(() => {
    for (const setup of setups) {
      const template = caseOf({ host: setup.host, guest: setup.guest, ops: [], config: setup.config });
      for (let i = 0; i < SEEDS; i++) {
        const seed = `silent/${setup.guest}/${i}`;
        const { ops: generated } = generateCase(template.config, seed, { steps: STEPS, fullLength: true });
        ops += generated.length;
        const result = runSpec({ host: setup.host, guest: setup.guest, ops: generated, config: setup.config }, builtinOracles, { allViolations: true });
        for (const violation of result.violations) found.push({ setup: `${setup.host} + ${setup.guest}`, seed, violation });
        for (const error of result.oracleErrors) errors.push(`${error.oracle} at step ${error.step}: ${error.message}`);
      }
    }
  });

  it('ran long cases without oracle errors', () => {
    expect(ops).toBeGreaterThan(setups.length * SEEDS * (STEPS / 2));
    expect(errors).toEqual([]);
  });

  it.each(builtinOracles.map((o) => o.name))('%s stays silent', (name) => {
    const mine = found.filter((f) => f.violation.oracle === name).map((f) => `${f.setup} ${f.seed} step ${f.violation.step}: ${f.violation.message}`);
    expect(mine.slice(0, 5)).toEqual([]);
  });
});
