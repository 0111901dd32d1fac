// Issue 14, items 3, 7 and 17: what plugins return is checked where the engine takes it, and
// names are looked up in maps. Garbage from a hook is a policy-error naming the hook, field and
// value; garbage from an oracle is an oracle error; neither crashes the run.

import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Oracle } from '../../src/api.ts';
import { checkFindings } from '../../src/engine/finding-check.ts';
import { runCase, signature } from '../../src/engine/run.ts';
import { resolveGuestPolicy, resolveHostPolicy } from '../../src/engine/select.ts';
import { MAX_GUEST_MEMORY, defaultConfig } from '../../src/ops/config.ts';
import { parseAddress } from '../../src/model/size.ts';
import type { Op } from '../../src/ops/types.ts';
import { guestPolicies, hostPolicies } from '../../src/policies/index.ts';
import { defineGuestPolicy, defineHostPolicy } from '../../src/policies/types.ts';
import { escapeTerminal, escapeXml } from '../../src/report/escape.ts';
import { containedPluginPath, pluginPathForRepro } from '../../src/repro/plugin-paths.ts';

const config = defaultConfig();
const host = hostPolicies['kvm-iommu-4k']!;
const guest = guestPolicies.linux!;
const run = (ops: Op[], policies: { host?: typeof host; guest?: typeof guest }, oracles: Oracle[] = []) =>
  runCase({ config, seed: 's', ops }, { host: policies.host ?? host, guest: policies.guest ?? guest }, { oracles });

describe('item 17: hook garbage is a policy-error naming the hook, field and value', () => {
  it('dmaAttrs returning minAlignMask -1', () => {
    const bad = defineGuestPolicy({ name: 'bad-attrs', description: 'x', dmaAttrs: () => ({ minAlignMask: -1 }) });
    const result = run([{ op: 'map_single', dev: 1, bytes: 4096, dir: 'to_device' }], { guest: bad });
    expect(result.violations[0]).toMatchObject({ oracle: 'policy-error', step: 0 });
    expect(result.violations[0]?.message).toMatch(/policy bad-attrs: dmaAttrs returned minAlignMask: -1/);
  });

  it('convert returning NaN', () => {
    const bad = defineHostPolicy({ name: 'nan-convert', description: 'x', convert: () => Number.NaN });
    const result = run([{ op: 'share', gpa: 0x200000, pages: 1 }], { host: bad });
    expect(result.violations[0]?.message).toMatch(/policy nan-convert: convert returned NaN bytes done for the request of \d+ bytes at gpa 0x[0-9a-f]+: expected a multiple of 4096/);
  });

  it('convert returning a string', () => {
    const bad = defineHostPolicy({ name: 'str-convert', description: 'x', convert: () => '4096' as unknown as number });
    const result = run([{ op: 'share', gpa: 0x200000, pages: 1 }], { host: bad });
    expect(result.violations[0]?.message).toMatch(/convert returned "4096"/);
  });

  it('atomicPoolBytes returning NaN (at boot, reported at the first op)', () => {
    const bad = defineGuestPolicy({ name: 'nan-pool', description: 'x', atomicPoolBytes: () => Number.NaN });
    const result = run([{ op: 'host_sync' }], { guest: bad });
    expect(result.violations[0]?.message).toMatch(/policy nan-pool: atomicPoolBytes returned NaN/);
  });

  it('a hook that throws is named in the policy-error (the innermost, as hooks nest)', () => {
    const host = defineHostPolicy({ name: 'io-throws', description: 'x', io: () => { throw new Error('boom'); } });
    const result = run([{ op: 'share', gpa: 0x200000, pages: 1 }], { host });
    expect(result.violations[0]?.message).toBe('policy io-throws: in hook host io: boom');
    const guest = defineGuestPolicy({ name: 'size-throws', description: 'x', pageSize: () => { throw new RangeError('no size'); } });
    expect(run([{ op: 'share', gpa: 0x200000, pages: 1 }], { guest }).violations[0]?.message).toBe('policy size-throws: in hook guest pageSize: no size');
    // A value of the wrong kind says what was expected.
    const bytes = defineGuestPolicy({ name: 'size-bytes', description: 'x', pageSize: () => 0x200000 as never });
    expect(run([{ op: 'share', gpa: 0x200000, pages: 1 }], { guest: bytes }).violations[0]?.message).toBe('policy size-bytes: pageSize returned 2097152, expected "4K" or "2M"');
  });

  it("a policy-error's bucket is its policy and hook: two hooks at fault are two buckets, two messages of one hook one", () => {
    const bucketOf = (host: ReturnType<typeof defineHostPolicy>, ops: Op[]): string => {
      const violation = run(ops, { host }).violations[0]!;
      return signature({ config: defaultConfig(), seed: 's', ops }, violation);
    };
    const share: Op[] = [{ op: 'share', gpa: 0x200000, pages: 1 }];
    const io = bucketOf(defineHostPolicy({ name: 'p', description: 'x', io: () => { throw new Error('boom 1'); } }), share);
    expect(io).toBe('policy-error|p host io|');
    expect(bucketOf(defineHostPolicy({ name: 'p', description: 'x', io: () => { throw new Error('another 0x2000'); } }), share)).toBe(io);
    expect(bucketOf(defineHostPolicy({ name: 'p', description: 'x', convert: () => { throw new Error('boom'); } }), share)).toBe('policy-error|p host convert|');
    expect(bucketOf(defineHostPolicy({ name: 'p', description: 'x', convert: () => Number.NaN }), share)).toBe('policy-error|p convert|');
  });

  it('a hook that returns nothing (a forgotten return) is a policy-error, never the default in its place', () => {
    const cases = [
      { guest: defineGuestPolicy({ name: 'no-pool', description: 'x', swiotlbPool: () => undefined as never }), ops: [{ op: 'host_sync' }], message: /policy no-pool: swiotlbPool returned undefined/ },
      { guest: defineGuestPolicy({ name: 'no-atomic', description: 'x', atomicPoolBytes: () => undefined as never }), ops: [{ op: 'host_sync' }], message: /policy no-atomic: atomicPoolBytes returned undefined/ },
      { guest: defineGuestPolicy({ name: 'no-attrs', description: 'x', dmaAttrs: () => undefined as never }), ops: [{ op: 'map_single', dev: 1, bytes: 4096, dir: 'to_device' }], message: /policy no-attrs: dmaAttrs returned undefined/ },
    ] as const;
    for (const { guest, ops, message } of cases) {
      const result = run([...ops] as never, { guest });
      expect(result.violations[0]).toMatchObject({ oracle: 'policy-error' });
      expect(result.violations[0]?.message).toMatch(message);
    }
  });

  it('swiotlbPool returning garbage', () => {
    const bad = defineGuestPolicy({ name: 'bad-pool', description: 'x', swiotlbPool: () => ({ base: 'low', bytes: 4096 }) as never });
    const result = run([{ op: 'host_sync' }], { guest: bad });
    expect(result.violations[0]?.message).toMatch(/swiotlbPool returned base: "low"/);
  });
});

