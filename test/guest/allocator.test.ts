import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { PageAllocator } from '../../src/guest/allocator.ts';

describe('PageAllocator ranges', () => {
  it('takeRange/releaseRange and runEnd agree with the per-page take/release/isFree', () => {
    const random = seedrandom('allocator-ranges');
    const total = 6 * 512 + 100;
    const reserved = [
      { start: 0, end: 256 },
      { start: 1500, end: 2100 },
    ];
    const ranged = new PageAllocator(total, reserved);
    const paged = new PageAllocator(total, reserved);
    for (let round = 0; round < 300; round++) {
      const start = random() < 0.3 ? Math.floor(random() * 6) * 512 : Math.floor(random() * total);
      const end = Math.min(total, start + (random() < 0.3 ? 512 * (1 + Math.floor(random() * 2)) : 1 + Math.floor(random() * 300)));
      // Ranges of free pages only are taken (as share does); any range may be released.
      if (random() < 0.5) {
        const freeEnd = ranged.runEnd(start, end, true);
        if (!ranged.isFree(start)) continue;
        ranged.takeRange(start, freeEnd);
        for (let g = start; g < freeEnd; g++) paged.take(g);
      } else {
        ranged.releaseRange(start, end);
        for (let g = start; g < end; g++) paged.release(g);
      }
      const problems: string[] = [];
      for (let g = 0; g < total + 10; g++) if (ranged.isFree(g) !== paged.isFree(g)) problems.push(`page ${g}`);
      for (let g = 0; g < total + 10; ) {
        const free = paged.isFree(g);
        const end2 = ranged.runEnd(g, total + 10, free);
        for (let h = g; h <= Math.min(end2, total + 9); h++) if ((paged.isFree(h) === free) !== h < end2) problems.push(`run ${g}..${end2} at ${h}`);
        g = end2;
      }
      expect(problems.slice(0, 3)).toEqual([]);
    }
  });
});
