// Bad input, as a hostile or careless user gives it (issue 14): every entry of this table must end
// with exit code 2 and one line on stderr naming the flag, file or field, before any work starts:
// no stack trace, no escape or NUL byte reaching the terminal, in bounded time and memory (each
// run gets a 384 MB heap; the table runs in small concurrent batches, with generous timeouts).

import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { OP_SPECS } from '../src/ops/schema.ts';
import { type CliResult, inBatches, runCliAsync } from './helpers/cli.ts';

interface Entry {
  /** What is wrong, for the report. */
  kind: string;
  args: (dir: string) => string[];
  /** What the one line must name. */
  names: string | RegExp;
}

const ESC = '\u001b';
const validConfig = { arch: 'snp' };
const repro = (overrides: Record<string, unknown> = {}, config: Record<string, unknown> = {}, ops: unknown[] = [{ op: 'host_sync' }]) => ({
  format: 'cocofuzz-repro/1',
  title: 't',
  config: { ...validConfig, ...config },
  seed: 's',
  ops,
  ...overrides,
});
const allZero = Object.keys(OP_SPECS)
  .map((name) => `${name}=0`)
  .join(',');

const HOST_POLICY = "export default { name: 'h', description: 'a host policy', split(ctx) { ctx.kvm.defaultSplit({ gpa: 0 }); } };\n";
const ORACLE = "export default { name: 'o', description: 'an oracle', severity: 'security', check() { return []; } };\n";

