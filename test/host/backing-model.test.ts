// Backing keeps its state as runs (src/host/backing.ts): checked against a page-by-page model of
// the same rules, through random histories of every writer. The model: a page leaving the shared
// state discards its VMM frame, pages in page order; a shared page's frame is what it was given
// (a 2M chunk's frames for a region shared whole); a region keeps its chunk until one of its pages
// changes. Compared after every step: each page's state and frame, each region's counts and
// chunk, the frames discarded (in order), runEnd() from every page, and collect() of both states.

import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { Backing, type BackedRun, GMEM_BASE, NOT_BACKED, PRIVATE, SHARED } from '../../src/host/backing.ts';
import type { HostFrames } from '../../src/host/frames.ts';
import { GraphCopy } from '../../src/model/graph-copy.ts';
import { FRAMES_PER_2M, SZ_2M, SZ_4K } from '../../src/model/size.ts';

const REGIONS = 4;
const PAGES = REGIONS * FRAMES_PER_2M;
const VMM = 0x10_0000_0000;

/**
 * The frames a shared page gets: a pure function of its GFN, contiguous for seven pages at a time
 * and then a jump, so runs of frames end inside regions as well as at their ends.
 */
const frameOf = (gfn: number): number => VMM + (gfn + Math.floor(gfn / 7) * 3) * SZ_4K;

class FakeFrames {
  discarded: number[] = [];
  sharedRunHpa = 0;
  sharedFrameFor(gfn: number): number {
    return frameOf(gfn);
  }
  sharedFrameRun(gfn: number, count: number): number {
    // HostFrames.sharedFrameRun() answers within one 2M region.
    if (Math.floor(gfn / FRAMES_PER_2M) !== Math.floor((gfn + count - 1) / FRAMES_PER_2M)) throw new Error(`sharedFrameRun(${gfn}, ${count}) crosses a 2M region`);
    this.sharedRunHpa = frameOf(gfn);
    let n = 1;
    while (n < count && frameOf(gfn + n) === this.sharedRunHpa + n * SZ_4K) n++;
    return n;
  }
  discardShared(hpa: number): void {
    this.discarded.push(hpa);
  }
  discardSharedRange(hpa: number, frames: number): void {
    for (let i = 0; i < frames; i++) this.discarded.push(hpa + i * SZ_4K);
  }
}

/** The rules page by page. */
class Model {
  state = new Array<number>(PAGES).fill(NOT_BACKED);
  frame = new Array<number | undefined>(PAGES).fill(undefined);
  chunk = new Array<number | undefined>(REGIONS).fill(undefined);
  discarded: number[] = [];

  set(gfn: number, next: number, hpa?: number): void {
    if (this.state[gfn] === SHARED) {
      this.discarded.push(this.frame[gfn]!);
      this.frame[gfn] = undefined;
      this.chunk[Math.floor(gfn / FRAMES_PER_2M)] = undefined;
    }
    this.state[gfn] = next;
    if (next === SHARED) this.frame[gfn] = hpa ?? frameOf(gfn);
  }

  setSharedChunk(index: number, hpa: number): void {
    for (let i = 0; i < FRAMES_PER_2M; i++) this.set(index * FRAMES_PER_2M + i, SHARED, hpa + i * SZ_4K);
    this.chunk[index] = hpa;
  }

  hpaOf(gfn: number): number {
    const state = this.state[gfn];
    return state === NOT_BACKED ? -1 : state === SHARED ? this.frame[gfn]! : GMEM_BASE + gfn * SZ_4K;
  }

  collect(from: number, to: number, want: number): BackedRun[] {
    const out: BackedRun[] = [];
    for (let gfn = from; gfn < to; gfn++) {
      if (this.state[gfn] !== want) continue;
      const hpa = this.hpaOf(gfn);
      const last = out[out.length - 1];
      if (last !== undefined && last.gpa + last.len === gfn * SZ_4K && last.hpa + last.len === hpa) last.len += SZ_4K;
      else out.push({ gpa: gfn * SZ_4K, len: SZ_4K, hpa });
    }
    return out;
  }
}

