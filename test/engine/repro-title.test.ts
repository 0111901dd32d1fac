import { describe, expect, it } from 'vitest';
import { clipTitle, reproTitle } from '../../src/engine/case-job.ts';

describe('repro titles', () => {
  it('a long one ends at a word, marked cut, within 160 characters', () => {
    const message = 'interleaved after call 2 of alloc_coherent: trusted DMA read by dev 0 to map 2 at 0x200000 len 64: at 0x200000: S2[4K] -- [4K] --> RMP[2M] ==> FAIL (size mismatch)';
    const title = reproTitle({ oracle: 'dma-liveness', severity: 'liveness', step: 4, message });
    expect(title.length).toBeLessThanOrEqual(160);
    expect(title.endsWith('==>\u2026')).toBe(true);
    expect(`dma-liveness: ${message}`.startsWith(title.slice(0, -1))).toBe(true);
  });

  it('a short one is unchanged, and a long word is cut where it must be', () => {
    expect(clipTitle('io-s2-rmp-size: size mismatch')).toBe('io-s2-rmp-size: size mismatch');
    const word = 'x'.repeat(300);
    expect(clipTitle(word)).toBe(`${'x'.repeat(159)}\u2026`);
  });
});