/** Files the entries point at, written once into `dir`. */
function setUp(dir: string): void {
  const json = (name: string, value: unknown): void => writeFileSync(join(dir, name), JSON.stringify(value));
  mkdirSync(join(dir, 'elsewhere'));
  mkdirSync(join(dir, 'corpus'));
  mkdirSync(join(dir, 'empty'));
  mkdirSync(join(dir, 'config-dir'));
  mkdirSync(join(dir, 'half-bad'));
  writeFileSync(join(dir, 'elsewhere', 'evil.mjs'), "import { writeFileSync } from 'node:fs'; writeFileSync('PWNED', 'x'); export default { name: 'evil', description: 'e' };\n");
  writeFileSync(join(dir, 'host.mjs'), HOST_POLICY);
  writeFileSync(join(dir, 'oracle.mjs'), ORACLE);
  writeFileSync(join(dir, 'syntax.ts'), 'export default { name: \n');
  writeFileSync(join(dir, 'no-package.mjs'), "import { defineHostPolicy } from 'cocofuzz';\nexport default defineHostPolicy({ name: 'x', description: 'd' });\n");
  writeFileSync(join(dir, 'shadow.mjs'), "export default { name: 'kvm-4k', description: 'mine' };\n");
  writeFileSync(join(dir, 'typo.mjs'), "export default { name: 'h', description: 'd', ioo() {}, pageSize: () => '4K' };\n");
  writeFileSync(join(dir, 'syntax.mjs'), "const a = 1;\nexport default { name: 'x',\n");
  mkdirSync(join(dir, 'real'));
  writeFileSync(join(dir, 'real', 'syntax.mjs'), "const a = 1;\nexport default { name: 'x',\n");
  symlinkSync(join(dir, 'real'), join(dir, 'linked'));
  writeFileSync(join(dir, 'imports-bad.mjs'), "import './bad-dep.mjs';\nexport default { name: 'x', description: 'd' };\n");
  writeFileSync(join(dir, 'bad-dep.mjs'), 'const x = ;\n');
  writeFileSync(join(dir, 'imports-missing.mjs'), "import { b } from './dep.mjs';\nexport default { name: 'x', description: 'd' };\n");
  writeFileSync(join(dir, 'dep.mjs'), 'export const a = 1;\n');
  writeFileSync(join(dir, 'throws.mjs'), "const a = 1;\nthrow new Error('boom at import');\nexport default { name: 'x', description: 'd' };\n");
  writeFileSync(join(dir, 'unseen.mjs'), "export default { name: 'u', description: 'u', io() {}, ioIgnoresUnseen: 'yes' };\n");
  writeFileSync(join(dir, 'maps-pages.mjs'), "export default { name: 'm', description: 'm', io() {}, ioMapsPages: 1 };\n");
  writeFileSync(join(dir, 'max-1g.mjs'), "export default { name: 'g', description: 'g', privateFaultMaxSize: '1G' };\n");
  writeFileSync(join(dir, 'max-and-hook.mjs'), "export default { name: 'h', description: 'h', privateFaultMaxSize: '4K', privateFault(ctx, f) { ctx.kvm.defaultPrivateFault(f); } };\n");
  writeFileSync(join(dir, 'binary.json'), Buffer.from([0, 1, 2, 0x1b, 0x5b, 0x32, 0x4a, 0xff, 0xfe, 0, 10, 13]));
  writeFileSync(join(dir, 'esc.json'), `{"format": "cocofuzz-repro/1", ${ESC}]0;pwned\u0007`);
  writeFileSync(join(dir, 'config-binary'), Buffer.from([0x1b, 0x5d, 0x30, 0x3b, 0x78, 0x07, 0, 0]));
  writeFileSync(join(dir, 'a-file'), 'x');
  json('corpus/evil-relative.json', repro({}, { hostPolicy: '../elsewhere/evil.mjs' }));
  json('corpus/evil-absolute.json', repro({}, { hostPolicy: join(dir, 'elsewhere', 'evil.mjs') }));
  json('corpus/evil-guest.json', repro({}, { guestPolicy: '../../../../../../elsewhere/evil.mjs' }));
  json('corpus/evil-oracle.json', repro({ oracles: ['../elsewhere/evil.mjs'] }));
  symlinkSync(join(dir, 'elsewhere'), join(dir, 'corpus', 'link'));
  json('corpus/evil-symlink.json', repro({}, { hostPolicy: './link/evil.mjs' }));
  mkdirSync(join(dir, 'findings'));
  json('findings/evil-relative.json', repro({}, { hostPolicy: '../elsewhere/evil.mjs' }));
  json('proto-policy.json', repro({}, { hostPolicy: 'constructor' }));
  json('proto-guest.json', repro({}, { guestPolicy: '__proto__' }));
  json('addr-52.json', repro({}, { adversary: 'host' }, [{ op: 'hw_rmpupdate', hpa: '0x10000000000000', assigned: true, asid: 1, gpa: '0x0', size: '4K' }]));
  json('iova-52.json', repro({}, {}, [{ op: 'dma', dev: 0, iova: '0x10000000000000', len: 64, write: true }]));
  json('format.json', repro({ format: 'cocofuzz-repro/9' }));
  json('unknown-op.json', repro({}, {}, [{ op: 'reboot' }]));
  json('esc-key.json', repro({ [`x${ESC}[2J`]: 1 }));
  json('arch.json', repro({}, { arch: 'tdx' }));
  json('oracles-type.json', repro({ oracles: 'x.ts' }));
  json('memory.json', repro({}, { guestMemory: '4096T' }));
  json('ops-type.json', repro({ ops: {} }));
  json('expect.json', repro({ expect: { verdict: 'maybe' } }));
  json('expect-step.json', repro({ expect: { verdict: 'violation', oracle: 'dma-liveness', step: 99 } }));
  json('expect-oracle.json', repro({ expect: { verdict: 'violation', oracle: 'dma-livenes' } }));
  json('unknown-host.json', repro({}, { hostPolicy: 'nope' }));
  // A directory to report on with one good file and one that cannot be read.
  json('half-bad/good.json', repro());
  writeFileSync(join(dir, 'half-bad', 'broken.json'), '{');
  json('step.json', repro({}, {}, [{ op: 'accept', gpa: '0x1001', size: '4K' }]));
  json('good.json', repro());
}

