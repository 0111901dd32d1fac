// The product as users meet it, through the real binary in child processes.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CLI, cliEnv, deterministic, runCli } from './helpers/cli.ts';

const temp = (): string => mkdtempSync(join(tmpdir(), 'cocofuzz-e2e-'));

const validRepro = {
  format: 'cocofuzz-repro/1',
  title: 't',
  config: { arch: 'snp', hostPolicy: 'kvm-iommu-4k', guestPolicy: 'linux' },
  seed: 's',
  ops: [
    { op: 'accept', gpa: '0x200000', size: '2M' },
    { op: 'tdi_accept', dev: 0 },
  ],
  expect: { verdict: 'violation', oracle: 'io-s2-rmp-size', step: 1 },
};

describe('fuzz, explain and replay', () => {
  it('finds the S2/RMP size mismatch of kvm-iommu-4k, saves a shrunk repro, explains and replays it', () => {
    const out = temp();
    const junit = join(out, 'report.xml');
    const fuzz = runCli(['fuzz', '--host-policy', 'kvm-iommu-4k', '--runs', '40', '--seed', 'e2e', '--workers', '1', '--out', out, '--junit', junit]);
    expect(fuzz.code).toBe(1);
    expect(fuzz.stdout).toContain('finding: io-s2-rmp-size');
    const xml = readFileSync(junit, 'utf8');
    expect(xml).toMatch(/<testsuite name="cocofuzz kvm-iommu-4k \+ linux \(seed e2e\)" tests="1" failures="1" errors="0" skipped="0" time="[\d.]+" timestamp="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d">/);
    expect(xml).toContain('<failure message="a trusted DMA by dev 0 (TDI in RUN) to ');
    const files = readdirSync(out).filter((f) => f.startsWith('io-s2-rmp-size-') && f.endsWith('.json'));
    expect(files).toHaveLength(1);
    const file = join(out, files[0]!);
    const repro = JSON.parse(readFileSync(file, 'utf8')) as { ops: unknown[]; expect: { oracle: string } };
    expect(repro.ops.length).toBeLessThanOrEqual(3);
    expect(repro.expect.oracle).toBe('io-s2-rmp-size');

    const explain = runCli(['explain', file]);
    expect(explain.code).toBe(0);
    expect(explain.stdout).toMatch(/S2\[4K\] -- \[4K\] --> RMP\[2M\]\s+==> FAIL/);
    expect(explain.stdout).toContain('ops that led there:');
    expect(explain.stdout).toContain('before -> after');

    const replay = runCli(['replay', '--check', file]);
    expect(replay.code).toBe(0);
    expect(replay.stdout).toContain('1 expectation(s) met, 0 not met');
  });

  it('gives identical --json output in two processes and with 1 or 2 workers, wall-clock fields aside', () => {
    const args = ['fuzz', '--host-policy', 'vfio-static', '--runs', '24', '--seed', 'determinism', '--json', '--steps', '32'];
    const one = runCli([...args, '--workers', '1']);
    const again = runCli([...args, '--workers', '1']);
    const two = runCli([...args, '--workers', '2']);
    expect(one.stdout).toContain('"type":"summary"');
    expect(one.stdout).toContain('"type":"finding"');
    expect(deterministic(again.stdout)).toBe(deterministic(one.stdout));
    expect(deterministic(two.stdout)).toBe(deterministic(one.stdout));
  });

  it('gives identical --json output for interleaved cases in two processes and with 1 or 2 workers, wall-clock fields aside', () => {
    const args = ['fuzz', '--host-policy', 'cut-on-convert', '--guest-policy', 'linux-2m-pool', '--runs', '40', '--seed', 'race-determinism-7', '--json', '--weights', 'during=90'];
    const one = runCli([...args, '--workers', '1']);
    const again = runCli([...args, '--workers', '1']);
    const two = runCli([...args, '--workers', '2']);
    expect(one.stdout).toContain('"type":"summary"');
    expect(one.stdout).toContain('interleaved after call');
    expect(deterministic(again.stdout)).toBe(deterministic(one.stdout));
    expect(deterministic(two.stdout)).toBe(deterministic(one.stdout));
  });

  it('runs a correct pairing clean and exits 0', () => {
    const result = runCli(['fuzz', '--host-policy', 'quiesce-dma', '--guest-policy', 'linux-2m-pool', '--runs', '30', '--seed', 'clean', '--workers', '1']);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('cases 30');
  });

  it('loads a user oracle and a user policy from TypeScript files', () => {
    const oracle = runCli(['fuzz', '--oracle', fileURLToPath(new URL('../examples/example-oracle.ts', import.meta.url)), '--only-oracle', 'no-psmash', '--runs', '60', '--seed', 'plugin', '--workers', '1', '--json']);
    expect(oracle.code).toBe(1);
    expect(oracle.stdout).toContain('"oracle":"no-psmash"');
    const policy = runCli(['fuzz', '--host-policy', fileURLToPath(new URL('../examples/example-host-policy.ts', import.meta.url)), '--guest-policy', 'linux-2m-pool', '--runs', '60', '--seed', 'readme', '--workers', '1']);
    expect(policy.code).toBe(1);
    expect(policy.stdout).toContain('finding: ');
  });

  it('lists oracles and policies', () => {
    const oracles = runCli(['oracles']);
    expect(oracles.code).toBe(0);
    for (const name of ['io-s2-rmp-size', 'npt-rmp-size', 'bounce-integrity', 'policy-error']) expect(oracles.stdout).toContain(name);
    const policies = runCli(['policies']);
    expect(policies.code).toBe(0);
    for (const name of ['kvm-4k', 'kvm-iommu-4k', 'vfio-static', 'cut-on-convert', 'linux', 'linux-2m-pool', 'double-validate']) expect(policies.stdout).toContain(name);
  });
});

