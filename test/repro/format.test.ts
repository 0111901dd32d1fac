import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/ops/errors.ts';
import { encodeRepro, parseRepro, readRepro, writeRepro } from '../../src/repro/format.ts';

const example = {
  format: 'cocofuzz-repro/1',
  title: 'trusted DMA after 4K IO map of 2M-validated memory',
  config: {
    arch: 'snp',
    guestMemory: '64M',
    hugeBacking: true,
    devices: [{ id: 0, trusted: true, iommu: 's2' }],
    swiotlb: '4M',
    hostPolicy: 'kvm-iommu-4k',
    guestPolicy: 'linux',
  },
  seed: 'nightly-2026-11-24/17',
  ops: [
    { op: 'accept', gpa: '0x200000', size: '2M' },
    { op: 'tdi_accept', dev: 0 },
    { op: 'dma', dev: 0, iova: '0x200000', len: 4096, write: true },
  ],
  expect: { verdict: 'violation', oracle: 'io-s2-rmp-size', step: 2 },
};

describe('repro format', () => {
  it("parses DESIGN.md's example and writes it back losslessly", () => {
    const repro = parseRepro(example);
    expect(repro.ops[0]).toEqual({ op: 'accept', gpa: 0x200000, size: '2M' });
    expect(repro.config.swiotlb).toBe(4 * 1024 * 1024);
    expect(repro.expect).toEqual({ verdict: 'violation', oracle: 'io-s2-rmp-size', step: 2 });
    const again = parseRepro(JSON.parse(encodeRepro(repro)));
    expect(again).toEqual(repro);
  });

  it('a title or seed that looks like the ops placeholder, or holds $ patterns, writes back losslessly', () => {
    for (const text of ['__OPS__', '\u0000ops', '\\u0000ops', "$& $' $`"]) {
      const repro = parseRepro({ ...example, title: text, seed: text });
      const again = parseRepro(JSON.parse(encodeRepro(repro)));
      expect(again).toEqual(repro);
    }
  });

  it('expect.step is an op index, or one past the last op (a watchdog stop after it), and no further', () => {
    const at = (step: number): Record<string, unknown> => ({ ...example, expect: { verdict: 'violation', oracle: 'io-s2-rmp-size', step } });
    expect(parseRepro(at(3)).expect).toEqual({ verdict: 'violation', oracle: 'io-s2-rmp-size', step: 3 });
    expect(() => parseRepro(at(4))).toThrow(/expect\.step: 4 is past the last op \(the file has 3 op\(s\)/);
    // A violation at boot in a file of no ops is reported with step 0.
    expect(parseRepro({ ...at(0), ops: [] }).expect).toEqual({ verdict: 'violation', oracle: 'io-s2-rmp-size', step: 0 });
  });

  it('writes one op per line', () => {
    const text = encodeRepro(parseRepro(example));
    expect(text).toContain('\n    {"op":"accept","gpa":"0x200000","size":"2M"},\n');
  });

  it.each([
    [{ ...example, format: 'cocofuzz-repro/9' }, 'format'],
    [{ ...example, extra: 1 }, 'extra'],
    [{ ...example, ops: [...example.ops, { op: 'teleport' }] }, 'ops[3].op'],
    [{ ...example, ops: [{ op: 'accept', gpa: '0x200000', size: '2M', why: 1 }] }, 'ops[0].why'],
    [{ ...example, expect: { verdict: 'maybe' } }, 'expect.verdict'],
    [{ ...example, config: { guestMemory: '64M' } }, 'config.arch'],
  ])('rejects a malformed file naming the field (%#)', (raw, field) => {
    try {
      parseRepro(raw);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(FormatError);
      expect((error as FormatError).field).toBe(field);
    }
  });

  it('names the file in read errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cocofuzz-'));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ not json');
    expect(() => readRepro(bad)).toThrow(/bad\.json: not valid JSON/);
    writeFileSync(bad, JSON.stringify({ ...example, ops: [{ op: 'accept', gpa: '0x1', size: '4K' }] }));
    expect(() => readRepro(bad)).toThrow(/bad\.json: ops\[0\]\.gpa/);
    expect(() => readRepro(join(dir, 'missing.json'))).toThrow(/missing\.json: cannot read: ENOENT/);
  });

  it('writes atomically, leaving no temp files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cocofuzz-'));
    const file = join(dir, 'r.json');
    writeRepro(file, parseRepro(example));
    writeRepro(file, parseRepro(example));
    expect(readdirSync(dir)).toEqual(['r.json']);
    expect(readRepro(file).title).toBe(example.title);
    expect(readFileSync(file, 'utf8').endsWith('\n')).toBe(true);
  });
});
