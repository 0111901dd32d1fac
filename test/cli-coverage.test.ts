// --corpus DIR, replay-first, determinism across worker counts with coverage on, `coverage DIR`
// and `corpus prune --coverage` through the real binary (issue 16).

import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readRepro } from '../src/repro/format.ts';
import { deterministic, runCli, runCliAsync } from './helpers/cli.ts';

const shipped = fileURLToPath(new URL('../corpus/', import.meta.url));
const temp = (): string => mkdtempSync(join(tmpdir(), 'cocofuzz-cov-'));
const clean = ['--host-policy', 'quiesce-dma', '--config', '{"guestMemory":"64M"}', '--steps', '24', '--json'];
const summary = (stdout: string): Record<string, unknown> => JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;

describe('fuzz --corpus', () => {
  it('creates DIR, writes content-named expect:clean repros, replays them first outside --runs', () => {
    const dir = join(temp(), 'corpus');
    const first = runCli(['fuzz', '--runs', '80', '--seed', 'c1', '--workers', '1', '--corpus', dir, ...clean]);
    expect(first.code).toBe(0);
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    const s1 = summary(first.stdout);
    expect(files.length).toBeGreaterThan(3);
    expect(s1).toMatchObject({ cases: 80, corpus: files.length, replayed: 0 });
    expect(s1.coverage as number).toBeGreaterThan(50);
    // One coverage figure: the timeline (the report's plot) ends where the summary does.
    const lastPoint = (s: Record<string, unknown>): unknown => (s.timeline as { coverage: number }[]).at(-1)?.coverage;
    expect(lastPoint(s1)).toBe(s1.coverage);
    for (const name of files) {
      expect(name).toMatch(/^[0-9a-f]{16}\.json$/);
      expect(readRepro(join(dir, name)).expect).toEqual({ verdict: 'clean' });
    }
    // The corpus is a regression suite on its own.
    expect(runCli(['corpus', 'check', dir]).code).toBe(0);
    // The second night replays the first night's corpus first: not counted in cases, counted in coverage.
    const second = runCli(['fuzz', '--runs', '5', '--seed', 'c2', '--workers', '1', '--corpus', dir, ...clean]);
    expect(second.code).toBe(0);
    const s2 = summary(second.stdout);
    expect(s2).toMatchObject({ cases: 5, replayed: files.length });
    expect(lastPoint(s2)).toBe(s2.coverage);
    expect(s2.coverage as number).toBeGreaterThanOrEqual(s1.coverage as number);
    expect(s2.corpus as number).toBeGreaterThanOrEqual(files.length);
  });

  it('an empty DIR is valid; the status line shows coverage and corpus', () => {
    const dir = temp();
    const result = runCli(['fuzz', '--runs', '3', '--seed', 'e', '--workers', '1', '--corpus', dir, '--host-policy', 'quiesce-dma']);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/cases 3 \| .* \| coverage \d+ \| corpus \d+ \|/);
  });

  it('--max-findings stops the corpus replay too; corpus counts every file of DIR', () => {
    const dir = temp();
    for (const name of ['no-silent-remap-npt', 'rmp-well-formed-second-frame', 'kvm-iommu-4k-trusted-dma']) copyFileSync(join(shipped, `${name}.json`), join(dir, `${name}.json`));
    const outputs = ['1', '2'].map((workers) => {
      const result = runCli(['fuzz', '--runs', '50', '--max-findings', '1', '--seed', 'mf', '--workers', workers, '--corpus', dir, '--json']);
      expect(result.code).toBe(1);
      expect(summary(result.stdout)).toMatchObject({ cases: 0, buckets: 1, findings: 1, replayed: 1, corpus: 3, stoppedBy: 'max-findings' });
      return deterministic(result.stdout);
    });
    expect(outputs[1]).toBe(outputs[0]);
    const text = runCli(['fuzz', '--runs', '50', '--max-findings', '1', '--seed', 'mf', '--workers', '1', '--corpus', dir]);
    expect(text.stderr).toMatch(/cases 0 \| .* \| coverage \d+ \| corpus 3 \(1 replayed\) \|/);
  });

  it('a corpus file that now fails is a finding (exit 1) naming the file', () => {
    const dir = temp();
    copyFileSync(join(shipped, 'kvm-iommu-4k-trusted-dma.json'), join(dir, 'old.json'));
    const result = runCli(['fuzz', '--runs', '1', '--seed', 'f', '--workers', '1', '--corpus', dir, '--host-policy', 'kvm-iommu-4k', '--only-oracle', 'io-s2-rmp-size', '--json']);
    expect(result.code).toBe(1);
    const finding = JSON.parse(result.stdout.split('\n').find((line) => line.includes('"type":"finding"')) ?? '{}') as Record<string, unknown>;
    expect(finding).toMatchObject({ type: 'finding', oracle: 'io-s2-rmp-size', corpusFile: join(dir, 'old.json') });
    expect(summary(result.stdout)).toMatchObject({ cases: 1, replayed: 1 });
  });

  it('a malformed corpus file is a usage error before any work', () => {
    const dir = temp();
    writeFileSync(join(dir, 'bad.json'), '{"format":"cocofuzz-repro/1","ops":7}');
    const result = runCli(['fuzz', '--runs', '5', '--corpus', dir]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--corpus: .*bad\.json: config/);
    expect(runCli(['fuzz', '--runs', '5', '--no-coverage', '--corpus', temp()]).code).toBe(2);
  });

  it('output and corpus are identical for 1 and 2 workers with coverage on', async () => {
    const runs = await Promise.all(
      ['1', '2'].map(async (workers) => {
        const dir = temp();
        const result = await runCliAsync(['fuzz', '--runs', '100', '--seed', 'det', '--workers', workers, '--corpus', dir, ...clean]);
        return { result, files: readdirSync(dir).sort() };
      }),
    );
    const [one, two] = runs;
    expect(one?.result.code).toBe(0);
    expect(deterministic(two?.result.stdout ?? '')).toBe(deterministic(one?.result.stdout ?? ''));
    expect(two?.files).toEqual(one?.files);
  });
});

