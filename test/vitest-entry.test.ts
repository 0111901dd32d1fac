import { describe, expect, it } from 'vitest';
import { FuzzPropertyError, fuzzProperty } from 'cocofuzz';
import { fuzzProperty as fromSubpath } from 'cocofuzz/vitest';

describe('fuzzProperty (the vitest entry)', () => {
  it('passes for the correct policies', async () => {
    const { cases, ops } = await fuzzProperty({ hostPolicy: 'cut-on-convert', guestPolicy: 'linux-2m-pool', runs: 15, seed: 'vitest-clean' });
    expect(cases).toBe(15);
    expect(ops).toBeGreaterThan(100);
  });

  it('fails with the explained, shrunk repro for a broken policy', async () => {
    const failure = await fromSubpath({ hostPolicy: 'kvm-iommu-4k', guestPolicy: 'linux', runs: 200, seed: 'vitest-broken' }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(FuzzPropertyError);
    const error = failure as FuzzPropertyError;
    expect(error.bucket.oracle).toBe('io-s2-rmp-size');
    expect(error.message).toContain('S2[4K]');
    expect(error.message).toContain('RMP[2M]');
    expect(error.message).toContain('"format": "cocofuzz-repro/1"');
    expect(error.bucket.repro.ops.length).toBeLessThanOrEqual(4);
  });

  it('accepts policy objects and extra oracles', async () => {
    const { hostPolicies, guestPolicies } = await import('cocofuzz');
    const everyDma = { name: 'no-dma-at-all', description: 'fires on any DMA', severity: 'correctness' as const, check: (_v: unknown, step: { dmas: readonly unknown[] }) => (step.dmas.length > 0 ? [{ message: 'a DMA happened' }] : []) };
    const failure = await fuzzProperty({
      hostPolicy: hostPolicies['cut-on-convert'],
      guestPolicy: guestPolicies['linux-2m-pool'],
      oracles: [everyDma],
      onlyOracles: ['no-dma-at-all'],
      runs: 50,
      weights: { dma: 50 },
    }).catch((error: unknown) => error);
    expect((failure as FuzzPropertyError).bucket.oracle).toBe('no-dma-at-all');
  });
});
