import { describe, expect, it } from 'vitest';
import { Backing, NOT_BACKED, PRIVATE, SHARED } from '../../src/host/backing.ts';
import type { HostFrames } from '../../src/host/frames.ts';
import { GraphCopy } from '../../src/model/graph-copy.ts';
import { FRAMES_PER_2M, SZ_2M, SZ_4K } from '../../src/model/size.ts';

// A boot-cache template's Backing is copied per case (model/graph-copy.ts): a copy's writes must
// never reach the template, and a copy must answer as the template would have. Every path of
// setRange(), set() and setSharedChunk() on every kind of region (all private, shared as one
// chunk, shared page by page, mixed, emptied).

/** The frames Backing asks for: a shared page's frame, and the frames it discards. */
class FakeFrames {
  discarded: number[] = [];
  sharedFrameFor(gfn: number): number {
    return 0x10_0000_0000 + gfn * SZ_4K;
  }
  discardShared(hpa: number): void {
    this.discarded.push(hpa);
  }
  discardSharedRange(hpa: number, frames: number): void {
    for (let i = 0; i < frames; i++) this.discarded.push(hpa + i * SZ_4K);
  }
}

const REGIONS = 5;

/** Every page's backing state and shared frame. */
function snapshot(backing: Backing): string {
  const out: string[] = [];
  for (let gfn = 0; gfn < REGIONS * FRAMES_PER_2M; gfn++) out.push(`${backing.state(gfn)}:${backing.sharedFrame(gfn) ?? '-'}`);
  for (let index = 0; index < REGIONS; index++) out.push(`${index}:${backing.privateCount(index)}/${backing.sharedCount(index)}/${backing.chunk(index) ?? '-'}`);
  return out.join(',');
}

/** A template whose regions are in each state setRange() tells apart. */
function template(): Backing {
  const backing = new Backing(REGIONS * SZ_2M, true, new FakeFrames() as unknown as HostFrames);
  backing.setRange(0, FRAMES_PER_2M, PRIVATE); // region 0: all private
  backing.setSharedChunk(1, 0x20_0000_0000); // region 1: shared as one 2M chunk
  for (let gfn = 2 * FRAMES_PER_2M; gfn < 3 * FRAMES_PER_2M; gfn++) backing.set(gfn, SHARED); // region 2: shared page by page
  backing.set(3 * FRAMES_PER_2M + 7, PRIVATE); // region 3: mixed
  backing.set(3 * FRAMES_PER_2M + 9, SHARED);
  backing.setRange(4 * FRAMES_PER_2M, FRAMES_PER_2M, PRIVATE); // region 4: all private, then emptied
  backing.setRange(4 * FRAMES_PER_2M, FRAMES_PER_2M, NOT_BACKED);
  return backing;
}

describe('Backing copy-on-write (boot-cache templates)', () => {
  it('leaves the template unchanged whatever setRange, set and setSharedChunk do to a copy', () => {
    const original = template();
    const before = snapshot(original);
    const copy = new GraphCopy().copy(original);
    expect(snapshot(copy)).toBe(before);
    copy.setRange(0, FRAMES_PER_2M, NOT_BACKED); // whole private region -> not backed
    copy.setRange(FRAMES_PER_2M, FRAMES_PER_2M, PRIVATE); // whole chunk-shared region -> private
    copy.setRange(2 * FRAMES_PER_2M, FRAMES_PER_2M, NOT_BACKED); // whole page-shared region
    copy.setRange(3 * FRAMES_PER_2M, 16, PRIVATE); // part of a mixed region, page by page
    copy.setRange(4 * FRAMES_PER_2M, FRAMES_PER_2M, PRIVATE); // whole empty region
    expect(snapshot(copy)).not.toBe(before);
    expect(snapshot(original)).toBe(before);
    // The other writers too, on a second copy.
    const other = new GraphCopy().copy(original);
    other.setSharedChunk(0, 0x30_0000_0000);
    other.setSharedChunk(3, 0x30_0020_0000);
    other.set(FRAMES_PER_2M + 5, PRIVATE);
    other.set(2 * FRAMES_PER_2M + 5, NOT_BACKED);
    expect(snapshot(original)).toBe(before);
  });

  it('gives a copy the same results as the template would have given', () => {
    const copy = new GraphCopy().copy(template());
    const fresh = template();
    for (const backing of [copy, fresh]) {
      backing.setRange(0, 2 * FRAMES_PER_2M, NOT_BACKED);
      backing.setRange(2 * FRAMES_PER_2M, FRAMES_PER_2M + 3, PRIVATE);
      backing.setSharedChunk(4, 0x40_0000_0000);
    }
    expect(snapshot(copy)).toBe(snapshot(fresh));
  });
});
