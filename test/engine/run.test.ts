import { describe, expect, it } from 'vitest';
import type { Oracle } from '../../src/api.ts';
import { runCase, signature } from '../../src/engine/run.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import type { Op } from '../../src/ops/types.ts';
import { guestPolicies, hostPolicies } from '../../src/policies/index.ts';
import { defineHostPolicy } from '../../src/policies/types.ts';

const config = defaultConfig({ hostPolicy: 'cut-on-convert', guestPolicy: 'linux-2m-pool' });
const policies = { host: hostPolicies['cut-on-convert']!, guest: guestPolicies['linux-2m-pool']! };
const ops: Op[] = [
  { op: 'accept', gpa: 0x200000, size: '2M' },
  { op: 'touch', gpa: 0x200000, write: true },
  { op: 'host_sync' },
];

describe('runCase', () => {
  it('reports an oracle that throws as an oracle error, once, and keeps running the others', () => {
    const throws: Oracle = { name: 'throws', description: 'broken', severity: 'correctness', check: () => { throw new Error('bad oracle'); } };
    const counts: Oracle = { name: 'counts', description: 'fires on host_sync', severity: 'correctness', check: (_v, step) => (step.op.op === 'host_sync' ? [{ message: 'sync seen' }] : []) };
    const result = runCase({ config, seed: 's', ops }, policies, { oracles: [throws, counts] });
    expect(result.oracleErrors).toEqual([{ oracle: 'throws', step: 0, message: 'bad oracle' }]);
    expect(result.violations).toEqual([{ oracle: 'counts', severity: 'correctness', step: 2, message: 'sync seen' }]);
  });

  it('turns a policy that throws into a policy-error finding at that step', () => {
    const broken = defineHostPolicy({ name: 'throws-on-sync', description: 'x', flush: () => { throw new Error('no flush for you'); } });
    const result = runCase({ config, seed: 's', ops }, { ...policies, host: broken }, { oracles: [] });
    expect(result.violations[0]).toMatchObject({ oracle: 'policy-error', step: 2 });
    expect(result.violations[0]?.message).toContain('no flush for you');
  });

  it('gives the same steps and verdict for the same case', () => {
    const run = () => {
      const steps: unknown[] = [];
      runCase({ config, seed: 's', ops }, policies, { oracles: [], onStep: (step) => steps.push(step) });
      return JSON.stringify(steps);
    };
    expect(run()).toBe(run());
  });
});

describe('signature', () => {
  const testCase = { config, seed: 's', ops };
  it('keeps one bug in one bucket whatever the address, and tells size directions apart', () => {
    const at = (gpa: string, s2: number, rmp: '4K' | '2M') => ({
      oracle: 'io-s2-rmp-size',
      severity: 'correctness' as const,
      step: 1,
      message: `trusted DMA at ${gpa}: S2 ==> FAIL (size mismatch)`,
      details: { sizes: { s2, rmp } },
    });
    expect(signature(testCase, at('0x200000', 4096, '2M'))).toBe(signature(testCase, at('0x3400000', 4096, '2M')));
    expect(signature(testCase, at('0x200000', 4096, '2M'))).toBe('io-s2-rmp-size|size mismatch|rmp=2M,s2=4K');
    expect(signature(testCase, at('0x200000', 4 * 2 ** 20, '4K'))).toBe('io-s2-rmp-size|size mismatch|rmp=4K,s2=2M');
  });
});
