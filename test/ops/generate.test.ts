import { describe, expect, it } from 'vitest';
import { encodeOp, parseOp } from '../../src/ops/codec.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import { caseSeed, generateCase } from '../../src/ops/generate.ts';

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
      expect(testCase.ops.length).toBeGreaterThanOrEqual(50);
      expect(testCase.ops.length).toBeLessThanOrEqual(100);
      testCase.ops.forEach((op, index) => {
        expect(parseOp(encodeOp(op), `ops[${index}]`, config)).toEqual(op);
        expect(op.op.startsWith('hw_')).toBe(false);
        if ('gpa' in op) expect(op.gpa).toBeLessThan(config.guestMemory);
      });
    }
  });

  it('swarm mode varies the enabled op kinds between cases; pinned weights hold', () => {
    const kinds = new Set<string>();
    for (let i = 0; i < 20; i++) kinds.add([...new Set(generateCase(config, `swarm/${i}`, { steps: 64 }).ops.map((o) => o.op))].sort().join(','));
    expect(kinds.size).toBeGreaterThan(10);
    const pinned = generateCase(config, 'pinned', { steps: 200, weights: { dma: 20, accept: 0 }, swarm: true });
    expect(pinned.ops.some((o) => o.op === 'dma')).toBe(true);
    expect(pinned.ops.some((o) => o.op === 'accept')).toBe(false);
    const flat = generateCase(config, 'flat', { steps: 400, swarm: false });
    expect(new Set(flat.ops.map((o) => o.op)).size).toBeGreaterThanOrEqual(12);
  });
});
