import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.ts';

describe('cocofuzz CLI', () => {
  it('prints help listing every subcommand and exits 0', () => {
    const { code, stdout } = runCli(['--help']);
    expect(code).toBe(0);
    for (const command of ['fuzz', 'replay', 'minimize', 'explain', 'corpus', 'oracles', 'policies']) {
      expect(stdout).toContain(`cocofuzz ${command}`);
    }
  });

  it('prints the package version', () => {
    const { code, stdout } = runCli(['--version']);
    expect(code).toBe(0);
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('rejects an unknown command with exit 2 and one line', () => {
    const { code, stderr } = runCli(['bogus']);
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toContain('bogus');
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  it('rejects a non-numeric --runs with exit 2 naming the flag', () => {
    const { code, stderr } = runCli(['fuzz', '--runs', 'notanumber']);
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toContain('--runs');
  });

  it.each([
    [['fuzz', '--time', 'soon'], '--time'],
    [['fuzz', '--shard', '3/2'], '--shard'],
    [['fuzz', '--arch', 'tdx'], 'arch'],
    [['fuzz', '--bogus-flag'], 'bogus-flag'],
  ])('rejects bad flags %j with exit 2', (args, flag) => {
    const { code, stderr } = runCli(args);
    expect(code).toBe(2);
    expect(stderr).toContain(flag);
    expect(stderr.trim().split('\n')).toHaveLength(1);
  });

  it('asks for a command when given none', () => {
    const { code, stderr } = runCli([]);
    expect(code).toBe(2);
    expect(stderr).toContain('command');
  });
});
