// What a nightly job relies on: findings in ./cocofuzz-out by default, the campaign log, the
// verdict line, --max-findings, --case, the HTML report (rendered by headless Chromium), SARIF.

import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDuration } from '../src/engine/duration.ts';
import { OP_SPECS } from '../src/ops/schema.ts';
import { CHROMIUM, renderFile } from './helpers/chromium.ts';
import { runCli } from './helpers/cli.ts';
import { sarifErrors } from './helpers/schemas.ts';

const temp = (): string => mkdtempSync(join(tmpdir(), 'cocofuzz-nightly-'));
const jsonLines = (text: string): Record<string, unknown>[] =>
  text
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
const VERDICT = /^cocofuzz: (\d+) findings? \((\d+) hits?\) in (\d+) buckets?, (\d+) cases?, exit (\d)$/;

describe('fuzz artifacts by default', () => {
  const cwd = temp();
  const first = runCli(['fuzz', '--runs', '40', '--seed', 'e2e', '--workers', '1', '--junit', 'j.xml', '--sarif', 's.sarif', '--html', 'r.html'], { cwd });

  it('writes the repro and campaign.jsonl to ./cocofuzz-out and ends on the verdict line', () => {
    expect(first.code).toBe(1);
    const files = readdirSync(join(cwd, 'cocofuzz-out'));
    expect(files.filter((f) => /^io-s2-rmp-size-[0-9a-f]{10}\.json$/.test(f))).toHaveLength(1);
    expect(files).toContain('campaign.jsonl');
    const log = jsonLines(readFileSync(join(cwd, 'cocofuzz-out', 'campaign.jsonl'), 'utf8'));
    expect(log.every((line) => line.schema === 'cocofuzz-log/1' && typeof line.type === 'string')).toBe(true);
    expect(log[0]?.type).toBe('start');
    expect(log.at(-1)).toMatchObject({ type: 'summary', cases: 40, exit: 1 });
    const verdict = VERDICT.exec(first.stdout.trim().split('\n').at(-1) ?? '');
    expect(verdict).not.toBeNull();
    expect(verdict?.[3]).toBe('1');
    expect(verdict?.[4]).toBe('40');
    expect(Number(verdict?.[2])).toBeGreaterThanOrEqual(Number(verdict?.[1]));
  });

  it('keeps a repro file already there for the same bucket', () => {
    const dir = join(cwd, 'cocofuzz-out');
    const file = readdirSync(dir).find((f) => f.startsWith('io-s2-rmp-size-'))!;
    const edited = readFileSync(join(dir, file), 'utf8').replace(/"title": "[^"]*"/, '"title": "triaged: upstream bug"');
    writeFileSync(join(dir, file), edited);
    const again = runCli(['fuzz', '--runs', '40', '--seed', 'e2e', '--workers', '1'], { cwd });
    expect(again.code).toBe(1);
    expect(again.stdout).toContain(`already in cocofuzz-out/${file}`);
    expect(readFileSync(join(dir, file), 'utf8')).toBe(edited);
  });

  it('writes SARIF valid against 2.1.0 naming the repro file', () => {
    const sarif = JSON.parse(readFileSync(join(cwd, 's.sarif'), 'utf8')) as { runs: { results: { ruleId: string; locations: { physicalLocation: { artifactLocation: { uri: string } } }[] }[] }[] };
    expect(sarifErrors(sarif)).toEqual([]);
    expect(sarif.runs[0]?.results).toHaveLength(1);
    expect(sarif.runs[0]?.results[0]?.ruleId).toBe('io-s2-rmp-size');
    expect(sarif.runs[0]?.results[0]?.locations[0]?.physicalLocation.artifactLocation.uri).toMatch(/^cocofuzz-out\/io-s2-rmp-size-[0-9a-f]{10}\.json$/);
  });

  it.skipIf(!CHROMIUM)('writes an HTML report that renders without console messages and draws the region map', () => {
    const html = readFileSync(join(cwd, 'r.html'), 'utf8');
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    const page = renderFile(join(cwd, 'r.html'));
    expect(page.console).toEqual([]);
    expect(page.dom).toContain('class="region-map"');
    expect(page.dom).toMatch(/<rect [^>]*data-kind="4K"/);
    expect(page.dom).toContain('Coverage over time');
    expect(page.dom).toContain('S2[4K] -- [4K] --&gt; RMP[2M]');
  });

  it.skipIf(!CHROMIUM)('cocofuzz report DIR reads campaign.jsonl and the repro files', () => {
    const result = runCli(['report', join(cwd, 'cocofuzz-out')]);
    expect(result.code).toBe(0);
    const file = join(cwd, 'cocofuzz-out', 'report.html');
    const page = renderFile(file);
    expect(page.console).toEqual([]);
    expect(page.dom).toContain('seed');
    expect(page.dom).toContain('e2e');
    expect(page.dom).toContain('class="region-map"');
  });
});