const TABLE: Entry[] = [
  // numbers and durations
  { kind: 'runs not a number', args: () => ['fuzz', '--runs', 'lots'], names: '--runs' },
  { kind: 'runs zero', args: () => ['fuzz', '--runs', '0'], names: '--runs' },
  { kind: 'runs negative', args: () => ['fuzz', '--runs', '-5'], names: '--runs' },
  { kind: 'steps far past any use', args: () => ['fuzz', '--steps', '1000000000'], names: '--steps' },
  { kind: 'steps zero', args: () => ['fuzz', '--steps', '0'], names: '--steps' },
  { kind: 'workers far past the cores', args: () => ['fuzz', '--workers', '64000'], names: '--workers' },
  { kind: 'workers zero', args: () => ['fuzz', '--workers', '0'], names: '--workers' },
  { kind: 'time zero', args: () => ['fuzz', '--time', '0'], names: '--time' },
  { kind: 'time negative', args: () => ['fuzz', '--time', '-5s'], names: /--time.*-5s/ },
  { kind: 'time not a duration', args: () => ['fuzz', '--time', 'soon'], names: '--time' },
  { kind: 'time past a day', args: () => ['fuzz', '--time', '100000h'], names: '--time' },
  { kind: 'shard negative', args: () => ['fuzz', '--shard', '-1/2'], names: /--shard.*-1\/2/ },
  { kind: 'shard index past count', args: () => ['fuzz', '--shard', '3/2'], names: '--shard' },
  { kind: 'shard of zero', args: () => ['fuzz', '--shard', '0/0'], names: '--shard' },
  { kind: 'case-timeout zero', args: () => ['fuzz', '--case-timeout', '0'], names: '--case-timeout' },
  { kind: 'case-timeout not a duration', args: () => ['fuzz', '--case-timeout', 'forever'], names: '--case-timeout' },
  { kind: 'minimize-budget zero', args: () => ['fuzz', '--minimize-budget', '0'], names: '--minimize-budget' },
  { kind: 'minimize budget not a number', args: () => ['minimize', 'x.json', '--budget', 'x'], names: '--budget' },
  // weights
  { kind: 'weights all zero', args: () => ['fuzz', '--weights', allZero], names: '--weights' },
  { kind: 'weights unknown op', args: () => ['fuzz', '--weights', 'reboot=3'], names: '--weights' },
  { kind: 'weights negative', args: () => ['fuzz', '--weights', 'dma=-1'], names: '--weights' },
  { kind: 'weights without value', args: () => ['fuzz', '--weights', 'dma'], names: '--weights' },
  // Number('') is 0: `--weights during=$PCT` with PCT unset must not switch interleaving off silently.
  { kind: 'weights with an empty value', args: () => ['fuzz', '--weights', 'during='], names: '--weights: "during=" needs a weight' },
  { kind: 'weights with two values', args: () => ['fuzz', '--weights', 'dma=1=2'], names: '--weights: "dma=1=2" needs a weight' },
  { kind: 'weights inherited name', args: () => ['fuzz', '--weights', '__proto__=1'], names: '--weights' },
  // policy and oracle names
  { kind: 'host policy named constructor', args: () => ['fuzz', '--host-policy', 'constructor'], names: '--host-policy' },
  { kind: 'host policy named __proto__', args: () => ['fuzz', '--host-policy', '__proto__'], names: '--host-policy' },
  { kind: 'host policy named toString', args: () => ['fuzz', '--host-policy', 'toString'], names: '--host-policy' },
  { kind: 'guest policy named hasOwnProperty', args: () => ['fuzz', '--guest-policy', 'hasOwnProperty'], names: '--guest-policy' },
  { kind: 'unknown host policy', args: () => ['fuzz', '--host-policy', 'kvm-99'], names: '--host-policy' },
  { kind: 'host policy with escapes', args: () => ['fuzz', '--host-policy', `x${ESC}]0;t\u0007`], names: '--host-policy' },
  { kind: 'missing policy file', args: (d) => ['fuzz', '--host-policy', join(d, 'missing.ts')], names: 'missing.ts' },
  { kind: 'host policy as guest policy', args: (d) => ['fuzz', '--guest-policy', join(d, 'host.mjs')], names: /host\.mjs.*host policy/ },
  { kind: 'oracle as host policy', args: (d) => ['fuzz', '--host-policy', join(d, 'oracle.mjs')], names: /oracle\.mjs.*oracle/ },
  { kind: 'host policy as oracle', args: (d) => ['fuzz', '--oracle', join(d, 'host.mjs')], names: /host\.mjs.*host policy/ },
  { kind: 'host policy ioIgnoresUnseen not a boolean', args: (d) => ['fuzz', '--host-policy', join(d, 'unseen.mjs')], names: /unseen\.mjs.*ioIgnoresUnseen/ },
  { kind: 'host policy ioMapsPages not a boolean', args: (d) => ['fuzz', '--host-policy', join(d, 'maps-pages.mjs')], names: /maps-pages\.mjs.*ioMapsPages/ },
  { kind: 'host policy privateFaultMaxSize not a size it maps at', args: (d) => ['fuzz', '--host-policy', join(d, 'max-1g.mjs')], names: /max-1g\.mjs.*"privateFaultMaxSize" must be "4K" or "2M", not "1G"/ },
  { kind: 'host policy privateFaultMaxSize beside a privateFault hook', args: (d) => ['fuzz', '--host-policy', join(d, 'max-and-hook.mjs')], names: /max-and-hook\.mjs.*privateFaultMaxSize.*defaultPrivateFault\(fault, \{ maxSize \}\)/ },
  // Where in the file: a plugin author's first question (esbuild's line; node --check's; the stack's).
  { kind: 'policy file with a syntax error', args: (d) => ['fuzz', '--host-policy', join(d, 'syntax.ts')], names: /syntax\.ts: the host policy failed to load: Transform failed with 1 error: .*syntax\.ts:2:0: ERROR: / },
  { kind: 'JavaScript policy file with a syntax error', args: (d) => ['fuzz', '--host-policy', join(d, 'syntax.mjs')], names: /syntax\.mjs: the host policy failed to load: Unexpected end of input \(.*syntax\.mjs:3\)/ },
  { kind: 'JavaScript policy file with a syntax error, through a symlinked directory', args: (d) => ['fuzz', '--host-policy', join(d, 'linked', 'syntax.mjs')], names: /linked\/syntax\.mjs: the host policy failed to load: Unexpected end of input \(.*linked\/syntax\.mjs:3\)/ },
  { kind: 'JavaScript policy file importing a module with a syntax error', args: (d) => ['fuzz', '--host-policy', join(d, 'imports-bad.mjs')], names: /imports-bad\.mjs: the host policy failed to load: Unexpected token ';' \(not in .*imports-bad\.mjs itself, whose syntax is fine: in a module it imports\)/ },
  { kind: 'JavaScript policy file importing a name its module does not export', args: (d) => ['fuzz', '--host-policy', join(d, 'imports-missing.mjs')], names: /imports-missing\.mjs: the host policy failed to load: The requested module '\.\/dep\.mjs' does not provide an export named 'b'$/m },
  { kind: 'JavaScript policy file that throws at import', args: (d) => ['fuzz', '--host-policy', join(d, 'throws.mjs')], names: /throws\.mjs: the host policy failed to load: boom at import \(.*throws\.mjs:2:7\)/ },
  { kind: 'policy file that cannot resolve cocofuzz', args: (d) => ['fuzz', '--host-policy', join(d, 'no-package.mjs')], names: /no-package\.mjs: the host policy failed to load: Cannot find package 'cocofuzz'.*npm install --save-dev cocofuzz/ },
  { kind: "policy file under a built-in's name", args: (d) => ['fuzz', '--host-policy', join(d, 'shadow.mjs')], names: /shadow\.mjs: "name": "kvm-4k" is the name of a built-in host policy/ },
  { kind: 'policy file with a misspelled hook beside a guest hook', args: (d) => ['fuzz', '--host-policy', join(d, 'typo.mjs')], names: /typo\.mjs: unknown field "ioo" for a host policy/ },
  { kind: 'missing oracle file', args: (d) => ['fuzz', '--oracle', join(d, 'nope.ts')], names: 'nope.ts' },
  { kind: 'unknown only-oracle', args: () => ['fuzz', '--only-oracle', 'nosuch'], names: '--only-oracle' },
  { kind: 'only-oracle named constructor', args: () => ['fuzz', '--only-oracle', 'constructor'], names: '--only-oracle' },
  { kind: 'arch flag tdx', args: () => ['fuzz', '--arch', 'tdx'], names: 'arch' },
  { kind: 'unknown flag', args: () => ['fuzz', '--bogus'], names: 'bogus' },
  { kind: 'unknown flag with escapes', args: () => ['fuzz', `--x${ESC}[2J`], names: 'Unknown argument' },
  { kind: 'replay policy flag unknown', args: (d) => ['replay', join(d, 'good.json'), '--host-policy', 'valueOf'], names: '--host-policy' },
  // outputs
  { kind: 'junit in a missing directory', args: () => ['fuzz', '--runs', '1', '--junit', '/nonexistent/dir/x.xml'], names: '--junit' },
  { kind: 'junit is a directory', args: (d) => ['fuzz', '--runs', '1', '--junit', d], names: '--junit' },
  { kind: 'sarif in a missing directory', args: () => ['fuzz', '--runs', '1', '--sarif', '/nonexistent/dir/x.sarif'], names: '--sarif' },
  { kind: 'html is a directory', args: (d) => ['fuzz', '--runs', '1', '--html', d], names: '--html' },
  { kind: 'case negative', args: () => ['fuzz', '--seed', 's', '--case', '-1'], names: '--case' },
  { kind: 'case without a seed', args: () => ['fuzz', '--case', '3'], names: '--case' },
  { kind: 'max-findings zero', args: () => ['fuzz', '--max-findings', '0'], names: '--max-findings' },
  { kind: 'time as a bad compound', args: () => ['fuzz', '--time', '30s1h'], names: '--time' },
  { kind: 'out is a file', args: (d) => ['fuzz', '--runs', '1', '--out', join(d, 'a-file')], names: '--out' },
  { kind: 'out below a file', args: (d) => ['fuzz', '--runs', '1', '--out', join(d, 'a-file', 'sub')], names: '--out' },
  { kind: 'minimize out in a missing directory', args: (d) => ['minimize', join(d, 'good.json'), '--out', '/nonexistent/dir/x.json'], names: '--out' },
  { kind: 'corpus merge without out', args: (d) => ['corpus', 'merge', join(d, 'corpus')], names: '--out' },
  { kind: 'corpus merge out is a file', args: (d) => ['corpus', 'merge', join(d, 'good.json'), '--out', join(d, 'a-file')], names: '--out' },
  // --config
  { kind: 'config arch tdx', args: () => ['fuzz', '--config', '{"arch":"tdx"}'], names: 'config.arch' },
  { kind: 'config a directory', args: (d) => ['fuzz', '--config', join(d, 'config-dir')], names: '--config' },
  { kind: 'config an array', args: () => ['fuzz', '--config', '[]'], names: /--config.*array/ },
  { kind: 'config a string', args: () => ['fuzz', '--config', '"x"'], names: '--config' },
  { kind: 'config missing file', args: () => ['fuzz', '--config', 'nope.json'], names: '--config' },
  { kind: 'config bad JSON', args: () => ['fuzz', '--config', '{"guestMemory":'], names: '--config' },
  { kind: 'config binary file', args: (d) => ['fuzz', '--config', join(d, 'config-binary')], names: '--config' },
  { kind: 'config guest memory past the layout', args: () => ['fuzz', '--config', '{"guestMemory":"4096T"}'], names: 'config.guestMemory' },
  { kind: 'config guest memory just past 64T', args: () => ['fuzz', '--config', '{"guestMemory":"65T"}'], names: 'config.guestMemory' },
  { kind: 'config guest memory negative', args: () => ['fuzz', '--config', '{"guestMemory":-1}'], names: 'config.guestMemory' },
  { kind: 'config pool past half of memory', args: () => ['fuzz', '--config', '{"guestMemory":"64G","swiotlb":"64G"}'], names: 'config.swiotlb' },
  { kind: 'config unknown field', args: () => ['fuzz', '--config', '{"bogus":1}'], names: 'config.bogus' },
  { kind: 'config key with escapes', args: () => ['fuzz', '--config', '{"\\u001b]0;pwned\\u0007":1}'], names: 'config.\\x1b]0;pwned\\x07' },
  { kind: 'config value with escapes', args: () => ['fuzz', '--config', '{"arch":"\\u001b[2J"}'], names: 'config.arch' },
  { kind: 'config inherited key', args: () => ['fuzz', '--config', '{"__proto__":{"x":1}}'], names: 'config.__proto__' },
  { kind: 'config cpus zero', args: () => ['fuzz', '--config', '{"cpus":0}'], names: 'config.cpus' },
  { kind: 'config bad iommu', args: () => ['fuzz', '--config', '{"devices":[{"id":0,"iommu":"x"}]}'], names: 'config.devices[0].iommu' },
  { kind: 'config vtom unaligned', args: () => ['fuzz', '--config', '{"vtom":"0x123"}'], names: 'config.vtom' },
  { kind: 'config vtom at 2^52', args: () => ['fuzz', '--config', '{"vtom":"0x10000000000000"}'], names: 'config.vtom' },
  { kind: 'config host policy constructor', args: () => ['fuzz', '--config', '{"hostPolicy":"constructor"}'], names: 'config.hostPolicy' },
  { kind: 'config adversary guest', args: () => ['fuzz', '--config', '{"adversary":"guest"}'], names: 'config.adversary' },
  { kind: 'config discard unknown world', args: () => ['fuzz', '--config', '{"discard":"hugetlb"}'], names: 'config.discard' },
  // repro files
  { kind: 'repro policy ../ out of its tree', args: (d) => ['replay', '--check', join(d, 'corpus', 'evil-relative.json')], names: /config\.hostPolicy.*--host-policy FILE/ },
  { kind: 'repro policy absolute', args: (d) => ['replay', join(d, 'corpus', 'evil-absolute.json')], names: /config\.hostPolicy.*--host-policy FILE/ },
  { kind: 'repro guest policy far out', args: (d) => ['replay', join(d, 'corpus', 'evil-guest.json')], names: /config\.guestPolicy.*--guest-policy FILE/ },
  { kind: 'repro oracle out of its tree', args: (d) => ['replay', join(d, 'corpus', 'evil-oracle.json')], names: /oracles\[0\].*--oracle FILE/ },
  { kind: 'repro policy through a symlink', args: (d) => ['replay', join(d, 'corpus', 'evil-symlink.json')], names: /symlink.*--host-policy FILE/ },
  { kind: 'explain of a repro out of its tree', args: (d) => ['explain', join(d, 'corpus', 'evil-relative.json')], names: '--host-policy FILE' },
  { kind: 'minimize of a repro out of its tree', args: (d) => ['minimize', join(d, 'corpus', 'evil-relative.json')], names: '--host-policy FILE' },
  { kind: 'corpus check of a repro out of its tree', args: (d) => ['corpus', 'check', join(d, 'corpus', 'evil-relative.json')], names: '--host-policy FILE' },
  { kind: 'report of a repro out of its tree', args: (d) => ['report', join(d, 'findings')], names: '--host-policy FILE' },
  { kind: 'repro policy named constructor', args: (d) => ['replay', join(d, 'proto-policy.json')], names: 'config.hostPolicy' },
  { kind: 'repro policy named __proto__', args: (d) => ['replay', join(d, 'proto-guest.json')], names: 'config.guestPolicy' },
  { kind: 'repro address at 2^52', args: (d) => ['replay', join(d, 'addr-52.json')], names: 'ops[0].hpa' },
  { kind: 'repro IOVA at 2^52', args: (d) => ['replay', join(d, 'iova-52.json')], names: 'ops[0].iova' },
  { kind: 'repro unaligned address', args: (d) => ['replay', join(d, 'step.json')], names: 'ops[0].gpa' },
  { kind: 'repro malformed JSON with escapes', args: (d) => ['replay', join(d, 'esc.json')], names: 'esc.json' },
  { kind: 'repro binary file', args: (d) => ['replay', join(d, 'binary.json')], names: 'binary.json' },
  { kind: 'repro wrong format', args: (d) => ['replay', join(d, 'format.json')], names: 'format' },
  { kind: 'repro unknown op', args: (d) => ['replay', join(d, 'unknown-op.json')], names: 'ops[0].op' },
  { kind: 'repro key with escapes', args: (d) => ['replay', join(d, 'esc-key.json')], names: 'esc-key.json' },
  { kind: 'repro arch tdx', args: (d) => ['replay', join(d, 'arch.json')], names: 'config.arch' },
  { kind: 'repro oracles not a list', args: (d) => ['replay', join(d, 'oracles-type.json')], names: 'oracles' },
  { kind: 'repro guest memory past the layout', args: (d) => ['explain', join(d, 'memory.json')], names: 'config.guestMemory' },
  { kind: 'repro ops not a list', args: (d) => ['replay', join(d, 'ops-type.json')], names: 'ops' },
  { kind: 'repro bad expectation', args: (d) => ['replay', '--check', join(d, 'expect.json')], names: 'expect.verdict' },
  // yargs gives an unknown flag the file as its value, then says only that the file is missing.
  { kind: 'an unknown flag before the file', args: (d) => ['replay', '--bogus', join(d, 'expect.json')], names: 'Unknown argument: bogus' },
  { kind: 'repro expecting an oracle nothing defines', args: (d) => ['replay', '--check', join(d, 'expect-oracle.json')], names: 'expect-oracle.json: expect.oracle: no oracle "dma-livenes"' },
  { kind: 'repro expectation past the last op', args: (d) => ['replay', '--check', join(d, 'expect-step.json')], names: 'expect-step.json: expect.step: 99 is past the last op (the file has 1 op(s)' },
  // The file's own config named the policy: its name once, not twice.
  { kind: 'repro unknown built-in policy', args: (d) => ['replay', join(d, 'unknown-host.json')], names: /^cocofuzz: [^ ]*unknown-host\.json: config\.hostPolicy: "nope" is not a built-in host policy/ },
  { kind: 'replay of an empty directory', args: (d) => ['replay', '--check', join(d, 'empty')], names: 'empty' },
  { kind: 'replay of a missing path', args: (d) => ['replay', join(d, 'nothing-here')], names: 'nothing-here' },
  { kind: 'a swiotlb pool past what the model takes', args: () => ['fuzz', '--config', '{"guestMemory":"64T","swiotlb":"32T"}'], names: /config\.swiotlb: 32T is past the largest pool the model takes, 64G/ },
  { kind: 'a weight given twice', args: () => ['fuzz', '--weights', 'dma=30,dma=0'], names: '--weights: dma is given twice' },
  { kind: 'during over 100 percent', args: () => ['fuzz', '--weights', 'during=101'], names: '--weights: during=101 is a percentage' },
  { kind: 'a one-value flag given twice', args: (d) => ['fuzz', '--runs', '2', '--out', join(d, 'a'), '--out', join(d, 'b')], names: '--out: given more than once' },
  { kind: 'a seed given twice', args: () => ['fuzz', '--seed', 'a', '--seed=b'], names: '--seed: given more than once' },
  { kind: 'a config given twice', args: () => ['fuzz', '--config', '{}', '--config', '{}'], names: '--config: given more than once' },
  { kind: 'report of a directory with an unreadable file', args: (d) => ['report', join(d, 'half-bad')], names: 'broken.json: not valid JSON' },
  { kind: 'report into a missing directory', args: (d) => ['report', join(d, 'corpus'), '--out', '/nonexistent-dir/r.html'], names: '--out' },
  { kind: 'report onto a directory', args: (d) => ['report', join(d, 'corpus'), '--out', d], names: 'is a directory' },
  // Refused after the output paths are named: they must not be made (see 'a refused command made no directory').
  { kind: 'bad weights with a new --out and --corpus', args: (d) => ['fuzz', '--corpus', join(d, 'new-corpus'), '--out', join(d, 'new-out'), '--weights', 'bogus=1'], names: '--weights' },
  { kind: 'merge of a missing path into a new --out', args: (d) => ['corpus', 'merge', '--out', join(d, 'new-merged'), join(d, 'nothing-here')], names: 'nothing-here' },
];

