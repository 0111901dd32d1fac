import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FuzzPropertyError, type HostPolicy, type Oracle, OracleFailedError, fuzzProperty } from 'cocofuzz';
import { DEFAULT_PROPERTY_TIME_MS, fuzzProperty as fromSubpath, fuzzTest, fuzzTestTimeout } from 'cocofuzz/vitest';
import { propertyTimeMs } from '../src/engine/property.ts';
import { runCli } from './helpers/cli.ts';
import exampleHost from '../examples/example-host-policy.ts';
import exampleOracle from '../examples/example-oracle.ts';

// The README's lazy-cut and no-psmash (examples/) as plain JavaScript, to be written into a
// findings directory: plugin files a repro may load must lie inside the repro's own tree.
const LAZY_CUT_JS = `export default {
  name: 'lazy-cut',
  description: 'cut the IO leaf when the RMP is smashed, flush at the next host_sync',
  module: import.meta.url,
  ioPageSizes: [0x1000, 0x200000],
  io(ctx, event) {
    if (event.kind !== 'smash') return ctx.iommu.defaultIo(event);
    for (const dev of event.devices) {
      const leaf = ctx.machine.device(dev).s2.leafAt(event.gpa);
      if (leaf && leaf.size >= 0x200000) ctx.machine.ioSplit(dev, leaf.iova, 0x1000);
    }
  },
};
`;
const NO_PSMASH_JS = `export default {
  name: 'no-psmash',
  description: 'the host never splits a 2M RMP entry (PSMASH)',
  severity: 'correctness',
  module: import.meta.url,
  check(_view, step) {
    return step.calls
      .filter((call) => call.prim === 'psmash' && call.result === 0)
      .map((call) => ({ message: 'PSMASH of RMP[2M] at hpa 0x' + Number(call.args.hpa).toString(16) + ' ==> FAIL (2M entry smashed)' }));
  },
};
`;

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

