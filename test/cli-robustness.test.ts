// Issue 14 item by item, through the real binary: repro files are data, nothing found is lost on
// the way out, and a plugin can cost a case but never the campaign. (The bad-input table in
// cli-bad-input.test.ts covers the items that are about one bad flag, config or file.)

import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, cliEnv, runCli, runCliAsync } from './helpers/cli.ts';


const temp = (): string => mkdtempSync(join(tmpdir(), 'cocofuzz-robust-'));
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f]/;

/** A plugin file in `dir`; plain JavaScript, so it loads from anywhere without the package. */
function plugin(dir: string, name: string, body: string): string {
  const file = join(dir, name);
  writeFileSync(file, body);
  return file;
}

/** An oracle that throws at every check: what the oracle-error tests run. */
const THROWER = "export default { name: 'thrower', description: 'd', severity: 'correctness', check() { throw new Error('oracle boom'); } };\n";

/** `fuzz` in `dir` with THROWER as its oracle (seed t, one worker, findings to dir/out), and `args`. */
function throwingCampaign(dir: string, args: string[]): { thrower: string; out: string; result: ReturnType<typeof runCli> } {
  const thrower = plugin(dir, 'thrower.mjs', THROWER);
  const out = join(dir, 'out');
  return { thrower, out, result: runCli(['fuzz', '--oracle', thrower, '--seed', 't', '--workers', '1', '--out', out, ...args]) };
}

/** KVM's defaults through a file: enough to find io-s2-rmp-size, and it makes the campaign load a plugin. */
const PLAIN_HOST = "export default { name: 'plain-kvm', description: 'KVM defaults, from a file' };\n";
const HANGS_ON_SPLIT = "export default { name: 'hangs', description: 'loops in split', split() { for (;;) {} } };\n";

const jsonLines = (stdout: string): Record<string, unknown>[] =>
  stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe('item 1: a repro file loads plugins only from its own directory tree', () => {
  it('replay --check and explain refuse a policy from outside and never import it; the flag names it instead', () => {
    const dir = temp();
    mkdirSync(join(dir, 'elsewhere'));
    mkdirSync(join(dir, 'corpus'));
    plugin(join(dir, 'elsewhere'), 'evil.mjs', "import { writeFileSync } from 'node:fs';\nwriteFileSync(new URL('./PWNED', import.meta.url), 'x');\nexport default { name: 'evil', description: 'e' };\n");
    const repro = { format: 'cocofuzz-repro/1', title: 't', config: { arch: 'snp', hostPolicy: '../elsewhere/evil.mjs' }, seed: 's', ops: [{ op: 'host_sync' }], expect: { verdict: 'clean' } };
    writeFileSync(join(dir, 'corpus', 'r.json'), JSON.stringify(repro));
    for (const args of [['replay', '--check', join(dir, 'corpus')], ['explain', join(dir, 'corpus', 'r.json')]]) {
      const result = runCli(args);
      expect(result.code).toBe(2);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toContain('config.hostPolicy');
      expect(result.stderr).toContain('pass --host-policy FILE');
    }
    expect(existsSync(join(dir, 'elsewhere', 'PWNED'))).toBe(false);
    // Named on the command line, the user's choice runs (a benign policy here).
    const benign = plugin(dir, 'benign.mjs', PLAIN_HOST);
    const flagged = runCli(['replay', '--check', join(dir, 'corpus'), '--host-policy', benign]);
    expect(flagged.code).toBe(0);
    expect(flagged.stdout).toContain('1 expectation(s) met');
  });

  it('findings name their policy relative to the repro file, so a copied findings directory replays', () => {
    const dir = temp();
    const out = join(dir, 'found');
    mkdirSync(join(out, 'policies'), { recursive: true });
    const policy = plugin(join(out, 'policies'), 'plain.mjs', PLAIN_HOST);
    const fuzz = runCli(['fuzz', '--host-policy', policy, '--runs', '40', '--seed', 'e2e', '--workers', '1', '--out', out], { cwd: dir });
    expect(fuzz.code).toBe(1);
    const file = readdirSync(out).find((f) => f.endsWith('.json'));
    expect(file).toBeDefined();
    const written = JSON.parse(readFileSync(join(out, file!), 'utf8')) as { config: { hostPolicy: string } };
    expect(written.config.hostPolicy).toBe('./policies/plain.mjs');
    const copy = join(temp(), 'elsewhere');
    cpSync(out, copy, { recursive: true });
    const replay = runCli(['replay', '--check', copy]);
    expect(replay.stderr).toBe('');
    expect(replay.code).toBe(0);
  });
});