function compare(backing: Backing, frames: FakeFrames, model: Model): void {
  const pages = Array.from({ length: PAGES }, (_, gfn) => `${backing.state(gfn)}:${backing.sharedFrame(gfn) ?? '-'}`);
  expect(pages).toEqual(Array.from({ length: PAGES }, (_, gfn) => `${model.state[gfn]}:${model.frame[gfn] ?? '-'}`));
  for (let index = 0; index < REGIONS; index++) {
    const states = model.state.slice(index * FRAMES_PER_2M, (index + 1) * FRAMES_PER_2M);
    expect([backing.privateCount(index), backing.sharedCount(index), backing.chunk(index)]).toEqual([
      states.filter((s) => s === PRIVATE).length,
      states.filter((s) => s === SHARED).length,
      model.chunk[index],
    ]);
  }
  expect(frames.discarded).toEqual(model.discarded);
  // runEnd(): the end of each run of one state and linear frames, from every page.
  for (let gfn = 0; gfn < PAGES; gfn++) {
    let end = gfn + 1;
    const first = model.hpaOf(gfn);
    while (end < PAGES && model.state[end] === model.state[gfn] && (first < 0 ? model.hpaOf(end) < 0 : model.hpaOf(end) === first + (end - gfn) * SZ_4K)) end++;
    if (backing.runEnd(gfn, PAGES) !== end) expect([gfn, backing.runEnd(gfn, PAGES)]).toEqual([gfn, end]);
  }
  // allIn() over each region, each half region and the whole span.
  for (const [from, to] of [[0, PAGES], ...Array.from({ length: 2 * REGIONS }, (_, h) => [h * 256, (h + 1) * 256]), ...Array.from({ length: REGIONS }, (_, r) => [r * 512, (r + 1) * 512])]) {
    for (const want of [NOT_BACKED, PRIVATE, SHARED] as const) expect([from, want, backing.allIn(from!, to!, want)]).toEqual([from, want, model.state.slice(from, to).every((s) => s === want)]);
  }
  for (const want of [PRIVATE, SHARED] as const) expect(backing.collect(100, PAGES - 100, want, [])).toEqual(model.collect(100, PAGES - 100, want));
}

describe('Backing as runs', () => {
  it('answers as the page-by-page rules do through random histories of set, setRange, shareEach and setSharedChunk', () => {
    for (let seed = 0; seed < 25; seed++) {
      const random = seedrandom(`backing-runs/${seed}`);
      const pick = (n: number): number => Math.floor(random() * n);
      const frames = new FakeFrames();
      let backing = new Backing(REGIONS * SZ_2M, true, frames as unknown as HostFrames);
      const model = new Model();
      for (let step = 0; step < 40; step++) {
        const gfn = pick(PAGES);
        const end = Math.min(PAGES, gfn + 1 + pick(random() < 0.3 ? 3 : 2 * FRAMES_PER_2M));
        const kind = pick(6);
        if (kind === 0) {
          const next = pick(3) as 0 | 1 | 2;
          backing.set(gfn, next);
          model.set(gfn, next);
        } else if (kind === 1 || kind === 2) {
          const next = kind === 1 ? PRIVATE : NOT_BACKED;
          backing.setRange(gfn, end - gfn, next);
          for (let g = gfn; g < end; g++) model.set(g, next);
        } else if (kind === 3) {
          // The runs of frames the newly shared pages got, in page order.
          const expected: BackedRun[] = [];
          for (let g = gfn; g < end; g++) {
            if (model.state[g] === SHARED) continue;
            model.set(g, SHARED);
            const last = expected[expected.length - 1];
            if (last !== undefined && last.gpa + last.len === g * SZ_4K && last.hpa + last.len === frameOf(g)) last.len += SZ_4K;
            else expected.push({ gpa: g * SZ_4K, len: SZ_4K, hpa: frameOf(g) });
          }
          const out: BackedRun[] = [];
          backing.shareEach(gfn, end, out);
          expect(out).toEqual(expected);
        } else if (kind === 4) {
          const index = pick(REGIONS);
          const hpa = VMM + (64 + pick(8)) * SZ_2M;
          backing.setSharedChunk(index, hpa);
          model.setSharedChunk(index, hpa);
        } else {
          // A boot-cache copy carries on where the original was (with the same frames: the
          // world's copy copies them too).
          const copy = new GraphCopy();
          copy.substitute(frames, frames);
          backing = copy.copy(backing);
        }
        try {
          compare(backing, frames, model);
        } catch (e) {
          throw new Error(`seed ${seed} step ${step} kind ${kind}: ${String(e).slice(0, 300)}`, { cause: e });
        }
      }
    }
  });
});
