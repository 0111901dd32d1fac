// The morning-after commands: minimize, replay --trace, corpus check/merge/prune, and sharding.

import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { campaignCase } from '../src/engine/case-job.ts';
import { defaultConfig } from '../src/ops/config.ts';
import { runCli } from './helpers/cli.ts';

const corpus = fileURLToPath(new URL('../corpus/', import.meta.url));
const temp = (): string => mkdtempSync(join(tmpdir(), 'cocofuzz-corpus-'));

describe('minimize and replay --trace', () => {
  it('minimize shrinks a padded repro back to the ops that matter', () => {
    const dir = temp();
    const original = JSON.parse(readFileSync(join(corpus, 'double-validate.json'), 'utf8')) as { ops: unknown[]; expect: unknown };
    const padded = {
      ...original,
      ops: [{ op: 'host_sync' }, { op: 'touch', gpa: '0x600000', write: true }, ...original.ops, { op: 'host_sync' }],
    };
    delete (padded as { expect?: unknown }).expect;
    const file = join(dir, 'padded.json');
    writeFileSync(file, JSON.stringify(padded));
    const result = runCli(['minimize', file]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/padded\.json: 5 -> 1 ops, conversion-order at step 0/);
    const minimized = JSON.parse(readFileSync(join(dir, 'padded.min.json'), 'utf8')) as { ops: unknown[]; expect: unknown };
    expect(minimized.ops).toEqual([{ op: 'share', gpa: '0x800000', pages: 1 }]);
    expect(minimized.expect).toEqual({ verdict: 'violation', oracle: 'conversion-order', step: 0 });
  });

  it('replay --only-oracle checks only the named oracles', () => {
    const file = join(corpus, 'double-validate.json');
    expect(runCli(['replay', file]).stdout).toContain('conversion-order at step 0');
    const only = runCli(['replay', file, '--only-oracle', 'guest-alive']);
    expect(only.code).toBe(1);
    expect(only.stdout).toMatch(/guest-alive at step 1: PVALIDATE 0x800000 4K validate: already in that state \(CF=1\)/);
    const unknown = runCli(['replay', file, '--only-oracle', 'no-such-oracle']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no-such-oracle');
  });

  it('replay --trace prints every primitive call and the violation', () => {
    const result = runCli(['replay', '--trace', join(corpus, 'kvm-iommu-4k-trusted-dma-raw.json')]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('accept gpa=0x200000 size=2M');
    expect(result.stdout).toMatch(/pvalidate\(gpa=0x200000 size=2M validate=true\) = 0/);
    expect(result.stdout).toContain('VIOLATION io-s2-rmp-size');
  });

  it("replay --full-check runs each oracle's full sweep after every step instead of its check", () => {
    // An oracle whose check finds nothing and whose sweep always finds something: the sweep alone
    // runs at the end of the case, and after every step with --full-check.
    const dir = temp();
    const oracle = join(dir, 'sweeper.mjs');
    writeFileSync(oracle, "export default { name: 'sweeper', description: 'd', severity: 'correctness', check() { return []; }, final() { return [{ message: 'swept' }]; } };\n");
    const file = join(dir, 'two-ops.json');
    writeFileSync(file, JSON.stringify({ format: 'cocofuzz-repro/1', title: 't', config: { arch: 'snp' }, seed: 's', ops: [{ op: 'host_sync' }, { op: 'host_sync' }] }));
    const args = ['replay', file, '--oracle', oracle, '--only-oracle', 'sweeper'];
    expect(runCli(args).stdout).toContain('sweeper at step 1: swept');
    expect(runCli([...args, '--full-check']).stdout).toContain('sweeper at step 0: swept');
  });

  it('minimize to another directory says how to replay a result whose policy lies outside it', () => {
    const dir = temp();
    const source = (JSON.parse(readFileSync(join(corpus, 'dma-after-free-unpin-before-flush.json'), 'utf8')) as { config: { hostPolicy: string } }).config.hostPolicy;
    expect(source).toMatch(/^\.\/policies\//);
    const out = join(dir, 'elsewhere', 'min.json');
    mkdirSync(join(dir, 'elsewhere'));
    const result = runCli(['minimize', join(corpus, 'dma-after-free-unpin-before-flush.json'), '--out', out]);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(`a repro file never loads them, so replay ${out} with --host-policy ${join(corpus, source.slice(2))}`);
    // It does replay with that flag.
    expect(runCli(['replay', '--check', out, '--host-policy', join(corpus, source.slice(2))]).code).toBe(0);
  });

  it('minimize refuses a case that does not fail, with exit 2', () => {
    const result = runCli(['minimize', join(corpus, 'clean-kvm-4k-linux.json')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('does not fail');
  });
});

/** A new directory holding copies of checked-in corpus files, by name in the directory. */
function copies(files: Record<string, string>): string {
  const dir = temp();
  for (const [name, from] of Object.entries(files)) cpSync(join(corpus, from), join(dir, name));
  return dir;
}

/** Two different findings under their own names. */
const TWO_FINDINGS = { 'double-validate.json': 'double-validate.json', 'vfio-static-share.json': 'vfio-static-share.json' };

describe('corpus check, merge and prune', () => {
  it('check meets every expectation of the checked-in corpus', () => {
    const result = runCli(['corpus', 'check', corpus]);
    expect(result.code).toBe(0);
    expect(result.stdout.trim().split('\n').every((line) => line.startsWith('ok'))).toBe(true);
  });

  it('merge drops the duplicates of two shards; prune removes them in place', () => {
    const a = copies(TWO_FINDINGS);
    // The same finding under another name in the other shard.
    const b = copies({ 'same-bug-again.json': 'double-validate.json' });
    const out = join(temp(), 'merged');
    const merge = runCli(['corpus', 'merge', a, b, '--out', out]);
    expect(merge.code).toBe(0);
    expect(merge.stdout).toContain('merged 3 file(s) into 2');
    expect(readdirSync(out).sort()).toEqual(['double-validate.json', 'vfio-static-share.json']);

    cpSync(join(b, 'same-bug-again.json'), join(a, 'same-bug-again.json'));
    const prune = runCli(['corpus', 'prune', a]);
    expect(prune.code).toBe(0);
    expect(prune.stdout).toContain('pruned 1 duplicate(s), 2 file(s) kept');
    expect(readdirSync(a).sort()).toEqual(['double-validate.json', 'vfio-static-share.json']);
  });

  it('prune counts a file named twice (a directory and a link to it, a file inside it) once', () => {
    const dir = copies(TWO_FINDINGS);
    const link = join(temp(), 'link');
    symlinkSync(dir, link);
    for (const args of [[dir, link], [dir, join(dir, 'double-validate.json')], [dir, `${dir}/`]]) {
      const prune = runCli(['corpus', 'prune', ...args]);
      expect(prune.code).toBe(0);
      expect(prune.stdout).toContain('pruned 0 duplicate(s), 2 file(s) kept');
      expect(readdirSync(dir).sort()).toEqual(['double-validate.json', 'vfio-static-share.json']);
    }
  });

  it('prune removes nothing, and coverage counts only what it replayed, when a file is refused', () => {
    const dir = copies({ 'a.json': 'double-validate.json', 'b.json': 'double-validate.json', 'c.json': 'clean-kvm-4k-linux.json', 'd.json': 'clean-kvm-4k-linux.json' });
    // A file whose policy lies outside its tree: refused, so whatever it covers is unknown.
    const evil = JSON.parse(readFileSync(join(dir, 'c.json'), 'utf8')) as { config: Record<string, unknown> };
    writeFileSync(join(dir, 'evil.json'), JSON.stringify({ ...evil, config: { ...evil.config, hostPolicy: '../elsewhere/evil.mjs' } }));
    for (const args of [['corpus', 'prune', dir], ['corpus', 'prune', '--coverage', dir]]) {
      const prune = runCli(args);
      expect(prune.code).toBe(2);
      expect(prune.stderr).toContain('evil.json');
      expect(prune.stdout).toContain('pruned nothing: 1 file(s) could not be read or replayed');
      expect(readdirSync(dir).sort()).toEqual(['a.json', 'b.json', 'c.json', 'd.json', 'evil.json']);
    }
    const covered = runCli(['coverage', dir]);
    expect(covered.code).toBe(2);
    expect(covered.stdout).toMatch(/^4 file\(s\) \(1 more refused, see above\): /);
    expect(JSON.parse(runCli(['coverage', '--json', dir]).stdout)).toMatchObject({ files: 4, refused: 1 });
  });

  it('--out is for merge only: prune and check refuse it before touching anything', () => {
    const dir = copies({ 'a.json': 'double-validate.json', 'b.json': 'double-validate.json' });
    for (const action of ['prune', 'check']) {
      const result = runCli(['corpus', action, dir, '--out', join(temp(), 'copy')]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('--out applies to merge only');
    }
    expect(readdirSync(dir).sort()).toEqual(['a.json', 'b.json']);
  });

  it('--oracle and --only-oracle take one value each: the files after them stay files', () => {
    const result = runCli(['replay', '--only-oracle', 'guest-alive', join(corpus, 'double-validate.json')]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('guest-alive at step 1');
    const both = runCli(['replay', '--only-oracle', 'guest-alive', '--only-oracle', 'io-s2-rmp-size', join(corpus, 'double-validate.json')]);
    expect(both.code).toBe(1);
  });

  it('an empty directory is an empty corpus to merge, report, cover and prune; check and replay refuse it', () => {
    // The first night's corpus, a shard or a campaign that found nothing (README "Nightly CI").
    const dir = temp();
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    cpSync(join(corpus, 'double-validate.json'), join(dir, 'found', 'double-validate.json'), { recursive: true });
    const merged = runCli(['corpus', 'merge', empty, join(dir, 'found'), '--out', join(dir, 'merged')]);
    expect(merged.code, merged.stderr).toBe(0);
    expect(readdirSync(join(dir, 'merged'))).toEqual(['double-validate.json']);
    expect(runCli(['corpus', 'merge', empty, '--out', join(dir, 'none')]).stdout).toMatch(/merged 0 file\(s\) into 0/);
    expect(runCli(['corpus', 'prune', empty]).code).toBe(0);
    expect(runCli(['coverage', empty]).stdout).toMatch(/^0 file\(s\): 0 features/);
    const report = runCli(['report', empty]);
    expect(report.code, report.stderr).toBe(0);
    expect(readFileSync(join(empty, 'report.html'), 'utf8')).toContain('No findings');
    for (const args of [['corpus', 'check', empty], ['replay', '--check', empty]]) {
      const refused = runCli(args);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain('no repro files (*.json) in this directory');
    }
  });

  it('a directory whose repro files lie further down is a wrong path, even where an empty corpus is fine', () => {
    const root = temp();
    // shards/ named for shards/shard-0/findings: it would pass on nothing.
    cpSync(join(corpus, 'double-validate.json'), join(root, 'shards', 'shard-0', 'findings', 'double-validate.json'), { recursive: true });
    for (const args of [['report', join(root, 'shards')], ['coverage', join(root, 'shards')], ['corpus', 'prune', join(root, 'shards')]]) {
      const result = runCli(args);
      expect([result.code, result.stderr]).toEqual([2, expect.stringMatching(/shards: no repro files \(\*\.json\) in this directory \(there are some further down: .*shard-0\/findings\/double-validate\.json; name that directory\)/)]);
    }
    // Other files beside no repro file are an empty corpus: .gitkeep, a JUnit file of a clean campaign.
    const empty = join(root, 'empty');
    mkdirSync(empty);
    writeFileSync(join(empty, '.gitkeep'), '');
    writeFileSync(join(empty, 'junit.xml'), '<testsuites/>');
    expect(runCli(['coverage', empty]).code).toBe(0);
  });

  it('merge leaves out, and names, a file whose expectation the given policies do not meet', () => {
    const dir = temp();
    const merged = runCli(['corpus', 'merge', join(corpus, 'vfio-static-stale.json'), join(corpus, 'double-validate.json'), '--host-policy', 'kvm-4k', '--out', join(dir, 'm')]);
    expect(merged.code, merged.stderr).toBe(0);
    expect(merged.stdout).toMatch(/not merged {2}.*vfio-static-stale\.json: expected npt-iommu-coherence at step 0, got clean/);
    expect(readdirSync(join(dir, 'm'))).toEqual(['double-validate.json']);
    expect(runCli(['corpus', 'check', join(dir, 'm')]).code).toBe(0);
  });

  it("merge keeps a regression's witness (a clean file that now fails) and fails, as corpus check does", () => {
    const dir = temp();
    const merged = runCli(['corpus', 'merge', join(corpus, 'clean-kvm-4k-linux.json'), '--host-policy', 'vfio-static', '--out', join(dir, 'm')]);
    expect(merged.code).toBe(1);
    expect(merged.stdout).toMatch(/FAIL {2}.*clean-kvm-4k-linux\.json: expected clean, got npt-iommu-coherence at step 0.* \(merged as it is\)/);
    expect(readdirSync(join(dir, 'm'))).toEqual(['clean-kvm-4k-linux.json']);
  });

  it("merge and replay take a shard's findings whose oracle the artifact does not carry, given as --oracle", () => {
    // The finding names ../oracles/no-psmash.mjs from the shard's checkout; downloaded, it is not there.
    const root = temp();
    const oracle = "export default { name: 'no-psmash', description: 'd', severity: 'correctness', check(_view, step) { return step.calls.filter((c) => c.prim === 'psmash' && c.result === 0).map(() => ({ message: 'PSMASH ==> FAIL (2M entry smashed)' })); } };\n";
    for (const where of ['checkout', '.']) {
      mkdirSync(join(root, where, 'oracles'), { recursive: true });
      writeFileSync(join(root, where, 'oracles', 'no-psmash.mjs'), oracle);
    }
    const fuzz = runCli(['fuzz', '--oracle', './oracles/no-psmash.mjs', '--only-oracle', 'no-psmash', '--runs', '60', '--seed', 'plugin', '--workers', '1', '--out', 'findings'], { cwd: join(root, 'checkout') });
    expect(fuzz.code, fuzz.stderr).toBe(1);
    // Downloaded as the workflow does: shards/shard-0/findings, where ../oracles/ is not.
    cpSync(join(root, 'checkout', 'findings'), join(root, 'shards', 'shard-0', 'findings'), { recursive: true });
    const merged = runCli(['corpus', 'merge', 'shards/shard-0/findings', '--oracle', './oracles/no-psmash.mjs', '--out', 'merged'], { cwd: root });
    expect([merged.code, merged.stderr]).toEqual([0, '']);
    const [file] = readdirSync(join(root, 'merged')).filter((f) => f.endsWith('.json'));
    expect((JSON.parse(readFileSync(join(root, 'merged', file!), 'utf8')) as { oracles: string[] }).oracles).toEqual(['../oracles/no-psmash.mjs']);
    const replay = runCli(['replay', '--check', join('shards', 'shard-0', 'findings', file!), '--oracle', './oracles/no-psmash.mjs'], { cwd: root });
    expect([replay.code, replay.stdout]).toEqual([0, expect.stringContaining('1 expectation(s) met')]);
    // Another oracle file of the same name does not stand for it: the path must end as the recorded one.
    mkdirSync(join(root, 'other'));
    writeFileSync(join(root, 'other', 'no-psmash.mjs'), oracle);
    const other = runCli(['replay', '--check', join('shards', 'shard-0', 'findings', file!), '--oracle', './other/no-psmash.mjs'], { cwd: root });
    expect([other.code, other.stderr]).toEqual([2, expect.stringContaining("is outside the repro file's directory")]);
  });

  it('merge without --out is a usage error', () => {
    const result = runCli(['corpus', 'merge', corpus]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--out');
  });
});

describe('shards', () => {
  it('partition the campaign seed space: shard i of n runs global cases i, i+n, ...', () => {
    const config = defaultConfig();
    const job = (index: number, count: number) => ({ config, seed: 'night', generate: { steps: 8 }, oracleFiles: [], onlyOracles: [], minimizeBudget: 1, shard: { index, count } });
    const seeds = (index: number, count: number, cases: number) => Array.from({ length: cases }, (_, k) => campaignCase(job(index, count), k).seed);
    const whole = seeds(0, 1, 6);
    expect(seeds(0, 2, 3)).toEqual([whole[0], whole[2], whole[4]]);
    expect(seeds(1, 2, 3)).toEqual([whole[1], whole[3], whole[5]]);
  });
});
