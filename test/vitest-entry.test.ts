import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FuzzPropertyError, fuzzProperty } from 'cocofuzz';
import { DEFAULT_PROPERTY_TIME_MS, fuzzProperty as fromSubpath, fuzzTest, fuzzTestTimeout } from 'cocofuzz/vitest';
import { propertyTimeMs } from '../src/engine/property.ts';
import { runCli } from './helpers/cli.ts';
import exampleHost from './fixtures/example-host-policy.ts';
import exampleOracle from './fixtures/example-oracle.ts';

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

describe('fuzzTest and repros of policy objects', () => {
  fuzzTest('fuzzTest registers a passing campaign', { hostPolicy: 'cut-on-convert', guestPolicy: 'linux-2m-pool', runs: 5, seed: 'fuzz-test' });

  it('derives the test timeout from the budget', () => {
    expect(propertyTimeMs({})).toBe(DEFAULT_PROPERTY_TIME_MS);
    expect(DEFAULT_PROPERTY_TIME_MS).toBeLessThan(5000);
    expect(propertyTimeMs({ runs: 10 })).toBeUndefined();
    expect(fuzzTestTimeout({})).toBe(33_000);
    expect(fuzzTestTimeout({ time: '1m' })).toBe(90_000);
    expect(fuzzTestTimeout({ runs: 100 })).toBe(80_000);
  });

  it('names the file of a policy defined with module: import.meta.url, and replay loads it', async () => {
    const out = mkdtempSync(join(tmpdir(), 'cocofuzz-vitest-'));
    const error = (await fuzzProperty({ hostPolicy: exampleHost, guestPolicy: 'linux-2m-pool', seed: 'readme', runs: 60, out }).catch((e: unknown) => e)) as FuzzPropertyError;
    expect(error).toBeInstanceOf(FuzzPropertyError);
    expect(error.bucket.file).toBeDefined();
    const repro = JSON.parse(readFileSync(error.bucket.file!, 'utf8')) as { config: { hostPolicy: string } };
    expect(repro.config.hostPolicy).toMatch(/^\.\.?\/.*test\/fixtures\/example-host-policy\.ts$/);
    expect(error.message).not.toContain('to replay or explain this repro');
    const replay = runCli(['replay', '--check', error.bucket.file!]);
    expect(replay.stdout).toContain('1 expectation(s) met');
    expect(replay.code).toBe(0);
  });

  it('records oracle files of oracles defined with module, and replay loads them from the repro', async () => {
    const out = mkdtempSync(join(tmpdir(), 'cocofuzz-vitest-'));
    const noPsmash = { ...exampleOracle, module: new URL('./fixtures/example-oracle.ts', import.meta.url).href };
    const error = (await fuzzProperty({ oracles: [noPsmash], onlyOracles: ['no-psmash'], runs: 60, seed: 'plugin', out }).catch((e: unknown) => e)) as FuzzPropertyError;
    expect(error.bucket.oracle).toBe('no-psmash');
    const repro = JSON.parse(readFileSync(error.bucket.file!, 'utf8')) as { oracles: string[] };
    expect(repro.oracles).toEqual([expect.stringMatching(/test\/fixtures\/example-oracle\.ts$/)]);
    const replay = runCli(['replay', '--check', error.bucket.file!]);
    expect([replay.code, replay.stdout]).toEqual([0, expect.stringContaining('1 expectation(s) met')]);
  });

  it('without module, the message says which flag replays the repro', async () => {
    const out = mkdtempSync(join(tmpdir(), 'cocofuzz-vitest-'));
    const anonymous = { ...exampleHost, module: undefined };
    const error = (await fuzzProperty({ hostPolicy: anonymous, guestPolicy: 'linux-2m-pool', seed: 'readme', runs: 60, out }).catch((e: unknown) => e)) as FuzzPropertyError;
    expect(error.message).toContain('pass --host-policy FILE (the file defining "lazy-cut")');
    const file = error.bucket.file!;
    const bare = runCli(['replay', file]);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain('replays with --host-policy FILE');
    const withFlag = runCli(['replay', '--check', file, '--host-policy', fileURLToPath(new URL('./fixtures/example-host-policy.ts', import.meta.url))]);
    expect(withFlag.code).toBe(0);
  });
});