describe('bad input exits 2 with one line naming the file and field', () => {
  const dir = temp();
  const write = (name: string, content: string): string => {
    const file = join(dir, name);
    writeFileSync(file, content);
    return file;
  };

  it.each([
    ['malformed JSON', () => write('broken.json', '{ "format": '), /broken\.json: not valid JSON/],
    ['an unknown op', () => write('unknown-op.json', JSON.stringify({ ...validRepro, ops: [{ op: 'teleport' }] })), /unknown-op\.json: ops\[0\]\.op: unknown op "teleport"/],
    ['a bad address', () => write('bad-address.json', JSON.stringify({ ...validRepro, ops: [{ op: 'accept', gpa: '0x20000g', size: '2M' }] })), /bad-address\.json: ops\[0\]\.gpa/],
    ['an unknown field', () => write('field.json', JSON.stringify({ ...validRepro, ops: [{ op: 'host_sync', when: 'now' }] })), /field\.json: ops\[0\]\.when: unknown field/],
    [
      'an interleaved op that is not a dma or touch',
      () => write('during-op.json', JSON.stringify({ ...validRepro, ops: [{ op: 'host_sync', during: [{ after: 1, op: { op: 'share', gpa: '0x0', pages: 1 } }] }] })),
      /during-op\.json: ops\[0\]\.during\[0\]\.op\.op: op "share" cannot be interleaved/,
    ],
    [
      'a negative during position',
      () => write('during-after.json', JSON.stringify({ ...validRepro, ops: [{ op: 'host_sync' }, { op: 'share', gpa: '0x0', pages: 1, during: [{ after: -1, op: { op: 'touch', gpa: '0x0', write: false } }] }] })),
      /during-after\.json: ops\[1\]\.during\[0\]\.after: expected a primitive-call count/,
    ],
  ])('replay of %s', (_what, make, message) => {
    const result = runCli(['replay', make()]);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('a missing policy file', () => {
    const result = runCli(['fuzz', '--host-policy', './no-such-policy.ts', '--runs', '1']);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('--host-policy: ./no-such-policy.ts: no such host policy file (relative to the working directory');
    // A policy named inside a --config file: the error says where the name came from.
    const fromConfig = runCli(['fuzz', '--config', '{"hostPolicy":"./no-such-policy.ts"}', '--runs', '1']);
    expect(fromConfig.code).toBe(2);
    expect(fromConfig.stderr).toContain('--config: config.hostPolicy: ./no-such-policy.ts: no such host policy file');
  });

  it('a plugin that throws at load', () => {
    const file = write('throws.ts', "throw new Error('boom at load');\nexport default {};\n");
    const result = runCli(['fuzz', '--oracle', file, '--runs', '1']);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/throws\.ts: the oracle failed to load: boom at load/);
  });

  it('an oracle without a check function', () => {
    const file = write('shape.ts', "export default { name: 'x', description: 'y', severity: 'security' };\n");
    const result = runCli(['fuzz', '--oracle', file, '--runs', '1']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/shape\.ts: the default export needs "check"/);
  });

  it('an unknown built-in policy name', () => {
    const result = runCli(['fuzz', '--host-policy', 'kvm-2m', '--runs', '1']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown host policy "kvm-2m"');
  });
});

describe('interrupting a campaign', () => {
  it('SIGINT finishes the cases in flight and leaves only complete repro files', async () => {
    const out = temp();
    const child = spawn(process.execPath, [...CLI, 'fuzz', '--host-policy', 'vfio-static', '--time', '60s', '--seed', 'sigint', '--workers', '2', '--out', out], {
      env: cliEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    // Wait for the first finding, then interrupt.
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (stdout.includes('finding:')) {
          clearInterval(poll);
          resolve();
        }
      }, 100);
    });
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    // Repro files and the campaign log, nothing half-written (no temp files left).
    const files = readdirSync(out);
    expect(files.filter((f) => f.endsWith('.json')).length).toBeGreaterThan(0);
    expect(files.every((f) => f.endsWith('.json') || f === 'campaign.jsonl')).toBe(true);
    for (const file of files.filter((f) => f.endsWith('.json'))) expect(() => JSON.parse(readFileSync(join(out, file), 'utf8')) as unknown).not.toThrow();
    const log = readFileSync(join(out, 'campaign.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { type: string; stoppedBy?: string });
    expect(log.at(-1)).toMatchObject({ type: 'summary', stoppedBy: 'interrupt' });
  }, 90_000);
});
