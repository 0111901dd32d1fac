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

/** The allocator's contract page by page: a set of busy pages, first fit by scanning aligned blocks. */
class PerPageAllocator {
  private readonly busy = new Set<number>();
  constructor(
    private readonly totalPages: number,
    private readonly reserved: readonly { start: number; end: number }[],
  ) {}
  isFree(gfn: number): boolean {
    return gfn >= 0 && gfn < this.totalPages && !this.busy.has(gfn) && !this.reserved.some((r) => gfn >= r.start && gfn < r.end);
  }
  alloc(order: number, limit = this.totalPages): number | undefined {
    const size = 2 ** order;
    for (let gfn = 0; gfn + size <= Math.min(limit, this.totalPages); gfn += size) {
      let free = true;
      for (let g = gfn; g < gfn + size && free; g++) free = this.isFree(g);
      if (!free) continue;
      for (let g = gfn; g < gfn + size; g++) this.busy.add(g);
      return gfn;
    }
    return undefined;
  }
  free(gfn: number, order: number): void {
    for (let g = gfn; g < gfn + 2 ** order; g++) this.busy.delete(g);
  }
  take(gfn: number): boolean {
    if (!this.isFree(gfn)) return false;
    this.busy.add(gfn);
    return true;
  }
  release(gfn: number): void {
    this.busy.delete(gfn);
  }
}

describe('PageAllocator against a page-by-page allocator', () => {
  it('hands out the same blocks and answers isFree and runEnd alike, on random sequences', () => {
    const problems: string[] = [];
    for (let seed = 1; seed <= 12; seed++) {
      const random = seedrandom(`allocator-model-${seed}`);
      const total = 5 * 512 + 37;
      const reserved = [
        { start: 0, end: 16 },
        { start: 700, end: 1100 },
        { start: 2000, end: 2001 },
      ];
      const allocator = new PageAllocator(total, reserved);
      const model = new PerPageAllocator(total, reserved);
      const blocks: { gfn: number; order: number }[] = [];
      for (let step = 0; step < 250; step++) {
        const r = random();
        if (r < 0.45) {
          const order = Math.floor(random() * 11);
          const limit = random() < 0.2 ? Math.floor(random() * total) : undefined;
          const a = allocator.alloc(order, limit);
          const b = model.alloc(order, limit);
          if (a !== b) problems.push(`seed ${seed} step ${step}: alloc(${order}, ${limit}) = ${a}, per page ${b}`);
          if (b !== undefined) blocks.push({ gfn: b, order });
        } else if (r < 0.7 && blocks.length > 0) {
          const [block] = blocks.splice(Math.floor(random() * blocks.length), 1);
          allocator.free(block!.gfn, block!.order);
          model.free(block!.gfn, block!.order);
        } else if (r < 0.85) {
          const gfn = Math.floor(random() * (total + 5));
          const a = allocator.take(gfn);
          if (a !== model.take(gfn)) problems.push(`seed ${seed} step ${step}: take(${gfn})`);
        } else {
          const gfn = Math.floor(random() * total);
          allocator.release(gfn);
          model.release(gfn);
        }
        if (step % 10 !== 0) continue;
        for (let g = -1; g < total + 3; g++) if (allocator.isFree(g) !== model.isFree(g)) problems.push(`seed ${seed} step ${step}: isFree(${g})`);
        for (const free of [true, false]) {
          for (let g = 0; g < total + 3; g += 1 + Math.floor(random() * 40)) {
            const limit = g + 1 + Math.floor(random() * 900);
            let want = g;
            while (want < limit && model.isFree(want) === free) want++;
            const got = allocator.runEnd(g, limit, free);
            if (got !== want) problems.push(`seed ${seed} step ${step}: runEnd(${g}, ${limit}, ${free}) = ${got}, per page ${want}`);
          }
        }
      }
    }
    expect(problems.slice(0, 5)).toEqual([]);
  });
});