describe('bad input table (issue 14)', () => {
  let dir = '';
  let results: (CliResult & { ms: number })[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cocofuzz-bad-'));
    setUp(dir);
    // Three at a time: each run is mostly tsx start-up; a heap limit bounds what a run may use.
    results = await inBatches(
      TABLE.map((entry) => () => runCliAsync(entry.args(dir), { cwd: dir, nodeArgs: ['--max-old-space-size=384'], timeoutMs: 120_000 })),
      3,
    );
  }, 900_000);

  it('has at least 60 kinds of bad input', () => {
    expect(new Set(TABLE.map((e) => e.kind)).size).toBeGreaterThanOrEqual(60);
  });

  it.each(TABLE.map((entry, index) => [entry.kind, index] as const))('%s: exit 2, one line naming it, nothing else', (_kind, index) => {
    const entry = TABLE[index]!;
    const result = results[index]!;
    const lines = result.stderr.trimEnd().split('\n');
    expect({ code: result.code, stderr: result.stderr }).toMatchObject({ code: 2 });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^cocofuzz: /);
    if (typeof entry.names === 'string') expect(lines[0]).toContain(entry.names);
    else expect(lines[0]).toMatch(entry.names);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    // Nothing a terminal would act on: no ESC, no BEL, no NUL, no other C0 control but newline.
    // eslint-disable-next-line no-control-regex
    expect(result.stdout + result.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
    // Checked before any work: a run is start-up plus a moment (generous on a loaded 2-core box).
    expect(result.ms).toBeLessThan(60_000);
  });

  it('a refused command made no directory, and report wrote no report that leaves a file out', async () => {
    const { existsSync } = await import('node:fs');
    expect(existsSync(join(dir, 'half-bad', 'report.html'))).toBe(false);
    for (const made of ['new-corpus', 'new-out', 'new-merged']) expect([made, existsSync(join(dir, made))]).toEqual([made, false]);
  });

  it('ran nothing from a repro file: the evil plugin never executed', async () => {
    const { existsSync } = await import('node:fs');
    expect(existsSync(join(dir, 'PWNED'))).toBe(false);
    expect(existsSync(join(dir, 'corpus', 'PWNED'))).toBe(false);
  });
});