describe('fuzzProperty refuses what would pass a test that checked nothing', () => {
  const throwing: Oracle = { name: 'throwing', description: 'throws at step 1', severity: 'correctness', check: (_v, step) => (step.index === 1 ? (() => { throw new Error('oracle boom'); })() : []) };
  const never: Oracle = { name: 'never', description: 'never fires', severity: 'correctness', check: () => [] };
  const always: Oracle = { name: 'always', description: 'fires at once', severity: 'correctness', check: () => [{ message: 'always' }] };
  const outcome = (options: Parameters<typeof fuzzProperty>[0]): Promise<unknown> => fuzzProperty(options).then(() => 'passed', (error: unknown) => error);

  it('an oracle that throws fails the test, naming it, with the repro', async () => {
    const error = await outcome({ hostPolicy: 'kvm-4k', oracles: [throwing], onlyOracles: ['throwing'], runs: 5, seed: 'oracle-error' });
    expect(error).toBeInstanceOf(OracleFailedError);
    expect((error as Error).message).toContain('oracle throwing threw at step 1');
    expect((error as Error).message).toContain('oracle boom');
    expect((error as Error).message).toContain('"format": "cocofuzz-repro/1"');
  });

  it('onlyOracles selects among built-in and user oracles alike', async () => {
    // Only the user oracle that never fires: the built-ins that would fire on kvm-iommu-4k do not run.
    expect(await outcome({ hostPolicy: 'kvm-iommu-4k', oracles: [never], onlyOracles: ['never'], runs: 60, seed: 'only' })).toBe('passed');
    // A user oracle not named does not run.
    expect(await outcome({ hostPolicy: 'cut-on-convert', guestPolicy: 'linux-2m-pool', oracles: [always], onlyOracles: ['guest-alive'], runs: 5, seed: 'only' })).toBe('passed');
    expect(String(await outcome({ oracles: [never], onlyOracles: ['nevre'], runs: 1 }))).toContain('no oracle named "nevre"');
  });

  it('runs and steps are checked as the CLI checks --runs and --steps', async () => {
    for (const bad of [{ runs: Number.NaN }, { runs: 0 }, { runs: -1 }, { runs: 2.5 }, { steps: 0 }, { steps: -3 }, { steps: 1e6 }]) {
      expect([bad, String(await outcome({ ...bad, hostPolicy: 'cut-on-convert' }))]).toEqual([bad, expect.stringMatching(/fuzzProperty: (runs|steps) must be a whole number/)]);
    }
  });

  it('policy and oracle objects get the checks of a plugin file: a misspelled hook is an error', async () => {
    const misspelled = { name: 'typo', description: 'd', pagesize: () => '4K' };
    expect(String(await outcome({ guestPolicy: misspelled as never, runs: 1 }))).toContain('fuzzProperty: guestPolicy: unknown field "pagesize"');
    expect(String(await outcome({ oracles: [{ ...never, severity: 'bad' as never }], runs: 1 }))).toContain('fuzzProperty: oracles[0]');
    // A typo beside a hook of the other kind is still named as the typo.
    const typoAndGuestHook = { name: 'typo', description: 'd', ioo: () => undefined, pageSize: () => '4K' };
    expect(String(await outcome({ hostPolicy: typoAndGuestHook as never, runs: 1 }))).toContain('fuzzProperty: hostPolicy: unknown field "ioo"');
  });

  it("refuses a policy object under a built-in's name: its repro would replay the built-in", async () => {
    const { hostPolicies } = await import('../src/policies/index.ts');
    const shadow = { ...hostPolicies['cut-on-convert']!, name: 'kvm-4k', module: undefined };
    delete (shadow as { module?: unknown }).module;
    expect(String(await outcome({ hostPolicy: shadow, runs: 1 }))).toContain('fuzzProperty: hostPolicy: "name": "kvm-4k" is the name of a built-in host policy');
    // The built-in object itself is fine: whatever the campaign finds, it is not refused.
    expect(String(await outcome({ hostPolicy: hostPolicies['kvm-4k']!, guestPolicy: 'linux-2m-pool', runs: 2 }))).not.toMatch(/is the name of a built-in|fuzzProperty: hostPolicy/);
    // So is a built-in from another copy of cocofuzz (a plugin re-exporting its project's own
    // hostPolicies['kvm-4k'] to a global install): another module instance, another object.
    const dir = mkdtempSync(join(tmpdir(), 'cocofuzz-reexport-'));
    const policies = fileURLToPath(new URL('../src/policies/index.ts', import.meta.url));
    writeFileSync(join(dir, 'reexport.ts'), `import { hostPolicies } from '${policies}?another-copy';\nexport default hostPolicies['kvm-4k'];\n`);
    const replay = runCli(['replay', fileURLToPath(new URL('../corpus/double-validate.json', import.meta.url)), '--host-policy', join(dir, 'reexport.ts')]);
    expect([replay.code, replay.stdout]).toEqual([1, expect.stringContaining('conversion-order at step 0')]);
    // The marker is the built-in's own: an object derived from it is not the built-in.
    writeFileSync(join(dir, 'derived.ts'), `import { hostPolicies } from '${policies}';\nexport default Object.assign(Object.create(hostPolicies['kvm-4k']), { ioPageSizes: [4096] });\n`);
    const derived = runCli(['replay', fileURLToPath(new URL('../corpus/double-validate.json', import.meta.url)), '--host-policy', join(dir, 'derived.ts')]);
    expect([derived.code, derived.stderr]).toEqual([2, expect.stringContaining('is the name of a built-in host policy')]);
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

  // A repro file loads plugin files only from inside its own directory tree (issue 14), so the
  // module path is recorded only for a plugin file under `out`; for one elsewhere (the checkout's
  // fixtures, here) the message names the exact flag that replays the repro (issue 17).
  it('names the file of a policy defined with module: import.meta.url inside out, and replay loads it', async () => {
    const out = mkdtempSync(join(tmpdir(), 'cocofuzz-vitest-'));
    const policy = join(out, 'policies', 'lazy-cut.mjs');
    mkdirSync(join(out, 'policies'));
    writeFileSync(policy, LAZY_CUT_JS);
    const host = ((await import(pathToFileURL(policy).href)) as { default: HostPolicy }).default;
    const error = (await fuzzProperty({ hostPolicy: host, guestPolicy: 'linux-2m-pool', seed: 'readme', runs: 60, out }).catch((e: unknown) => e)) as FuzzPropertyError;
    expect(error).toBeInstanceOf(FuzzPropertyError);
    expect(error.bucket.file).toBeDefined();
    const repro = JSON.parse(readFileSync(error.bucket.file!, 'utf8')) as { config: { hostPolicy: string } };
    expect(repro.config.hostPolicy).toBe('./policies/lazy-cut.mjs');
    expect(error.message).toContain('"hostPolicy": "./policies/lazy-cut.mjs"');
    expect(error.message).not.toContain('to replay or explain this repro');
    const replay = runCli(['replay', '--check', error.bucket.file!]);
    expect(replay.stdout).toContain('1 expectation(s) met');
    expect(replay.code).toBe(0);
  });

  it('a policy module outside out is not recorded: the message names the exact flag, and replay with it passes', async () => {
    const out = mkdtempSync(join(tmpdir(), 'cocofuzz-vitest-'));
    const error = (await fuzzProperty({ hostPolicy: exampleHost, guestPolicy: 'linux-2m-pool', seed: 'readme', runs: 60, out }).catch((e: unknown) => e)) as FuzzPropertyError;
    expect(error).toBeInstanceOf(FuzzPropertyError);
    const repro = JSON.parse(readFileSync(error.bucket.file!, 'utf8')) as { config: { hostPolicy: string } };
    expect(repro.config.hostPolicy).toBe('lazy-cut');
    const fixture = fileURLToPath(new URL('../examples/example-host-policy.ts', import.meta.url));
    const flag = relative(process.cwd(), fixture).split(sep).join('/');
    // The saved repro's own path, ready to paste.
    const saved = relative(process.cwd(), error.bucket.file!).split(sep).join('/');
    expect(error.message).toContain(`to replay or explain this repro: cocofuzz replay ${saved} --host-policy ${flag}`);
    const bare = runCli(['replay', error.bucket.file!]);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain('replays with --host-policy FILE');
    const withFlag = runCli(['replay', '--check', error.bucket.file!, '--host-policy', fixture]);
    expect([withFlag.code, withFlag.stdout]).toEqual([0, expect.stringContaining('1 expectation(s) met')]);
  });

  it('a policy given as a file outside out: the message names the flag with that file', async () => {
    const out = mkdtempSync(join(tmpdir(), 'cocofuzz-vitest-'));
    const fixture = relative(process.cwd(), fileURLToPath(new URL('../examples/example-host-policy.ts', import.meta.url))).split(sep).join('/');
    const error = (await fuzzProperty({ hostPolicy: fixture, guestPolicy: 'linux-2m-pool', seed: 'readme', runs: 60, out }).catch((e: unknown) => e)) as FuzzPropertyError;
    expect(error).toBeInstanceOf(FuzzPropertyError);
    expect(error.message).toContain(`to replay or explain this repro: cocofuzz replay ${relative(process.cwd(), error.bucket.file!).split(sep).join('/')} --host-policy ${fixture}`);
  });

  it('records oracle files of oracles defined with module inside out, and replay loads them from the repro', async () => {
    const out = mkdtempSync(join(tmpdir(), 'cocofuzz-vitest-'));
    const file = join(out, 'no-psmash.mjs');
    writeFileSync(file, NO_PSMASH_JS);
    const noPsmash = ((await import(pathToFileURL(file).href)) as { default: Oracle }).default;
    const error = (await fuzzProperty({ oracles: [noPsmash], onlyOracles: ['no-psmash'], runs: 60, seed: 'plugin', out }).catch((e: unknown) => e)) as FuzzPropertyError;
    expect(error.bucket.oracle).toBe('no-psmash');
    const repro = JSON.parse(readFileSync(error.bucket.file!, 'utf8')) as { oracles: string[] };
    expect(repro.oracles).toEqual(['./no-psmash.mjs']);
    const replay = runCli(['replay', '--check', error.bucket.file!]);
    expect([replay.code, replay.stdout]).toEqual([0, expect.stringContaining('1 expectation(s) met')]);
  });

  it('an oracle module outside out is not recorded: the message names --oracle with its file', async () => {
    const out = mkdtempSync(join(tmpdir(), 'cocofuzz-vitest-'));
    const noPsmash = { ...exampleOracle, module: new URL('../examples/example-oracle.ts', import.meta.url).href };
    const error = (await fuzzProperty({ oracles: [noPsmash], onlyOracles: ['no-psmash'], runs: 60, seed: 'plugin', out }).catch((e: unknown) => e)) as FuzzPropertyError;
    expect(error.bucket.oracle).toBe('no-psmash');
    const repro = JSON.parse(readFileSync(error.bucket.file!, 'utf8')) as { oracles?: string[] };
    expect(repro.oracles).toBeUndefined();
    const fixture = fileURLToPath(new URL('../examples/example-oracle.ts', import.meta.url));
    expect(error.message).toContain(`--oracle ${relative(process.cwd(), fixture).split(sep).join('/')}`);
    const replay = runCli(['replay', '--check', error.bucket.file!, '--oracle', fixture]);
    expect([replay.code, replay.stdout]).toEqual([0, expect.stringContaining('1 expectation(s) met')]);
  });

  it('without module, the message says which flag replays the repro', async () => {
    const out = mkdtempSync(join(tmpdir(), 'cocofuzz-vitest-'));
    const anonymous = { ...exampleHost, module: undefined };
    const error = (await fuzzProperty({ hostPolicy: anonymous, guestPolicy: 'linux-2m-pool', seed: 'readme', runs: 60, out }).catch((e: unknown) => e)) as FuzzPropertyError;
    expect(error.message).toContain('--host-policy FILE (FILE: the file defining "lazy-cut")');
    const file = error.bucket.file!;
    const bare = runCli(['replay', file]);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain('replays with --host-policy FILE');
    const withFlag = runCli(['replay', '--check', file, '--host-policy', fileURLToPath(new URL('../examples/example-host-policy.ts', import.meta.url))]);
    expect(withFlag.code).toBe(0);
  });
});