describe('item 17: oracle garbage is an oracle error', () => {
  const oracle = (check: Oracle['check']): Oracle => ({ name: 'garbage', description: 'x', severity: 'security', check });

  it('a function in details, a null-prototype sizes, a non-array, a missing message', () => {
    expect(() => checkFindings([{ message: 'x', details: { f: () => 1 } }])).toThrow(/details\.f is a function/);
    expect(() => checkFindings({ message: 'x' })).toThrow(/expected an array/);
    expect(() => checkFindings([{ details: {} }])).toThrow(/message is undefined/);
    expect(() => checkFindings([{ message: 'x', details: { when: new Date(0) } }])).toThrow(/details\.when is \[object Date\]/);
    const sizes = Object.create(null) as Record<string, unknown>;
    sizes.rmp = '2M';
    expect(checkFindings([{ message: 'x', details: { sizes } }])).toEqual([{ message: 'x', details: { sizes: { rmp: '2M' } } }]);
    const result = run([{ op: 'host_sync' }], {}, [oracle(() => [{ message: 'x', details: { f: () => 1 } }] as never)]);
    expect(result.violations).toEqual([]);
    expect(result.oracleErrors[0]).toMatchObject({ oracle: 'garbage', step: 0 });
  });

  it("the engine's own records are plain data: a DMA record in details is a finding, not garbage", () => {
    const ops: Op[] = [
      { op: 'alloc_coherent', dev: 1, bytes: 8192 },
      { op: 'dma', dev: 1, buf: 0, len: 8192, write: true },
    ];
    const result = run(ops, {}, [oracle((_view, step) => step.dmas.map((dma) => ({ message: 'a DMA', details: { dma } })))]);
    expect(result.oracleErrors).toEqual([]);
    expect(result.violations).toHaveLength(1);
    const dma = result.violations[0]!.details!.dma as { tokens: number[]; tokenRuns: number[] };
    expect(dma.tokens).toHaveLength(4);
    expect(dma.tokenRuns).toEqual([dma.tokens[0], 4]);
  });
});

