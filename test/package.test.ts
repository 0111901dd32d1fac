// The package as a user gets it: `npm pack`, install the tarball into a new project (npm install
// from the registry for vitest and typescript), then use it from the outside: plain Node,
// TypeScript with a default `tsc --init` config and with strict settings, the CLI on a user
// policy in TypeScript (worker threads included), CI outputs, and the README's vitest example as
// written. Slow (an install): generous timeouts, no timing assertions.

import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { distIsCurrent } from '../scripts/source-digest.js';
import { CHROMIUM, renderFile } from './helpers/chromium.ts';
import { sarifErrors } from './helpers/schemas.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const MINUTES = 60_000;

// The user's environment: none of the checkout's export conditions (vitest.config.ts sets them).
const env = { ...process.env, NODE_OPTIONS: '', FORCE_COLOR: '0', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };

function run(command: string, args: string[], cwd: string): SpawnSyncReturns<string> {
  const result = spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout: 10 * MINUTES, maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw result.error;
  return result;
}

function ok(command: string, args: string[], cwd: string): string {
  const result = run(command, args, cwd);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${String(result.status)}:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** The first ```ts block after `heading` in the README. */
function readmeBlock(heading: string): string {
  const from = README.indexOf(heading);
  const match = /```ts\n([\s\S]*?)```/.exec(README.slice(from));
  if (from < 0 || !match?.[1]) throw new Error(`README has no ts block after "${heading}"`);
  return match[1];
}

const version = (name: string): string => (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

let project = '';

type Packed = { filename: string; files: { path: string }[] }[];

/**
 * `npm pack` into `packDir`. A dist/ built from the sources as they are (scripts/source-digest.js)
 * is packed as it is. Otherwise a copy of the checkout is built and packed: npm pack's prepack in
 * the checkout would remove its dist/ and build it again (twice, prepack then prepare) under the
 * CLI test files running beside this one (test/helpers/cli.ts), and a build in a vitest
 * globalSetup would cost every single-file run after an edit a build.
 */
function pack(packDir: string): Packed {
  if (distIsCurrent()) return JSON.parse(ok('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', packDir], ROOT)) as Packed;
  const copy = mkdtempSync(join(tmpdir(), 'cocofuzz-pack-checkout-'));
  cpSync(ROOT, copy, { recursive: true, filter: (path) => !/^(node_modules|dist|\.git)$/.test(relative(ROOT, path)) });
  symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
  try {
    ok('npm', ['run', '--silent', 'build'], copy);
    return JSON.parse(ok('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', packDir], copy)) as Packed;
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

describe('the packed package, installed into a new project', () => {
  beforeAll(() => {
    const packDir = mkdtempSync(join(tmpdir(), 'cocofuzz-pack-'));
    const packed = pack(packDir);
    const tarball = join(packDir, packed[0]!.filename);
    const shipped = packed[0]!.files.map((f) => f.path);
    expect(shipped).toContain('LICENSE');
    expect(shipped).toEqual(expect.arrayContaining(['dist/bundle/index.js', 'dist/bundle/api.js', 'dist/bundle/main.js', 'dist/bundle/worker.js', 'dist/src/index.d.ts']));
    // The JavaScript is the bundle alone: a second file of a module would be a second engine.
    expect(shipped.filter((f) => f.endsWith('.js') && !f.startsWith('dist/bundle/') && f !== 'bin/cocofuzz.js')).toEqual([]);
    expect(shipped).toContain('schema/repro.schema.json');
    // The examples README points users at (a plugin each, the nightly workflow) ship as sources;
    // no other TypeScript, test or bench file does.
    expect(shipped).toEqual(expect.arrayContaining(['examples/example-oracle.ts', 'examples/example-host-policy.ts', 'examples/github/nightly.yml']));
    expect(shipped.filter((f) => /^(test|bench|\.ci|src|corpus|oracles)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts') && !f.startsWith('examples/')))).toEqual([]);

    project = mkdtempSync(join(tmpdir(), 'cocofuzz-user-'));
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user-project', private: true, type: 'module' }, null, 2));
    ok('npm', ['install', '--no-audit', '--no-fund', tarball, `vitest@${version('vitest')}`, `typescript@${version('typescript')}`], project);
  }, 15 * MINUTES);

  it('imports from plain Node', () => {
    expect(ok('node', ['-e', "import('cocofuzz').then((m) => console.log(typeof m.runCase, typeof m.fuzzProperty))"], project).trim()).toBe('function function');
    writeFileSync(
      join(project, 'plain.mjs'),
      [
        "import { runCase, parseConfig, parseOp, hostPolicies, guestPolicies, builtinOracles } from 'cocofuzz';",
        "const config = parseConfig({ arch: 'snp' });",
        "const ops = [{ op: 'accept', gpa: '0x200000', size: '2M' }, { op: 'tdi_accept', dev: 0 }].map((op, i) => parseOp(op, `ops[${i}]`, config));",
        "const result = runCase({ config, seed: 'plain', ops }, { host: hostPolicies['kvm-iommu-4k'], guest: guestPolicies.linux }, { oracles: builtinOracles });",
        'console.log(result.violations[0]?.oracle ?? "clean");',
      ].join('\n'),
    );
    expect(ok('node', ['plain.mjs'], project).trim()).toBe('io-s2-rmp-size');
  });

  it('type-checks with a default `tsc --init` config and with strict settings', () => {
    const check = [
      "import { defineHostPolicy, defineOracle, runCase, type Case, type Oracle, type HostPolicy } from 'cocofuzz';",
      "import { hex, type View, type Step } from 'cocofuzz/api';",
      "import { fuzzProperty, fuzzTest, type FuzzPropertyOptions } from 'cocofuzz/vitest';",
      "const host: HostPolicy = defineHostPolicy({ name: 'mine', description: 'd', module: import.meta.url });",
      "const oracle: Oracle = defineOracle({ name: 'o', description: 'd', severity: 'correctness', check: (_v: View, s: Step) => (s.calls.length > 1000 ? [{ message: hex(s.index) }] : []) });",
      "const options: FuzzPropertyOptions = { hostPolicy: host, oracles: [oracle], time: '2s', out: 'found' };",
      'export const all = [runCase, fuzzProperty, fuzzTest, options] as const;',
      'export type C = Case;',
    ].join('\n');
    const byDefault = join(project, 'tsc-default');
    mkdirSync(byDefault);
    ok(join(project, 'node_modules/.bin/tsc'), ['--init'], byDefault);
    writeFileSync(join(byDefault, 'check.ts'), check);
    ok(join(project, 'node_modules/.bin/tsc'), ['--noEmit', '-p', '.'], byDefault);

    const strict = join(project, 'tsc-strict');
    mkdirSync(strict);
    writeFileSync(join(strict, 'check.ts'), check);
    writeFileSync(
      join(strict, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noUncheckedIndexedAccess: true,
          exactOptionalPropertyTypes: true, noImplicitOverride: true, noPropertyAccessFromIndexSignature: true, skipLibCheck: false, noEmit: true, types: [],
        },
        include: ['check.ts'],
      }),
    );
    ok(join(project, 'node_modules/.bin/tsc'), ['-p', '.'], strict);
  });

  it('ships one bundle: every module in one file, other packages imported', () => {
    // scripts/bundle.js: Node's loader costs per file, and the CLI and each worker thread load
    // their graph afresh (issue 15). Code splitting keeps each module in one file, so the CLI, the
    // worker and a plugin's `cocofuzz/api` share it.
    const dir = join(project, 'node_modules/cocofuzz/dist/bundle');
    const files = readdirSync(dir).filter((f) => f.endsWith('.js'));
    const specifiers = files.flatMap((f) => [...readFileSync(join(dir, f), 'utf8').matchAll(/(?:^import\s[^'"]*?from\s*|^import\s*|\bimport\(\s*)["']([^"']+)["']/gm)].map((m) => m[1]!));
    const relativeOnes = specifiers.filter((s) => s.startsWith('.'));
    expect(relativeOnes.length).toBeGreaterThan(0);
    expect(relativeOnes.filter((s) => !/^\.\/[\w-]+\.js$/.test(s) || !files.includes(s.slice(2)))).toEqual([]);
    expect([...new Set(specifiers.filter((s) => !s.startsWith('.') && !isBuiltin(s)))].sort()).toEqual(['fast-check', 'tsx/esm/api', 'vitest']);
    expect(files.filter((f) => readFileSync(join(dir, f), 'utf8').includes('name: "no-silent-remap"'))).toHaveLength(1);
    // A campaign of built-in policies runs it: two workers find what one finds, byte for byte.
    const found = (workers: string): string => {
      const out = `found-builtin-${workers}`;
      const fuzz = run('npx', ['cocofuzz', 'fuzz', '--host-policy', 'kvm-iommu-4k', '--guest-policy', 'linux-2m-pool', '--runs', '40', '--seed', 'bundle', '--workers', workers, '--out', out], project);
      expect(fuzz.status).toBe(1);
      const repros = readdirSync(join(project, out)).filter((f) => f.endsWith('.json')).sort();
      expect(repros.length).toBeGreaterThan(0);
      return repros.map((f) => readFileSync(join(project, out, f), 'utf8')).join('\n');
    };
    expect(found('2')).toBe(found('1'));
  });

  it('runs the CLI on a user policy in TypeScript, with worker threads, and writes CI outputs', () => {
    writeFileSync(join(project, 'my-host.ts'), readmeBlock('### Writing a policy'));
    const fuzz = run('npx', ['cocofuzz', 'fuzz', '--host-policy', './my-host.ts', '--guest-policy', 'linux-2m-pool', '--runs', '60', '--seed', 'readme', '--workers', '2', '--junit', 'j.xml', '--sarif', 's.sarif', '--html', 'r.html'], project);
    expect([fuzz.status, fuzz.stderr]).toEqual([1, expect.stringContaining('host ./my-host.ts')]);
    expect(fuzz.stdout).toMatch(/finding: io-s2-rmp-size/);
    expect(fuzz.stderr).toContain('a repro file never loads them, so replay with --host-policy ./my-host.ts');
    expect(fuzz.stdout.trim().split('\n').at(-1)).toMatch(/^cocofuzz: \d+ findings? \(\d+ hits?\) in 1 bucket, 60 cases, exit 1$/);
    const repros = readdirSync(join(project, 'cocofuzz-out')).filter((f) => f.endsWith('.json'));
    expect(repros).toHaveLength(1);
    expect(sarifErrors(JSON.parse(readFileSync(join(project, 's.sarif'), 'utf8')))).toEqual([]);
    // The repro names ../my-host.ts, outside its own directory: a repro file never loads code from
    // there (issue 14), so replay says which flag to pass, and replays with it.
    const bare = run('npx', ['cocofuzz', 'replay', '--check', join('cocofuzz-out', repros[0]!)], project);
    expect([bare.status, bare.stderr]).toEqual([2, expect.stringContaining('--host-policy FILE')]);
    const replay = run('npx', ['cocofuzz', 'replay', '--check', join('cocofuzz-out', repros[0]!), '--host-policy', './my-host.ts'], project);
    expect([replay.status, replay.stdout]).toEqual([0, expect.stringContaining('1 expectation(s) met')]);
    if (CHROMIUM) {
      const page = renderFile(join(project, 'r.html'));
      expect(page.console).toEqual([]);
      expect(page.dom).toContain('class="region-map"');
    }
  });

  it('runs the example oracle from the installed package, as README says', () => {
    const fuzz = run('npx', ['cocofuzz', 'fuzz', '--oracle', 'node_modules/cocofuzz/examples/example-oracle.ts', '--only-oracle', 'no-psmash', '--runs', '60', '--seed', 'plugin', '--workers', '1', '--out', 'found-example'], project);
    expect([fuzz.status, fuzz.stderr]).toEqual([1, expect.any(String)]);
    expect(fuzz.stdout).toMatch(/finding: no-psmash/);
    // The same in two worker threads: the same finding, byte for byte.
    const threads = run('npx', ['cocofuzz', 'fuzz', '--oracle', 'node_modules/cocofuzz/examples/example-oracle.ts', '--only-oracle', 'no-psmash', '--runs', '60', '--seed', 'plugin', '--workers', '2', '--out', 'found-example-2'], project);
    expect(threads.status).toBe(1);
    const repros = (dir: string): string[] => readdirSync(join(project, dir)).filter((f) => f.endsWith('.json'));
    expect(repros('found-example-2')).toEqual(repros('found-example'));
    for (const file of repros('found-example')) expect(readFileSync(join(project, 'found-example-2', file), 'utf8')).toBe(readFileSync(join(project, 'found-example', file), 'utf8'));
  });

  // A worker that loads a plugin runs dist/'s modules, not the bundle: the plugin's `cocofuzz` is
  // the engine the worker runs, so a PolicyError the plugin throws is the engine's PolicyError (a
  // bundle's own copy of the class would wrap it again, in another bucket).
  it("treats a plugin's PolicyError from 'cocofuzz' as its own, in worker threads and in the CLI's process", () => {
    writeFileSync(
      join(project, 'pe-host.mjs'),
      [
        "import { defineHostPolicy, PolicyError } from 'cocofuzz';",
        'export default defineHostPolicy({',
        "  name: 'pe-host',",
        "  description: 'refuses to smash',",
        "  io(ctx, event) { if (event.kind === 'smash') throw new PolicyError('pe-host', 'refuses to smash'); return ctx.iommu.defaultIo(event); },",
        '});',
      ].join('\n'),
    );
    const fuzz = run('npx', ['cocofuzz', 'fuzz', '--host-policy', './pe-host.mjs', '--guest-policy', 'linux-2m-pool', '--runs', '40', '--seed', 'rev', '--workers', '2', '--out', 'found-pe'], project);
    expect(fuzz.status).toBe(1);
    expect(fuzz.stdout).toContain('policy pe-host: refuses to smash');
    expect(fuzz.stdout).not.toContain('in hook host io: policy pe-host');
    // replay runs the plugin in the CLI's own process: the same class there.
    const repro = readdirSync(join(project, 'found-pe')).find((f) => f.endsWith('.json') && readFileSync(join(project, 'found-pe', f), 'utf8').includes('refuses to smash'))!;
    const replay = run('npx', ['cocofuzz', 'replay', join('found-pe', repro), '--host-policy', './pe-host.mjs'], project);
    expect(replay.stdout).toContain('policy pe-host: refuses to smash');
    expect(replay.stdout).not.toContain('in hook host io: policy pe-host');
    // The same policy in TypeScript, in this "type": "module" project: tsx's hooks, registered
    // for the thread, resolve its `cocofuzz` as any import (tsImport's namespace made a second engine).
    writeFileSync(join(project, 'pe-host.ts'), readFileSync(join(project, 'pe-host.mjs'), 'utf8'));
    const ts = run('npx', ['cocofuzz', 'fuzz', '--host-policy', './pe-host.ts', '--guest-policy', 'linux-2m-pool', '--runs', '40', '--seed', 'rev', '--workers', '2', '--out', 'found-pe-ts'], project);
    expect([ts.status, ts.stdout]).toEqual([1, expect.stringContaining('policy pe-host: refuses to smash')]);
    expect(ts.stdout).not.toContain('in hook host io: policy pe-host');
    const tsRepro = readdirSync(join(project, 'found-pe-ts')).find((f) => f.endsWith('.json') && readFileSync(join(project, 'found-pe-ts', f), 'utf8').includes('refuses to smash'))!;
    const tsReplay = run('npx', ['cocofuzz', 'replay', join('found-pe-ts', tsRepro), '--host-policy', './pe-host.ts'], project);
    expect(tsReplay.stdout).toContain('policy pe-host: refuses to smash');
    expect(tsReplay.stdout).not.toContain('in hook host io: policy pe-host');
  });

  it("passes the README's vitest example as written", () => {
    writeFileSync(join(project, 'my-host.ts'), readmeBlock('### Writing a policy'));
    writeFileSync(join(project, 'my-host.test.ts'), readmeBlock('## In vitest'));
    const result = run(join(project, 'node_modules/.bin/vitest'), ['run', 'my-host.test.ts'], project);
    expect([result.status, `${result.stdout}\n${result.stderr}`]).toEqual([0, expect.stringMatching(/2 passed/)]);
  });
});
