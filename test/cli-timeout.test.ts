// Issue 14, item 14, through the real binary: a hook that never returns is stopped by the
// watchdog, labelled not deterministic, and shrunk by a primitive-call budget rather than by wall
// clock; a case past --call-budget is a deterministic policy-error that shrinks like any other;
// a hook that loops without calling anything still ends as a labelled finding, and the campaign
// carries on. No assertion depends on how fast the machine is: the wall clock only decides that
// the watchdog fires, never what a test expects.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, runCliAsync } from './helpers/cli.ts';

const temp = (): string => mkdtempSync(join(tmpdir(), 'cocofuzz-timeout-'));
/** Generous: the machine may be loaded; each test is bounded by its runs and the shrink's bounds. */
const TIMEOUT_MS = 240_000;

function plugin(dir: string, name: string, body: string): string {
  const file = join(dir, name);
  writeFileSync(file, body);
  return file;
}

const jsonLines = (stdout: string): Record<string, unknown>[] =>
  stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

/**
 * Loops forever in split, reading the RMP each time round with 30 µs of work in between: it would
 * take 7.5 s of wall clock to reach the step budget (250,000 calls), so the 3 s watchdog stops it
 * first, after thousands of calls.
 */
const SPINS_ON_SPLIT = `const spin = (us) => { const end = performance.now() + us / 1000; while (performance.now() < end); };
export default { name: 'spins', description: 'loops in split, reading the RMP', split(ctx, r) { for (;;) { ctx.machine.rmpRead(ctx.gmemFrame(r.gpa)); spin(30); } } };
`;
const HANGS_ON_SPLIT = "export default { name: 'hangs', description: 'loops in split', split() { for (;;) {} } };\n";
/** KVM's split after 40 RMP reads: many calls, never a hang. */
const CHATTY_SPLIT = `export default { name: 'chatty', description: 'reads the RMP before each split', split(ctx, r) { for (let i = 0; i < 40; i++) ctx.machine.rmpRead(ctx.gmemFrame(r.gpa)); ctx.kvm.defaultSplit(r); } };
`;
// Seed t2 with few splits: case 2's first host_split is its op 8 of 32.
const RARE_SPLITS = ['--seed', 't2', '--weights', 'host_split=1,accept=20,share=20,dma=20,alloc_coherent=10,map_single=10', '--only-oracle', 'policy-error'];

/**
 * Three RARE_SPLITS cases under the host policy `body` (written to `name`), one worker, the
 * watchdog at `caseTimeout`: the campaign exits 1; its JSON lines and first finding.
 */
async function watchdogCampaign(name: string, body: string, caseTimeout: string): Promise<{ lines: Record<string, unknown>[]; finding: Record<string, unknown> | undefined }> {
  const dir = temp();
  const policy = plugin(dir, name, body);
  const args = ['fuzz', '--host-policy', policy, '--runs', '3', ...RARE_SPLITS, '--workers', '1', '--case-timeout', caseTimeout, '--json', '--out', join(dir, 'out')];
  const result = await runCliAsync(args, { timeoutMs: 230_000 });
  expect(result.code).toBe(1);
  const lines = jsonLines(result.stdout);
  return { lines, finding: lines.find((l) => l.type === 'finding') };
}