describe('item 3: built-in names are looked up in maps', () => {
  it.each(['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf'])('%s is not a built-in policy', async (name) => {
    await expect(resolveHostPolicy(name)).rejects.toThrow(/unknown host policy/);
    await expect(resolveGuestPolicy(name)).rejects.toThrow(/unknown guest policy/);
  });
});

describe('items 5 and 7: what the model cannot hold is a config or format error', () => {
  it('guest memory past the host layout, addresses at 2^52', () => {
    expect(() => defaultConfig({ guestMemory: '4096T' })).toThrow(/config\.guestMemory: at most 64T/);
    expect(defaultConfig({ guestMemory: '64T' }).guestMemory).toBe(MAX_GUEST_MEMORY);
    expect(parseAddress('0x10000000000000')).toBeUndefined();
    expect(parseAddress('0xffffffffff000')).toBe(2 ** 52 - 4096);
  });
});

describe('item 2: escaping', () => {
  it('terminal text shows control characters instead of sending them', () => {
    expect(escapeTerminal('a\u001b]0;t\u0007b\u0000\n\u009b\u202e')).toBe('a\\x1b]0;t\\x07b\\x00\\x0a\\x9b\\u202e');
  });
  it('XML gets entities and no character XML cannot carry', () => {
    expect(escapeXml(`<a href="x">&'\u001b\u0000`)).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&apos;\\x1b\\x00');
  });
});

describe('item 1: plugin paths in repro files', () => {
  it('accepts files inside the tree and refuses absolute paths, .. and symlinks out', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cocofuzz-paths-'));
    mkdirSync(join(dir, 'corpus', 'policies'), { recursive: true });
    mkdirSync(join(dir, 'outside'));
    writeFileSync(join(dir, 'corpus', 'policies', 'p.ts'), '');
    writeFileSync(join(dir, 'outside', 'x.ts'), '');
    symlinkSync(join(dir, 'outside'), join(dir, 'corpus', 'out'));
    const repro = join(dir, 'corpus', 'r.json');
    expect(containedPluginPath(repro, 'config.hostPolicy', './policies/p.ts', '--host-policy')).toMatch(/policies[/\\]p\.ts$/);
    expect(() => containedPluginPath(repro, 'config.hostPolicy', '../outside/x.ts', '--host-policy')).toThrow(/outside the repro file's directory.*--host-policy FILE/);
    expect(() => containedPluginPath(repro, 'config.hostPolicy', join(dir, 'outside', 'x.ts'), '--host-policy')).toThrow(/absolute path/);
    expect(() => containedPluginPath(repro, 'config.hostPolicy', './out/x.ts', '--host-policy')).toThrow(/through a symlink/);
    expect(() => containedPluginPath(repro, 'oracles[0]', './policies/../../outside/x.ts', '--oracle')).toThrow(/--oracle FILE/);
    expect(pluginPathForRepro('corpus/policies/p.ts', join(dir, 'corpus', 'found.json'), dir)).toBe('./policies/p.ts');
    expect(pluginPathForRepro('kvm-4k', join(dir, 'corpus', 'found.json'), dir)).toBe('kvm-4k');
  });
});

describe('item 1: a plugin cannot make a campaign write outside --out', () => {
  it('an oracle named with path separators gets a file name inside the findings directory', async () => {
    const { runCampaign } = await import('../../src/engine/campaign.ts');
    const { readdirSync } = await import('node:fs');
    const out = join(mkdtempSync(join(tmpdir(), 'cocofuzz-name-')), 'found');
    const sneaky: Oracle = { name: '../../escaped', description: 'x', severity: 'security', check: () => [{ message: 'always' }] };
    const stats = await runCampaign({
      job: { config, seed: 's', generate: { steps: 4 }, oracleFiles: [], onlyOracles: [], minimizeBudget: 10, shard: { index: 0, count: 1 } },
      runs: 1,
      workers: 1,
      runner: { policies: { host, guest }, oracles: [sneaky] },
      out,
    });
    const bucket = [...stats.buckets.values()][0];
    expect(bucket?.file?.startsWith(out)).toBe(true);
    expect(readdirSync(out)).toEqual([bucket?.file?.slice(out.length + 1)]);
    expect(bucket?.file).not.toContain('..');
  });
});