describe('item 2: user-controlled text is escaped on the terminal and in reports', () => {
  it('an oracle message with escape sequences and markup reaches neither the terminal nor the XML raw', () => {
    const dir = temp();
    const oracle = plugin(
      dir,
      'loud.mjs',
      "export default { name: 'loud', description: 'd', severity: 'security', check(_v, step) { return step.index === 0 ? [{ message: 'FAIL (x) \\u001b]0;pwned\\u0007\\u001b[2J <b>&</b> \\u0000' }] : []; } };\n",
    );
    const junit = join(dir, 'report.xml');
    const result = runCli(['fuzz', '--oracle', oracle, '--only-oracle', 'loud', '--runs', '2', '--seed', 'esc', '--junit', junit, '--out', join(dir, 'out')]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('\\x1b]0;pwned\\x07');
    expect(result.stdout + result.stderr).not.toMatch(CONTROL);
    const xml = readFileSync(junit, 'utf8');
    // eslint-disable-next-line no-control-regex
    expect(xml).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/);
    expect(xml).toContain('&lt;b&gt;&amp;&lt;/b&gt;');
  });
});

describe('items 10 and 11: a finding is never lost on the way out', () => {
  it('a repro that cannot be written is still printed, with the repro on stdout, and the exit code stays 1', () => {
    const dir = temp();
    const first = join(dir, 'first');
    const args = ['fuzz', '--host-policy', 'kvm-iommu-4k', '--runs', '40', '--seed', 'e2e', '--workers', '1'];
    expect(runCli([...args, '--out', first]).code).toBe(1);
    const name = readdirSync(first).find((f) => f.endsWith('.json'))!;
    // The same campaign again, with a directory squatting on the finding's file name: the write fails.
    const second = join(dir, 'second');
    mkdirSync(join(second, name), { recursive: true });
    const result = runCli([...args, '--out', second]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('finding: io-s2-rmp-size');
    expect(result.stdout).toContain('could not save the repro');
    expect(result.stdout).toContain('"format": "cocofuzz-repro/1"');
    expect(result.stderr).not.toContain('internal error');
  });

  it("a findings directory is data: a campaign.jsonl link is replaced, not written through; a file squatting on a bucket's name is not taken for its repro", () => {
    const dir = temp();
    const args = ['fuzz', '--host-policy', 'kvm-iommu-4k', '--runs', '40', '--seed', 'e2e', '--workers', '1'];
    const first = join(dir, 'first');
    expect(runCli([...args, '--out', first]).code).toBe(1);
    const name = readdirSync(first).find((f) => f.endsWith('.json'))!;
    const out = join(dir, 'out');
    mkdirSync(out);
    writeFileSync(join(dir, 'victim.txt'), 'precious');
    symlinkSync('../victim.txt', join(out, 'campaign.jsonl'));
    writeFileSync(join(out, name), 'garbage');
    const result = runCli([...args, '--out', out]);
    expect(result.code).toBe(1);
    expect(readFileSync(join(dir, 'victim.txt'), 'utf8')).toBe('precious');
    expect(lstatSync(join(out, 'campaign.jsonl')).isFile()).toBe(true);
    // The squatter stays, and the new repro is printed instead of being said to be "already" there.
    expect(readFileSync(join(out, name), 'utf8')).toBe('garbage');
    expect(result.stdout).not.toContain('already in');
    expect(result.stdout).toContain("is not this bucket's repro: not written over");
    expect(result.stdout).toContain('"format": "cocofuzz-repro/1"');
    // A repro of another case (a clean one) under the name is no more this bucket's repro.
    const other = join(dir, 'other');
    mkdirSync(other);
    cpSync(join(process.cwd(), 'corpus', 'clean-kvm-4k-linux.json'), join(other, name));
    const otherRun = runCli([...args, '--out', other]);
    expect(otherRun.stdout).not.toContain('already in');
    expect(otherRun.stdout).toContain("is not this bucket's repro: not written over");
    // Nor is a FIFO: left alone, the repro printed.
    const fifo = join(dir, 'fifo');
    mkdirSync(fifo);
    if (spawnSync('mkfifo', [join(fifo, name)]).status === 0) {
      expect(runCli([...args, '--out', fifo]).stdout).toContain("is not this bucket's repro: not written over");
      expect(lstatSync(join(fifo, name)).isFIFO()).toBe(true);
    }
    // A link that loops is replaced, as a dangling one is.
    const looping = join(dir, 'looping');
    mkdirSync(looping);
    symlinkSync(name, join(looping, name));
    expect(runCli([...args, '--out', looping]).stdout).toContain(`saved to ${join(looping, name)}`);
    expect(lstatSync(join(looping, name)).isFile()).toBe(true);
    // A triaged copy linked in from elsewhere is kept, the link as it was.
    const linked = join(dir, 'linked');
    mkdirSync(linked);
    cpSync(join(first, name), join(dir, 'triaged.json'));
    symlinkSync('../triaged.json', join(linked, name));
    expect(runCli([...args, '--out', linked]).stdout).toContain(`already in ${join(linked, name)}`);
    expect(lstatSync(join(linked, name)).isSymbolicLink()).toBe(true);
  });

  it('a FIFO named *.json in a corpus is bad input (exit 2), not a hang', () => {
    const dir = temp();
    cpSync(join(process.cwd(), 'corpus', 'clean-kvm-4k-linux.json'), join(dir, 'a.json'));
    if (spawnSync('mkfifo', [join(dir, 'b.json')]).status !== 0) return;
    const replayed = runCli(['replay', dir]);
    expect(replayed.code).toBe(2);
    expect(replayed.stderr).toContain('b.json: cannot read: not a regular file');
    const fuzzed = runCli(['fuzz', '--corpus', dir, '--runs', '2', '--out', join(dir, 'out')]);
    expect(fuzzed.code).toBe(2);
    expect(fuzzed.stderr).toContain('b.json: cannot read: not a regular file');
    // A findings directory whose campaign.jsonl is a FIFO: report reads no such thing.
    const found = join(temp(), 'found');
    mkdirSync(found);
    cpSync(join(process.cwd(), 'corpus', 'double-validate.json'), join(found, 'a.json'));
    spawnSync('mkfifo', [join(found, 'campaign.jsonl')]);
    const reported = runCli(['report', found, '--out', join(found, 'r.html')]);
    expect(reported.code).toBe(2);
    expect(reported.stderr).toContain('campaign.jsonl: cannot read: not a regular file');
  });

  const isRoot = process.getuid?.() === 0 && spawnSync('mount', ['--version']).status === 0;
  it.runIf(isRoot)('disk full: the first finding is printed with its repro and the exit code is 1 (a full 4K tmpfs, root only)', () => {
    const dir = temp();
    const mount = join(dir, 'small');
    mkdirSync(mount);
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4k', 'tmpfs', mount]).status !== 0) return;
    try {
      // Fill it up, so the first repro write hits ENOSPC.
      spawnSync('dd', ['if=/dev/zero', `of=${join(mount, 'fill')}`, 'bs=1k', 'count=64']);
      const result = runCli(['fuzz', '--host-policy', 'kvm-iommu-4k', '--runs', '40', '--seed', 'e2e', '--workers', '1', '--out', mount]);
      expect(result.code).toBe(1);
      expect(result.stdout).toContain('finding: io-s2-rmp-size');
      expect(result.stdout).toMatch(/could not save the repro \(ENOSPC/);
    } finally {
      spawnSync('umount', [mount]);
    }
  });
});

describe('item 4: cost follows what a case touches, not the configured sizes', () => {
  it('a 1T guest with a 1G swiotlb pool runs its cases in a 160 MB heap', async () => {
    const result = await runCliAsync(['fuzz', '--runs', '2', '--seed', 'big', '--workers', '1', '--json', '--config', '{"guestMemory":"1T","swiotlb":"1G"}'], {
      nodeArgs: ['--max-old-space-size=160'],
    });
    expect([0, 1]).toContain(result.code);
    expect(jsonLines(result.stdout).find((l) => l.type === 'summary')).toMatchObject({ cases: 2 });
  });
});

describe('item 12: corpus merge never overwrites a different repro', () => {
  it('two shards with the same file name and different findings both survive the merge', () => {
    const dir = temp();
    const make = (shard: string, ops: unknown[], expect: unknown): void => {
      mkdirSync(join(dir, shard), { recursive: true });
      writeFileSync(join(dir, shard, 'finding.json'), JSON.stringify({ format: 'cocofuzz-repro/1', title: shard, config: { arch: 'snp' }, seed: shard, ops, expect }));
    };
    make('a', [{ op: 'accept', gpa: '0x200000', size: '2M' }, { op: 'tdi_accept', dev: 0 }], { verdict: 'violation', oracle: 'io-s2-rmp-size' });
    make('b', [{ op: 'host_sync' }], { verdict: 'clean' });
    const out = join(dir, 'merged');
    const result = runCli(['corpus', 'merge', join(dir, 'a'), join(dir, 'b'), '--out', out]);
    expect(result.code).toBe(0);
    const files = readdirSync(out).sort();
    expect(files).toHaveLength(2);
    const titles = files.map((f) => (JSON.parse(readFileSync(join(out, f), 'utf8')) as { title: string }).title).sort();
    expect(titles).toEqual(['a', 'b']);
    // Merging again adds nothing: the same content is already there.
    expect(runCli(['corpus', 'merge', join(dir, 'a'), join(dir, 'b'), '--out', out]).code).toBe(0);
    expect(readdirSync(out)).toHaveLength(2);
  });
});

describe('item 13: SIGTERM is treated like SIGINT', () => {
  it('finishes the cases in flight, prints the summary, writes the JUnit file and exits with the verdict', async () => {
    const dir = temp();
    const junit = join(dir, 'report.xml');
    const child = spawn(process.execPath, [...CLI, 'fuzz', '--host-policy', 'kvm-iommu-4k', '--time', '5m', '--seed', 'term', '--workers', '1', '--junit', junit], {
      cwd: dir,
      env: cliEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => {
      let sent = false;
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        // Wait for the first finding, then stop the campaign as a CI timeout would.
        if (!sent && stdout.includes('finding:')) {
          sent = true;
          child.kill('SIGTERM');
        }
      });
      child.stdout.on('data', () => {
        if (!sent && stdout.includes('finding:')) {
          sent = true;
          child.kill('SIGTERM');
        }
      });
      child.on('close', resolve);
    });
    expect(code).toBe(1);
    expect(stderr).toContain('terminated, finishing the cases in flight');
    expect(stderr).toMatch(/cases \d+ \|/);
    expect(readFileSync(junit, 'utf8')).toContain('<testsuites');
  });
});

describe('items 14-16: a plugin can cost a case, never the campaign', () => {
  it('item 14: a hook that never returns is stopped by --case-timeout, reported as a non-deterministic policy-error with a repro, and the campaign goes on', async () => {
    const dir = temp();
    const policy = plugin(dir, 'hangs.mjs', HANGS_ON_SPLIT);
    const out = join(dir, 'out');
    const result = await runCliAsync(['fuzz', '--host-policy', policy, '--runs', '4', '--seed', 'hang', '--workers', '1', '--case-timeout', '5s', '--weights', 'host_split=40', '--json', '--out', out]);
    expect(result.code).toBe(1);
    const lines = jsonLines(result.stdout);
    const finding = lines.find((l) => l.type === 'finding' && l.oracle === 'policy-error');
    expect(finding).toMatchObject({ nondeterministic: true });
    expect(String(finding?.message)).toMatch(/no result after 5s of wall clock/);
    expect(lines.find((l) => l.type === 'summary')).toMatchObject({ cases: 4 });
    const repro = JSON.parse(readFileSync(String(finding?.file), 'utf8')) as { ops: { op: string }[]; title: string };
    // The repro ends with the op that hung (a host_split, the hook that loops).
    expect(repro.ops.at(-1)?.op).toBe('host_split');
    // Every case hangs for 5 s, and the shrink re-runs candidates under the watchdog (at most
    // three case timeouts): generous, the machine may be loaded.
  }, 180_000);

  it('item 14: an oracle that never returns is that oracle\'s error, reported once, not a policy-error', async () => {
    const dir = temp();
    const oracle = plugin(dir, 'hang-oracle.mjs', "export default { name: 'hang-oracle', description: 'd', severity: 'security', check(_v, step) { if (step.index === 2) for (;;) {} return []; } };\n");
    const result = await runCliAsync(['fuzz', '--oracle', oracle, '--only-oracle', 'hang-oracle', '--runs', '2', '--seed', 'o', '--workers', '1', '--case-timeout', '5s']);
    expect(result.code).toBe(2);
    expect(result.stderr.match(/oracle error/g)).toHaveLength(1);
    expect(result.stderr).toMatch(/oracle error: hang-oracle threw at step 2 of case 0: stopped by the watchdog inside the oracle/);
    expect(result.stdout).not.toContain('finding:');
  });

  it('item 14: Ctrl-C stops a campaign whose plugin hangs, on one worker, and the summary is printed', async () => {
    const dir = temp();
    const policy = plugin(dir, 'hangs.mjs', HANGS_ON_SPLIT);
    const child = spawn(process.execPath, [...CLI, 'fuzz', '--host-policy', policy, '--runs', '50', '--seed', 'hang', '--workers', '1', '--weights', 'host_split=40'], {
      cwd: dir,
      env: cliEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // The first case that splits hangs (the default case timeout is a minute): once the campaign
    // runs (its banner is out and the worker has had time to start), interrupt it.
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (!stderr.includes('worker(s)')) return;
        clearInterval(check);
        setTimeout(resolve, 4000);
      }, 100);
    });
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    expect(stderr).toContain('interrupted, finishing the cases in flight');
    expect(stderr).toMatch(/cases \d+ \| .*\nefficiency/);
    expect(stdout).not.toContain('finding:');
  });

  it('item 15: process.exit(), a rejected async hook and a throwing timer are policy-error findings, and every case still runs', async () => {
    const dir = temp();
    const plugins = {
      exit: plugin(dir, 'exit.mjs', "export default { name: 'exits', description: 'd', split() { process.exit(0); } };\n"),
      reject: plugin(dir, 'reject.mjs', "export default { name: 'rejects', description: 'd', async split() { throw new Error('async boom'); } };\n"),
      timer: plugin(dir, 'timer.mjs', "export default { name: 'timer', description: 'd', split(ctx, r) { setTimeout(() => { throw new Error('timer boom'); }, 0); ctx.kvm.defaultSplit(r); } };\n"),
    };
    const runs = await Promise.all(
      Object.values(plugins).map((file) =>
        runCliAsync(['fuzz', '--host-policy', file, '--runs', '6', '--seed', 'exit', '--workers', '2', '--weights', 'host_split=40', '--json', '--only-oracle', 'policy-error']),
      ),
    );
    const expected = [/process\.exit\(0\)/, /async boom/, /timer boom/];
    runs.forEach((result, index) => {
      expect(result.code).toBe(1);
      expect(result.stderr).not.toMatch(/\n\s+at /);
      const lines = jsonLines(result.stdout);
      expect(lines.find((l) => l.type === 'summary')).toMatchObject({ cases: 6 });
      expect(lines.filter((l) => l.type === 'finding').map((l) => String(l.message))).toContainEqual(expect.stringMatching(expected[index]!));
    });
  });

  it('replay, explain and corpus check run plugins in-process: a hook that calls process.exit(0) is a policy-error there too, never a silent exit 0', () => {
    const dir = temp();
    const policy = plugin(dir, 'exit.mjs', "export default { name: 'exits', description: 'd', flush() { process.exit(0); } };\n");
    const repro = join(dir, 'r.json');
    writeFileSync(repro, JSON.stringify({ format: 'cocofuzz-repro/1', config: { arch: 'snp', hostPolicy: 'exits' }, seed: 's', ops: [{ op: 'host_sync' }], expect: { verdict: 'clean' } }));
    const replayed = runCli(['replay', '--check', repro, '--host-policy', policy]);
    expect(replayed.code).toBe(1);
    expect(replayed.stdout).toContain('the plugin called process.exit(0)');
    const explained = runCli(['explain', repro, '--host-policy', policy]);
    expect(explained.stdout).toContain('the plugin called process.exit(0)');
    expect(runCli(['corpus', 'check', dir, '--host-policy', policy]).code).toBe(1);
    // cocofuzz's own exits (help, version) are not plugins'.
    expect(runCli(['--version']).code).toBe(0);
    expect(runCli(['replay', '--help']).code).toBe(0);
  });

  it("a reader that stops reading (| head) ends cocofuzz quietly with SIGPIPE's code, blaming no plugin", () => {
    // 350 KB of trace: far more than a pipe holds, so the writes meet the closed pipe.
    const command = [process.execPath, ...CLI, 'replay', '--trace', join(process.cwd(), 'corpus')].map((part) => `'${part}'`).join(' ');
    const result = spawnSync('bash', ['-c', `${command} | head -1; exit \${PIPESTATUS[0]}`], { encoding: 'utf8', env: cliEnv() });
    expect(result.stdout.split('\n').filter(Boolean)).toHaveLength(1);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(141);
  });

  it('an oracle that throws fails replay (exit 2), replay --check (unmet, exit 1) and fuzz --case (exit 2): it checked nothing after', () => {
    const dir = temp();
    const thrower = plugin(dir, 'thrower.mjs', THROWER);
    const clean = join(dir, 'clean.json');
    cpSync(join(process.cwd(), 'corpus', 'clean-kvm-4k-linux.json'), clean);
    const replayed = runCli(['replay', clean, '--oracle', thrower]);
    expect(replayed.code).toBe(2);
    expect(replayed.stderr).toContain('oracle error: thrower threw at step 0: oracle boom');
    const checked = runCli(['replay', '--check', clean, '--oracle', thrower]);
    expect(checked.code).toBe(1);
    expect(checked.stdout).toContain('oracle thrower threw at step 0: the expectation was not checked');
    expect(runCli(['fuzz', '--seed', 's', '--case', '0', '--oracle', thrower]).code).toBe(2);
    // Nothing says "clean" of a case an oracle stopped checking.
    expect(replayed.stdout).toContain('not checked to the end: oracle thrower threw at step 0');
    expect(replayed.stdout).not.toMatch(/: clean$/m);
    const explained = runCli(['explain', clean, '--oracle', thrower]);
    expect(explained.code).toBe(2);
    expect(explained.stdout).toContain('verdict: not checked to the end (an oracle threw)');
    expect(explained.stdout).toContain('oracle error: thrower threw at step 0, and checked nothing after it: oracle boom');
  });

  it("replay --trace shows what the end-of-case sweep finds after the last step, in text and in the --json result line", () => {
    const dir = temp();
    // An oracle whose step checks find nothing and whose end-of-case sweep finds one thing.
    const sweeper = plugin(dir, 'sweeper.mjs', "export default { name: 'sweeper', description: 'd', severity: 'correctness', check() { return []; }, final() { return [{ message: 'found by the sweep' }]; } };\n");
    const clean = join(dir, 'clean.json');
    cpSync(join(process.cwd(), 'corpus', 'clean-kvm-4k-linux.json'), clean);
    const text = runCli(['replay', '--trace', clean, '--oracle', sweeper]);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/VIOLATION sweeper \(end of case\): found by the sweep/);
    const json = runCli(['replay', '--trace', '--json', clean, '--oracle', sweeper]);
    const result = json.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>).find((line) => line.type === 'result');
    expect(result?.endOfCase).toEqual([{ oracle: 'sweeper', message: 'found by the sweep' }]);
    // Without --trace nothing changes: the verdict line names it, as before.
    expect(runCli(['replay', clean, '--oracle', sweeper]).stdout).toContain('sweeper at step');
    // A policy-error ends the case inside its op, which has no step line: the result line carries it, never as an end-of-case finding.
    const thrower = plugin(dir, 'throws.mjs', "export default { name: 'throws', description: 'd', flush() { throw new Error('flush boom'); } };\n");
    const syncs = join(dir, 'syncs.json');
    writeFileSync(syncs, JSON.stringify({ format: 'cocofuzz-repro/1', title: 't', config: { arch: 'snp' }, seed: 's', ops: [{ op: 'host_sync' }, { op: 'host_sync' }] }));
    expect(runCli(['replay', '--trace', syncs, '--host-policy', thrower]).stdout).toContain('VIOLATION policy-error (in step 0, which did not complete): policy throws: in hook host flush: flush boom');
    const thrown = runCli(['replay', '--trace', '--json', syncs, '--host-policy', thrower]).stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
    const thrownResult = thrown.find((line) => line.type === 'result');
    expect(thrownResult).not.toHaveProperty('endOfCase');
    expect(thrownResult?.policyError).toEqual({ step: 0, message: 'policy throws: in hook host flush: flush boom' });
  });

  it('replay --trace of a file of no ops still shows its violation (the boot\'s)', () => {
    const dir = temp();
    const file = join(dir, 'boot.json');
    const repro = JSON.parse(readFileSync(join(process.cwd(), 'corpus', 'vfio-static-stale.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...repro, ops: [], expect: undefined }));
    const result = runCli(['replay', '--trace', file]);
    expect(result.stdout).toMatch(/VIOLATION npt-iommu-coherence \(after boot, no op\): shared gpa 0x100000/);
    // explain and the HTML report draw its region as booted: there is no step to photograph.
    expect(runCli(['explain', file]).stdout).toContain('2M region around 0x0, as booted:');
    expect(runCli(['report', dir]).code).toBe(0);
    const page = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(page).not.toContain('No 2M region to draw');
    expect(page).toContain('<h4>2M region 0x0');
  });

  it('explain with another policy than the file names says which ran, and warns that during positions count the file\'s calls', () => {
    const file = join(process.cwd(), 'corpus', 'race-split-then-smash-cut-first.json');
    const result = runCli(['explain', file, '--host-policy', 'kvm-iommu-4k']);
    expect(result.stdout).toContain('config: host kvm-iommu-4k (given on the command line; the file names split-then-smash), guest ');
    expect(result.stderr).toContain('warning: explaining with host policy kvm-iommu-4k, not the file\'s split-then-smash: "during" positions count the calls of the file\'s policies');
    // Without an override: the file's policy, no warning; a policy the file names by path too.
    const own = runCli(['explain', file]);
    expect(own.stdout).toContain('config: host split-then-smash, guest ');
    expect(own.stderr).toBe('');
    const byPath = runCli(['explain', join(process.cwd(), 'corpus', 'dma-after-free-unpin-before-flush.json')]);
    expect(byPath.stdout).toContain('config: host ./policies/broken-unpin-before-flush.ts, guest linux');
    expect(byPath.stdout).not.toContain('given on the command line');
    // A negated boolean is a known flag: the missing file is what is wrong.
    const negated = runCli(['replay', '--no-check']);
    expect(negated.code).toBe(2);
    expect(negated.stderr).toContain('Not enough non-option arguments');
  });

  it('report --host-policy names the policy that ran in its explain text; a file naming an oracle out of its tree is refused before anything is written', () => {
    const dir = temp();
    const found = join(dir, 'found');
    mkdirSync(found);
    cpSync(join(process.cwd(), 'corpus', 'race-split-then-smash-cut-first.json'), join(found, 'race.json'));
    expect(runCli(['report', found, '--host-policy', 'kvm-iommu-4k']).code).toBe(0);
    expect(readFileSync(join(found, 'report.html'), 'utf8')).toContain('config: host kvm-iommu-4k (given on the command line; the file names split-then-smash)');
    // Beside it, files whose oracle lies outside their tree: each counted and named like a bad
    // policy, before any file is run (the report used to stop at the first, while rendering).
    const repro = JSON.parse(readFileSync(join(found, 'race.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(found, 'evil-1.json'), JSON.stringify({ ...repro, oracles: ['../elsewhere/evil.mjs'] }));
    writeFileSync(join(found, 'evil-2.json'), JSON.stringify({ ...repro, oracles: ['../elsewhere/evil.mjs'] }));
    const refused = runCli(['report', found, '--out', join(dir, 'second.html')]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/evil-1\.json.*oracles\[0\]/);
    expect(refused.stderr).toMatch(/evil-2\.json.*oracles\[0\]/);
    expect(existsSync(join(dir, 'second.html'))).toBe(false);
  });

  it("an oracle that throws is an error in JUnit, SARIF, fuzz --html and report: a CI dashboard must not show the campaign green", () => {
    const dir = temp();
    const [junit, sarif, html] = ['r.xml', 'r.sarif', 'r.html'].map((name) => join(dir, name)) as [string, string, string];
    const { thrower, out, result } = throwingCampaign(dir, ['--host-policy', 'kvm-4k', '--runs', '5', '--junit', junit, '--sarif', sarif, '--html', html]);
    expect(result.code).toBe(2);
    const xml = readFileSync(junit, 'utf8');
    expect(xml).toContain('errors="1"');
    expect(xml).toContain('<error message="thrower threw at step 0 of case 0: oracle boom" type="oracle-error">');
    expect(xml).not.toContain('no findings');
    const log = JSON.parse(readFileSync(sarif, 'utf8')) as { runs: { invocations: { executionSuccessful: boolean; toolExecutionNotifications?: { message: { text: string } }[] }[] }[] };
    const invocation = log.runs[0]!.invocations[0]!;
    expect(invocation.executionSuccessful).toBe(false);
    expect(invocation.toolExecutionNotifications?.[0]?.message.text).toContain('oracle thrower threw at step 0 of case 0: oracle boom');
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('<h2>Oracle errors</h2>');
    expect(page).not.toContain('<p>No findings.</p>');
    // report DIR over the same directory: the saved repro is an oracle error, not "clean".
    const reported = runCli(['report', out, '--oracle', thrower, '--out', join(dir, 'report.html')]);
    expect(reported.code).toBe(0);
    const report = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(report).toContain('<h2>Oracle errors</h2>');
    expect(report).toContain('thrower threw at step 0, and checked nothing after it');
    expect(report).not.toContain('no oracle fires on this repro any more');
  });

  it('a worker that cannot start after another died ends the campaign with an error naming the plugin: never a hang, never an abort', async () => {
    // The first VM to start ends its worker (a case queued behind it must run again elsewhere);
    // from then on the plugin refuses to load, so no fresh worker can start. Before the fix a
    // guided campaign could wait forever for the lost case's round, and a load error inside a
    // worker aborted the whole process (Node's exit path met the process.exit override).
    const dir = temp();
    const policy = plugin(
      dir,
      'dies-once.mjs',
      `import { existsSync, openSync } from 'node:fs';
const marker = new URL('./marker', import.meta.url);
if (existsSync(marker)) throw new Error('this plugin cannot load again after its first VM died');
export default { name: 'dies-once', description: 'd', start() { try { openSync(marker, 'wx'); } catch { return; } process.reallyExit(3); } };
`,
    );
    const result = await runCliAsync(['fuzz', '--host-policy', policy, '--runs', '40', '--seed', 'dies', '--workers', '2', '--corpus', join(dir, 'corpus'), '--out', join(dir, 'out')]);
    expect(result.code).toBe(3);
    expect(result.stderr).not.toMatch(/FATAL ERROR|Native stack|\n\s+at /);
    expect(result.stderr.trim().split('\n').at(-1)).toMatch(/dies-once\.mjs: the host policy failed to load: this plugin cannot load again/);
  });

  it('item 16: unbounded allocation in a hook hits the worker heap limit and is a policy-error', async () => {
    const dir = temp();
    const policy = plugin(dir, 'hog.mjs', "const keep = []; export default { name: 'hog', description: 'd', split() { for (;;) keep.push(new Array(1e6).fill(1)); } };\n");
    const result = await runCliAsync(['fuzz', '--host-policy', policy, '--runs', '2', '--seed', 'hog', '--workers', '1', '--weights', 'host_split=40', '--json']);
    expect(result.code).toBe(1);
    const finding = jsonLines(result.stdout).find((l) => l.type === 'finding');
    expect(String(finding?.message)).toMatch(/out of memory \(heap limit \d+ MB\)/);
    expect(jsonLines(result.stdout).find((l) => l.type === 'summary')).toMatchObject({ cases: 2 });
  });
});

describe('item 17: garbage from oracles is an oracle error, never an exit 3', () => {
  it('a function or a null-prototype object in details, with two workers', async () => {
    const dir = temp();
    const fn = plugin(dir, 'fn.mjs', "export default { name: 'fn-details', description: 'd', severity: 'security', check() { return [{ message: 'x', details: { f: () => 1 } }]; } };\n");
    const nullProto = plugin(
      dir,
      'null.mjs',
      "export default { name: 'null-sizes', description: 'd', severity: 'security', check(_v, step) { const sizes = Object.create(null); sizes.rmp = '2M'; return step.index === 2 ? [{ message: 'FAIL (x)', details: { sizes } }] : []; } };\n",
    );
    const [first, second] = await Promise.all([
      runCliAsync(['fuzz', '--oracle', fn, '--only-oracle', 'fn-details', '--runs', '4', '--seed', 'g', '--workers', '2']),
      runCliAsync(['fuzz', '--oracle', nullProto, '--only-oracle', 'null-sizes', '--runs', '4', '--seed', 'g', '--workers', '2']),
    ]);
    expect(first.code).toBe(2);
    expect(first.stderr).toMatch(/oracle error: fn-details threw at step 0 of case 0: finding 0: details\.f is a function/);
    expect(second.code).toBe(1);
    expect(second.stdout).toContain('finding: null-sizes');
  });
});

describe('items 18 and 19: user oracles in repros, and oracle errors once', () => {
  it('item 18: a finding of a user oracle records the oracle file, so replay --check needs no --oracle', () => {
    const dir = temp();
    const out = join(dir, 'out');
    mkdirSync(out);
    const oracle = plugin(
      out,
      'no-psmash.mjs',
      "export default { name: 'no-psmash', description: 'd', severity: 'correctness', check(_v, step) { return step.calls.filter((c) => c.prim === 'psmash' && c.result === 0).map(() => ({ message: 'FAIL (psmash)' })); } };\n",
    );
    const fuzz = runCli(['fuzz', '--oracle', oracle, '--only-oracle', 'no-psmash', '--runs', '30', '--seed', 'q', '--workers', '1', '--out', out]);
    expect(fuzz.code).toBe(1);
    const file = readdirSync(out).find((f) => f.startsWith('no-psmash-'))!;
    expect((JSON.parse(readFileSync(join(out, file), 'utf8')) as { oracles: string[] }).oracles).toEqual(['./no-psmash.mjs']);
    const replay = runCli(['replay', '--check', join(out, file)]);
    expect(replay.code).toBe(0);
    expect(replay.stdout).toContain('1 expectation(s) met');
  });

  it('item 19: an oracle that throws is reported once per campaign, with a repro of the first case', () => {
    const { out, result } = throwingCampaign(temp(), ['--runs', '8', '--only-oracle', 'thrower']);
    expect(result.code).toBe(2);
    expect(result.stderr.match(/oracle error/g)).toHaveLength(1);
    expect(result.stderr).toContain('thrower threw at step 0 of case 0: oracle boom');
    expect(existsSync(join(out, 'oracle-error-thrower.json'))).toBe(true);
  });
});
