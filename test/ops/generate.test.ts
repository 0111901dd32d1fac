import { describe, expect, it } from 'vitest';
import { encodeOp, parseOp } from '../../src/ops/codec.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import { DEFAULT_STEPS, caseSeed, generateCase } from '../../src/ops/generate.ts';

describe('seeded generator', () => {
  const config = defaultConfig();

  it('gives the same ops for the same seed and different ops for another', () => {
    const a = generateCase(config, 'night/1', { steps: 64 });
    const b = generateCase(config, 'night/1', { steps: 64 });
    const c = generateCase(config, 'night/2', { steps: 64 });
    expect(a.ops).toEqual(b.ops);
    expect(a.ops).not.toEqual(c.ops);
  });

  it('derives case seeds from the campaign seed and index', () => {
    expect(caseSeed('nightly', 17)).toBe('nightly/17');
  });

  it('only generates valid ops, within the guest, without adversary ops unless enabled', () => {
    for (let i = 0; i < 50; i++) {
      const testCase = generateCase(config, `valid/${i}`, { steps: 100 });
      expect(testCase.ops.length).toBeGreaterThanOrEqual(1);
      expect(testCase.ops.length).toBeLessThanOrEqual(100);
      testCase.ops.forEach((op, index) => {
        expect(parseOp(encodeOp(op), `ops[${index}]`, config)).toEqual(op);
        expect(op.op.startsWith('hw_')).toBe(false);
        if ('gpa' in op) expect(op.gpa).toBeLessThan(config.guestMemory);
      });
    }
  });

  it('keeps every address inside the guest when the swiotlb pool is larger than low memory', () => {
    // A 32G pool cannot sit below 4G: its placement starts at 0, and the pool-start edge once came
    // out negative (top - 20K - pool), so the generator drew `accept gpa=-0x6ffe00000`.
    const big = { ...config, guestMemory: 64 * 1024 ** 3, vtom: 64 * 1024 ** 3, swiotlb: 32 * 1024 ** 3 };
    for (let i = 0; i < 200; i++) {
      for (const op of generateCase(big, `big-pool/${i}`, { steps: 64 }).ops) {
        if ('gpa' in op) expect(op.gpa).toBeGreaterThanOrEqual(0);
        if ('gpa' in op) expect(op.gpa).toBeLessThan(big.guestMemory);
      }
    }
  });

  it('swarm mode varies the enabled op kinds between cases; pinned weights hold', () => {
    const kinds = new Set<string>();
    for (let i = 0; i < 20; i++) kinds.add([...new Set(generateCase(config, `swarm/${i}`, { steps: 64 }).ops.map((o) => o.op))].sort().join(','));
    expect(kinds.size).toBeGreaterThan(10);
    const pinned = generateCase(config, 'pinned', { steps: 200, fullLength: true, weights: { dma: 20, accept: 0 }, swarm: true });
    expect(pinned.ops.some((o) => o.op === 'dma')).toBe(true);
    expect(pinned.ops.some((o) => o.op === 'accept')).toBe(false);
    const flat = generateCase(config, 'flat', { steps: 400, fullLength: true, swarm: false });
    expect(new Set(flat.ops.map((o) => o.op)).size).toBeGreaterThanOrEqual(12);
  });

  it('draws most cases short and a tenth at the full --steps', () => {
    const lengths = Array.from({ length: 1000 }, (_, i) => generateCase(config, `len/${i}`, { steps: DEFAULT_STEPS }).ops.length);
    const full = lengths.filter((n) => n === DEFAULT_STEPS).length;
    expect(full).toBeGreaterThan(60);
    expect(full).toBeLessThan(150);
    expect(lengths.filter((n) => n <= DEFAULT_STEPS / 4).length).toBeGreaterThan(700);
    expect(Math.min(...lengths)).toBe(1);
  });

  it('biases sizes to the edges: allocations reach the swiotlb pool, map_single stays within dma_max_mapping_size()', () => {
    const ops = Array.from({ length: 300 }, (_, i) => generateCase(config, `edges/${i}`, { steps: 100, fullLength: true }).ops).flat();
    const alloc = new Set(ops.flatMap((o) => (o.op === 'alloc_coherent' ? [o.bytes] : [])));
    const mapped = ops.flatMap((o) => (o.op === 'map_single' ? [o.bytes] : []));
    const lens = new Set(ops.flatMap((o) => (o.op === 'dma' ? [o.len] : [])));
    for (const edge of [1, 4095, 4096, 4097, 2 * 2 ** 20 - 4096, 2 * 2 ** 20, 2 * 2 ** 20 + 4096]) {
      expect(alloc, `alloc_coherent ${edge}`).toContain(edge);
      expect(lens, `dma len ${edge}`).toContain(edge);
    }
    // The default 64M guest has an 8M swiotlb pool: one allocation may take it whole.
    expect(alloc).toContain(config.swiotlb);
    expect(Math.max(...mapped)).toBe(256 * 1024);
    expect(ops.some((o) => o.op === 'dma' && o.offset !== undefined)).toBe(true);
    // The last page of guest memory is aimed at.
    expect(ops.some((o) => 'gpa' in o && o.gpa === config.guestMemory - 4096)).toBe(true);
  });
});