describe('--max-findings and --case', () => {
  const args = ['fuzz', '--host-policy', 'vfio-static', '--runs', '60', '--seed', 'determinism', '--steps', '32', '--json', '--max-findings', '2'];

  it('stops at the case that completes the N-th bucket, whatever the worker count', () => {
    const summaries = ['1', '2'].map((workers) => {
      const result = runCli([...args, '--workers', workers]);
      expect(result.code).toBe(1);
      return jsonLines(result.stdout).find((line) => line.type === 'summary');
    });
    expect(summaries[0]).toMatchObject({ buckets: 2, stoppedBy: 'max-findings' });
    expect(summaries[1]?.cases).toBe(summaries[0]?.cases);
    expect(summaries[1]?.findings).toBe(summaries[0]?.findings);
    expect(summaries[0]?.cases).toBeLessThan(60);
  });

  it('--case K regenerates global case K of the seed, whatever the shard', () => {
    const campaign = jsonLines(runCli([...args, '--workers', '1']).stdout).filter((line) => line.type === 'finding');
    const second = campaign[1]!;
    const single = runCli(['fuzz', '--host-policy', 'vfio-static', '--seed', 'determinism', '--steps', '32', '--case', String(second.case), '--shard', '1/3']);
    expect(single.code).toBe(1);
    expect(single.stdout).toContain(`case ${String(second.case)} (seed determinism/${String(second.case)})`);
    expect(single.stdout).toContain(`verdict: ${String(second.oracle)} at step`);
    expect(runCli(['fuzz', '--case', '3']).stderr).toContain('--case: needs the --seed');
  });

  it('stoppedBy says which of --runs and --time ended the campaign when both are given', () => {
    const stopped = (runs: string, time: string): unknown =>
      jsonLines(runCli(['fuzz', '--host-policy', 'quiesce-dma', '--runs', runs, '--time', time, '--workers', '1', '--json', '--out', mkdtempSync(join(tmpdir(), 'cocofuzz-stop-'))]).stdout).at(-1)?.stoppedBy;
    expect(stopped('1000000', '1s')).toBe('time');
    expect(stopped('3', '1h')).toBe('runs');
  });

  it("a shard's findings name the global case, the one --case K runs", () => {
    const shard = runCli(['fuzz', '--host-policy', 'vfio-static', '--seed', 'determinism', '--steps', '32', '--runs', '20', '--shard', '2/3', '--workers', '1', '--json', '--out', mkdtempSync(join(tmpdir(), 'cocofuzz-shard-'))]);
    const finding = jsonLines(shard.stdout).find((line) => line.type === 'finding')!;
    expect(Number(finding.case) % 3).toBe(2);
    expect(finding.seed).toBe(`determinism/${String(finding.case)}`);
    const single = runCli(['fuzz', '--host-policy', 'vfio-static', '--seed', 'determinism', '--steps', '32', '--case', String(finding.case)]);
    expect(single.stdout).toContain(`verdict: ${String(finding.oracle)} at step`);
    // A coverage-guided case is not a function of the seed: --case refuses guidance.
    expect(runCli(['fuzz', '--seed', 'determinism', '--case', '3', '--coverage']).stderr).toContain('--coverage: not with --case');
  });
});

describe('help and discoverability', () => {
  it('reads compound durations', () => {
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('2m30.5s')).toBe(150_500);
    expect(parseDuration('90')).toBe(90_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('30m1h')).toBeUndefined();
    expect(parseDuration('1h30x')).toBeUndefined();
  });

  it('lists every op with its fields', () => {
    const result = runCli(['ops']);
    expect(result.code).toBe(0);
    for (const name of Object.keys(OP_SPECS)) expect(result.stdout).toMatch(new RegExp(`^${name} {2}\\(`, 'm'));
    expect(result.stdout).toMatch(/^ {4}gpa {2}4K-aligned address/m);
  });

  it('gives an example in every subcommand help and types numbers as numbers', () => {
    for (const command of ['fuzz', 'replay', 'minimize', 'explain', 'corpus', 'report', 'ops', 'oracles', 'policies']) {
      expect([command, runCli([command, '--help']).stdout]).toEqual([command, expect.stringContaining('Examples:')]);
    }
    expect(runCli(['fuzz', '--help']).stdout).toMatch(/--runs .*\[number\]/);
  });

  it('replay --json speaks the log schema, with a summary line', () => {
    const result = runCli(['replay', '--json', 'corpus/']);
    const lines = jsonLines(result.stdout);
    expect(lines.every((line) => line.schema === 'cocofuzz-log/1')).toBe(true);
    expect(lines.slice(0, -1).every((line) => line.type === 'result')).toBe(true);
    expect(lines.at(-1)).toMatchObject({ type: 'summary', mode: 'replay', unreadable: 0 });
  });

  it('replay --trace --json: every line is a log line, a step line per step (the help example)', () => {
    const result = runCli(['replay', '--trace', '--json', 'corpus/double-validate.json']);
    const lines = jsonLines(result.stdout);
    expect(lines.map((line) => line.type)).toEqual(['step', 'step', 'result', 'summary']);
    expect(lines[0]).toMatchObject({ file: 'corpus/double-validate.json', step: 0, op: 'share gpa=0x800000 pages=1', faults: ['npf at 0x800000: ==> FAULT (not present)'], violations: [expect.objectContaining({ oracle: 'conversion-order' })] });
    expect((lines[0]?.calls as string[])[0]).toMatch(/^1 pvalidate\(gpa=0x800000 size=2M validate=true\) = npf$/);
  });
});