describe('coverage DIR and corpus prune --coverage', () => {
  it('coverage prints what was reached and never reached, per table and per op', () => {
    const result = runCli(['coverage', join(shipped, 'clean-kvm-4k-linux.json'), join(shipped, 'double-validate.json')]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^2 file\(s\): \d+ features, \d+ distinct region tuples/);
    expect(result.stdout).toMatch(/rmp\.size +reached: .*never: /);
    expect(result.stdout).toMatch(/ops never run: .*hw_rmpupdate/);
    const json = JSON.parse(runCli(['coverage', '--json', join(shipped, 'clean-kvm-4k-linux.json')]).stdout) as { files: number; tables: unknown[] };
    expect(json.files).toBe(1);
    expect(json.tables.length).toBeGreaterThan(5);
  });

  it('per op, the fixed outcomes it never reached: a share raced by a DMA, and one never raced', () => {
    type Ops = { ops: { op: string; outcomes: string[]; neverOutcomes: string[] }[] };
    const share = (file: string) => (JSON.parse(runCli(['coverage', '--json', join(shipped, file)]).stdout) as Ops).ops.find((o) => o.op === 'share')!;
    // A share with an interleaved DMA reached "during dma"; the world file's shares never had one.
    const raced = share('race-cut-on-convert-psmash-first.json');
    expect(raced.outcomes).toContain('during dma');
    expect(raced.neverOutcomes).not.toContain('during dma');
    const calm = share('clean-kvm-iommu-4k-round-trip.json');
    expect(calm.neverOutcomes).toContain('during dma');
    expect(calm.neverOutcomes).toContain('during touch');
    for (const outcome of calm.outcomes) expect(calm.neverOutcomes).not.toContain(outcome);
    const text = runCli(['coverage', join(shipped, 'clean-kvm-iommu-4k-round-trip.json')]).stdout;
    expect(text).toMatch(/^ {19}never: .*during dma; .*during touch/m);
  });

  it('prune drops clean files that add no coverage and never touches violation files', () => {
    const dir = temp();
    copyFileSync(join(shipped, 'clean-kvm-4k-linux.json'), join(dir, 'a.json'));
    copyFileSync(join(shipped, 'clean-kvm-4k-linux.json'), join(dir, 'b.json'));
    copyFileSync(join(shipped, 'double-validate.json'), join(dir, 'v1.json'));
    copyFileSync(join(shipped, 'double-validate.json'), join(dir, 'v2.json'));
    const before = readFileSync(join(dir, 'v2.json'), 'utf8');
    const result = runCli(['corpus', 'prune', '--coverage', dir]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`removed ${join(dir, 'b.json')} (adds no coverage)`);
    expect(existsSync(join(dir, 'a.json'))).toBe(true);
    expect(existsSync(join(dir, 'v1.json'))).toBe(true);
    expect(readFileSync(join(dir, 'v2.json'), 'utf8')).toBe(before);
    expect(runCli(['corpus', 'merge', '--coverage', dir, '--out', temp()]).code).toBe(2);
    // The directory named twice: each file is one candidate, pruned as above, not against itself.
    const again = runCli(['corpus', 'prune', '--coverage', dir, `${dir}/`, join(dir, 'a.json')]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('pruned 0 file(s)');
    expect(readdirSync(dir).sort()).toEqual(['a.json', 'v1.json', 'v2.json']);
  });
});
