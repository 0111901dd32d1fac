import { describe, expect, it } from 'vitest';
import type { Oracle } from '../../src/api.ts';
import { runCase, signature } from '../../src/engine/run.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import type { Op } from '../../src/ops/types.ts';
import { guestPolicies, hostPolicies } from '../../src/policies/index.ts';
import { defineGuestPolicy, defineHostPolicy } from '../../src/policies/types.ts';

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

  describe('no silent correction: an illegal choice an actor would act on is a policy-error naming the hook and the value', () => {
    it('pageSize: 2M for a range that is not 2M-aligned', () => {
      const guest = defineGuestPolicy({ name: 'always-2m', description: 'x', pageSize: () => '2M' });
      const share: Op[] = [{ op: 'share', gpa: 0x801000, pages: 1 }];
      const result = runCase({ config, seed: 's', ops: share }, { ...policies, guest }, { oracles: [] });
      expect(result.violations[0]).toMatchObject({ oracle: 'policy-error', step: 0 });
      expect(result.violations[0]?.message).toMatch(/^policy always-2m: pageSize returned "2M" at gpa 0x[0-9a-f]+ with 0x[0-9a-f]+ bytes remaining/);
    });

    it('convert: more bytes done than asked, or not whole pages', () => {
      for (const done of [2 * 4096, 100]) {
        const host = defineHostPolicy({
          name: 'overdone',
          description: 'x',
          convert: (ctx, request) => {
            ctx.kvm.defaultConvert(request);
            return request.len === 4096 ? done : undefined;
          },
        });
        const share: Op[] = [{ op: 'share', gpa: 0x801000, pages: 1 }];
        const result = runCase({ config, seed: 's', ops: share }, { ...policies, host }, { oracles: [] });
        expect(result.violations[0]).toMatchObject({ oracle: 'policy-error', step: 0 });
        expect(result.violations[0]?.message).toContain(`policy overdone: convert returned ${done} bytes done for the request of 4096 bytes`);
      }
    });

    it('atomicPoolBytes: a size no boot can hold is an error; above MAX_PAGE_ORDER is what the kernel grows in 4M chunks', () => {
      const tooBig = defineGuestPolicy({ name: 'huge-atomic', description: 'x', atomicPoolBytes: () => 2 * config.guestMemory });
      const result = runCase({ config, seed: 's', ops }, { ...policies, guest: tooBig }, { oracles: [] });
      expect(result.violations[0]).toMatchObject({ oracle: 'policy-error', step: 0 });
      expect(result.violations[0]?.message).toContain(`policy huge-atomic: atomicPoolBytes returned ${2 * config.guestMemory}`);
      // atomic_pool_expand(): order = min(get_order(pool_size), MAX_PAGE_ORDER), so an 8M
      // atomic_pool_size starts each pool as one 4M block: not a correction of the policy's value.
      const eight = defineGuestPolicy({ name: 'eight-meg-atomic', description: 'x', atomicPoolBytes: () => 8 * 2 ** 20 });
      expect(runCase({ config, seed: 's', ops }, { ...policies, guest: eight }, { oracles: [] }).violations).toEqual([]);
    });
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

  it('leaves out the sizes of tables a rule is not about', () => {
    const stale = (npt?: number) => ({
      oracle: 'npt-iommu-coherence',
      severity: 'security' as const,
      step: 3,
      message: 'shared gpa 0x401000: ... ==> FAIL (stale IO mapping after conversion)',
      details: { sizes: { s2: 2 ** 21, ...(npt !== undefined ? { npt } : {}) } },
    });
    expect(signature(testCase, stale())).toBe('npt-iommu-coherence|stale IO mapping after conversion|');
    expect(signature(testCase, stale(4096))).toBe(signature(testCase, stale()));
    const order = (rmp: '4K' | '2M') => ({ oracle: 'conversion-order', severity: 'security' as const, step: 1, message: 'x ==> FAIL (no rescind before sharing)', details: { sizes: { rmp } } });
    expect(signature(testCase, order('2M'))).toBe(signature(testCase, order('4K')));
    const larger = { oracle: 'npt-rmp-size', severity: 'correctness' as const, step: 0, message: 'x ==> FAIL (NPT leaf 0x200000 larger than the RMP entry beneath it)', details: { sizes: { npt: 2 ** 21, rmp: '4K' as const } } };
    expect(signature(testCase, larger)).toBe('npt-rmp-size|NPT leaf # larger than the RMP entry beneath it|npt=2M,rmp=4K');
  });
});