describe('item 14: a timeout is labelled not deterministic and shrunk by a primitive-call budget', () => {
  it(
    'a hook that loops calling a primitive is stopped, then shrunk to its one op with a call budget, and the campaign goes on',
    async () => {
      const { lines, finding } = await watchdogCampaign('spins.mjs', SPINS_ON_SPLIT, '3s');
      expect(finding).toMatchObject({ oracle: 'policy-error', nondeterministic: true, case: 2, shrunkFrom: 32, ops: 1, step: 0 });
      const message = String(finding?.message);
      expect(message).toMatch(/^not deterministic \(a watchdog verdict\): the case was stopped in op 8, in hook host split, after \d+ primitive calls: no result after 3s of wall clock/);
      expect(message).toMatch(/shrunk with a budget of \d+ primitive calls per op: policy spins: step budget exceeded: op 0 \(host_split\), in hook host split, made more than \d+ primitive calls$/);
      const repro = JSON.parse(readFileSync(String(finding?.file), 'utf8')) as { ops: { op: string }[]; title: string; expect: unknown };
      expect(repro.ops.map((op) => op.op)).toEqual(['host_split']);
      expect(repro.title).toMatch(/^policy-error: not deterministic/);
      expect(repro.expect).toEqual({ verdict: 'violation', oracle: 'policy-error', step: 0 });
      expect(lines.find((l) => l.type === 'summary')).toMatchObject({ cases: 3 });
    },
    TIMEOUT_MS,
  );

  it(
    'a hook that loops without calling anything still ends as a labelled finding at that op, and the campaign goes on',
    async () => {
      const { lines, finding } = await watchdogCampaign('hangs.mjs', HANGS_ON_SPLIT, '2s');
      expect(finding).toMatchObject({ oracle: 'policy-error', nondeterministic: true, case: 2, shrunkFrom: 32 });
      expect(String(finding?.message)).toMatch(/^not deterministic \(a watchdog verdict\): the case was stopped in op 8, in hook host split/);
      // Shrunk under the watchdog alone (no call budget can tell a loop that calls nothing), or,
      // if no candidate hung again within the shrink's bounds, cut at the op in flight.
      const repro = JSON.parse(readFileSync(String(finding?.file), 'utf8')) as { ops: { op: string }[]; title: string };
      expect(repro.ops.length).toBeLessThanOrEqual(9);
      expect(repro.ops.at(-1)?.op).toBe('host_split');
      expect(repro.title).toMatch(/^policy-error: not deterministic/);
      expect(lines.find((l) => l.type === 'summary')).toMatchObject({ cases: 3 });
    },
    TIMEOUT_MS,
  );
});

describe('item 14: --call-budget', () => {
  it(
    'a case past it is a deterministic policy-error naming the op and the hook, shrunk, and the same when the case is run again',
    async () => {
      const dir = temp();
      const policy = plugin(dir, 'chatty.mjs', CHATTY_SPLIT);
      const base = ['--host-policy', policy, '--seed', 'cb', '--weights', 'host_split=40', '--only-oracle', 'policy-error', '--call-budget', '150'];
      const result = await runCliAsync(['fuzz', ...base, '--runs', '6', '--workers', '1', '--json', '--out', join(dir, 'out')], { timeoutMs: 230_000 });
      expect(result.code).toBe(1);
      const lines = jsonLines(result.stdout);
      const finding = lines.find((l) => l.type === 'finding');
      expect(finding?.oracle).toBe('policy-error');
      expect(finding).not.toHaveProperty('nondeterministic');
      const message = String(finding?.message);
      expect(message).toMatch(/^policy \S+: call budget exceeded: the case made more than 150 primitive calls, the last in op \d+ \(\w+\)/);
      expect(Number(finding?.ops)).toBeLessThan(Number(finding?.shrunkFrom));
      expect(lines.find((l) => l.type === 'summary')).toMatchObject({ cases: 6 });
      // The same global case, run alone twice: the same verdict, word for word.
      const again = [0, 1].map(() => runCli(['fuzz', ...base, '--case', String(finding?.case)]));
      for (const run of again) expect(run.code).toBe(1);
      expect(again[0]?.stdout).toMatch(/verdict: policy-error at step \d+: policy \S+: call budget exceeded/);
      expect(again[1]?.stdout).toBe(again[0]?.stdout);
      expect(runCli(['fuzz', '--call-budget', '0', '--runs', '1']).stderr).toMatch(/^cocofuzz: --call-budget/);
    },
    TIMEOUT_MS,
  );
});
