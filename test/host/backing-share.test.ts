// Backing.shareEach (the host's conversion to shared of a region's pages in one pass) against the
// page-by-page loop it replaced: set(gfn, SHARED) for each page not shared yet, reading the new
// frame back and merging it into the last run. Both sides start from the same random backing
// (pages private, shared, not backed, RAM discarded) over their own HostFrames, so the frames
// the free pool hands out must come in the same order too.

import { describe, expect, it } from 'vitest';
import { Backing, type BackedRun, NOT_BACKED, PRIVATE, SHARED, VMM_RAM_BASE } from '../../src/host/backing.ts';
import { HostFrames } from '../../src/host/frames.ts';
import { Machine } from '../../src/model/machine.ts';
import { FRAMES_PER_2M, SZ_4K } from '../../src/model/size.ts';
import seedrandom from 'seedrandom';

const MEMORY = 16 * 1024 * 1024;
const PAGES = MEMORY / SZ_4K;

function side(): { backing: Backing; frames: HostFrames } {
  const frames = new HostFrames(new Machine({ asid: 1, vtom: MEMORY, devices: [] }), MEMORY, 'on-private');
  return { backing: new Backing(MEMORY, true, frames), frames };
}

/** The loop toShared() ran before shareEach(). */
function sharePageByPage(backing: Backing, gfn: number, end: number, out: BackedRun[]): void {
  for (; gfn < end; gfn++) {
    if (backing.state(gfn) === SHARED) continue;
    backing.set(gfn, SHARED);
    const gpa = gfn * SZ_4K;
    const hpa = backing.sharedFrame(gfn) ?? 0;
    const last = out[out.length - 1];
    if (last !== undefined && last.gpa + last.len === gpa && last.hpa + last.len === hpa) last.len += SZ_4K;
    else out.push({ gpa, len: SZ_4K, hpa });
  }
}

describe('Backing.shareEach', () => {
  it('shares the pages and hands out the frames the page-by-page loop did, in the same runs', () => {
    let runs = 0;
    let discarded = 0;
    for (let seed = 0; seed < 40; seed++) {
      const random = seedrandom(`share-each/${seed}`);
      const pick = (n: number): number => Math.floor(random() * n);
      const one = side();
      const each = side();
      // The same history on both sides: backing changes and RAM discards.
      for (let step = 0; step < 30; step++) {
        const gfn = pick(PAGES);
        const pages = 1 + pick(3 * FRAMES_PER_2M);
        const end = Math.min(PAGES, gfn + pages);
        const kind = pick(4);
        for (const { backing, frames } of [one, each]) {
          if (kind === 0) backing.setRange(gfn, end - gfn, PRIVATE);
          else if (kind === 1) backing.setRange(gfn, end - gfn, NOT_BACKED);
          else if (kind === 2) frames.discardRam(gfn * SZ_4K, (end - gfn) * SZ_4K);
          else for (let g = gfn; g < end; g += 1 + (g % 3)) backing.set(g, SHARED);
        }
      }
      const gfn = pick(PAGES);
      const end = Math.min(PAGES, gfn + 1 + pick(2 * FRAMES_PER_2M));
      const expected: BackedRun[] = [];
      const actual: BackedRun[] = [];
      sharePageByPage(one.backing, gfn, end, expected);
      each.backing.shareEach(gfn, end, actual);
      expect(actual, `seed ${seed}`).toEqual(expected);
      runs += expected.length;
      // Runs not on the pages' own RAM frames (those were discarded): frames from the free pool.
      for (const run of expected) if (run.hpa !== VMM_RAM_BASE + run.gpa) discarded++;
      for (let g = 0; g < PAGES; g++) {
        if (one.backing.state(g) !== each.backing.state(g) || one.backing.sharedFrame(g) !== each.backing.sharedFrame(g)) {
          expect.fail(`seed ${seed}: page ${g} differs`);
        }
      }
      // The next frame each pool hands out is the same as well.
      expect(each.frames.sharedFrameFor(PAGES - 1)).toBe(one.frames.sharedFrameFor(PAGES - 1));
    }
    expect(runs).toBeGreaterThan(40);
    expect(discarded).toBeGreaterThan(0);
  });

  it('takes fresh frames, as the page-by-page loop does, where the pool holds only frames a device still pins', () => {
    const one = side();
    const each = side();
    for (const { backing, frames } of [one, each]) {
      // A static VFIO map pins the RAM block's first 4M; the conversion to private discards it,
      // but the pins keep its frames out of the free pool (they stay queued, owned).
      frames.observe({ prim: 'io_map', args: { dev: 0, gpa: 0, hpa: VMM_RAM_BASE, len: 2 * FRAMES_PER_2M * SZ_4K }, result: 2 * FRAMES_PER_2M * SZ_4K });
      frames.discardRam(0, 2 * FRAMES_PER_2M * SZ_4K);
      backing.setRange(0, 2 * FRAMES_PER_2M, PRIVATE);
    }
    const expected: BackedRun[] = [];
    const actual: BackedRun[] = [];
    sharePageByPage(one.backing, 100, 2 * FRAMES_PER_2M, expected);
    each.backing.shareEach(100, 2 * FRAMES_PER_2M, actual);
    expect(actual).toEqual(expected);
    // Fresh memory, past the RAM block: two runs, one per 2M chunk of frames at most.
    expect(expected[0]!.hpa).toBeGreaterThanOrEqual(VMM_RAM_BASE + MEMORY);
    expect(each.frames.sharedFrameFor(PAGES - 1)).toBe(one.frames.sharedFrameFor(PAGES - 1));
  });
});
