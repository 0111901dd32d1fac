// lib/live-slots.ts follows the swiotlb pool's live slot ranges through SwiotlbView.changesSince()
// (API v3); swiotlb-slots and swiotlb-shared judge what it says is new. Checked against
// liveMappings() listed anew (the brute-force reference), and the oracle against itself on a
// pool whose change log is never available (every look lists the ranges again).

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { CoherentBuffer, Finding, Step, StreamingMapping, SwiotlbSlotRange, SwiotlbView, View } from '../../src/api.ts';
import { SwiotlbPool, type SwiotlbMapping } from '../../src/guest/swiotlb.ts';
import { LiveSlots } from '../../oracles/lib/live-slots.ts';
import swiotlbSlots from '../../oracles/swiotlb-slots.ts';

const KiB = 1024;
const BASE = 0x1_4000_0000;

type Op = { op: 'map'; size: number; min: number } | { op: 'release'; pick: number } | { op: 'look'; who: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant('map' as const), size: fc.integer({ min: 1, max: 40 * KiB }), min: fc.constantFrom(0, 0x7ff, 0xfff) }), weight: 4 },
  { arbitrary: fc.record({ op: fc.constant('release' as const), pick: fc.nat() }), weight: 4 },
  { arbitrary: fc.record({ op: fc.constant('look' as const), who: fc.nat(2) }), weight: 3 },
);

const key = (r: { slotIndex: number; nslots: number; tlbAddr: number; allocSize: number }): string => `${r.slotIndex},${r.nslots},${r.tlbAddr},${r.allocSize}`;

function listed(slots: LiveSlots): string[] {
  const out: string[] = [];
  for (let i = 0; i < slots.count; i++) out.push(key({ slotIndex: slots.slotIndex[i]!, nslots: slots.nslots[i]!, tlbAddr: slots.tlbAddr[i]!, allocSize: slots.allocSize[i]! }));
  return out;
}

describe('LiveSlots', () => {
  it('holds the live ranges in liveMappings() order, and as new exactly those whose numbers were not live at the last look', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 10, maxLength: 300 }), (ops) => {
        const pool = new SwiotlbPool({ base: BASE, bytes: 512 * KiB, cpus: 2 });
        const live: SwiotlbMapping[] = [];
        // Three readers of one pool, each looking when it likes (some fall more than 64 changes behind).
        const readers = [0, 1, 2].map(() => ({ slots: new LiveSlots(), before: [] as string[] }));
        for (const op of ops) {
          if (op.op === 'map') {
            const r = pool.find(0x1000_0000 + live.length * 0x3_0801, op.size, { minAlignMask: op.min });
            if (r.ok) live.push(r);
          } else if (op.op === 'release') {
            if (live.length === 0) continue;
            const [m] = live.splice(op.pick % live.length, 1);
            pool.release(m!.tlbAddr);
          } else {
            const reader = readers[op.who]!;
            const now = pool.liveMappings().map(key);
            const seen = reader.slots.generation;
            const changed = reader.slots.follow(pool);
            expect(listed(reader.slots)).toEqual(now);
            if (now.join(' ') !== reader.before.join(' ')) expect(changed).toBe(true);
            if (pool.generation === seen) expect(changed).toBe(false);
            const fresh = [];
            for (let i = 0; i < reader.slots.count; i++) if (reader.slots.isFresh(i)) fresh.push(now[i]);
            expect(fresh).toEqual(now.filter((k) => !reader.before.includes(k)));
            reader.before = now;
          }
        }
      }),
      { numRuns: 150 },
    );
  });
});

// ---- swiotlb-slots on a pool made by hand: ranges that overlap, leave the pool, outgrow their slots.

interface FakeRange extends SwiotlbSlotRange {
  head: number;
}

/** A SwiotlbView over ranges the test sets: with a change log, or without one (changesSince() always -1). */
class FakeSwiotlb implements SwiotlbView {
  readonly base = BASE;
  readonly nslabs = 256;
  readonly end = BASE + 256 * 2048;
  generation = 0;
  private live: FakeRange[] = [];
  private readonly log: { generation: number; numbers: number[] }[] = [];
  constructor(private readonly logged: boolean) {}

  add(range: FakeRange): void {
    this.live.push(range);
    this.live.sort((a, b) => a.head - b.head);
    this.log.push({ generation: ++this.generation, numbers: [1, range.slotIndex, range.nslots, range.tlbAddr, range.allocSize] });
  }
  remove(index: number): FakeRange {
    const [range] = this.live.splice(index % this.live.length, 1);
    this.log.push({ generation: ++this.generation, numbers: [-1, range!.slotIndex, range!.nslots, range!.tlbAddr, range!.allocSize] });
    return range!;
  }
  get count(): number {
    return this.live.length;
  }
  liveMappings(): Iterable<SwiotlbSlotRange> {
    return this.live.map(({ slotIndex, nslots, tlbAddr, allocSize }) => ({ slotIndex, nslots, tlbAddr, allocSize }));
  }
  changesSince(generation: number, out: number[]): number {
    if (!this.logged) return -1;
    let n = 0;
    for (const change of this.log) if (change.generation > generation) for (const x of change.numbers) out[n++] = x;
    return n;
  }
  maxMappingSize(): number {
    return 256 * KiB;
  }
}

function fakeView(swiotlb: FakeSwiotlb): View {
  const mappings: StreamingMapping[] = [];
  const buffers: CoherentBuffer[] = [];
  return { guest: { swiotlb, mappings, buffers } } as unknown as View;
}

const messages = (findings: readonly Finding[] | undefined | void): string[] => (findings ?? []).map((f) => f.message);

describe('swiotlb-slots on slot ranges', () => {
  const rangeArb = fc.record({ head: fc.integer({ min: -4, max: 300 }), pad: fc.nat(2), nslots: fc.integer({ min: 1, max: 12 }), offset: fc.nat(2047), allocSize: fc.integer({ min: 1, max: 30 * KiB }) });
  const stepArb = fc.oneof(rangeArb.map((r) => ({ add: r })), fc.nat().map((pick) => ({ remove: pick })), fc.constant({ look: true }));

  it('judges the ranges the change log says are new as it judges them from a fresh listing', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 5, maxLength: 120 }), (steps) => {
        const withLog = new FakeSwiotlb(true);
        const without = new FakeSwiotlb(false);
        const views = [fakeView(withLog), fakeView(without)];
        const heads = new Set<number>();
        const step = {} as Step;
        for (const s of steps) {
          if ('add' in s) {
            const { head, pad, nslots, offset, allocSize } = s.add;
            // One live allocation per head slot, as in the pool (tlbAddr lies in its head slot).
            if (heads.has(head)) continue;
            heads.add(head);
            const range = { head, slotIndex: head - pad, nslots, tlbAddr: BASE + head * 2048 + offset, allocSize };
            withLog.add(range);
            without.add(range);
          } else if ('remove' in s) {
            if (withLog.count === 0) continue;
            heads.delete(withLog.remove(s.remove).head);
            without.remove(s.remove);
          }
          // Looked at after every step, as the engine does (a step that changed nothing included).
          expect(messages(swiotlbSlots.check(views[0]!, step))).toEqual(messages(swiotlbSlots.check(views[1]!, step)));
        }
        expect(messages(swiotlbSlots.final!(views[0]!))).toEqual(messages(swiotlbSlots.final!(views[1]!)));
      }),
      { numRuns: 200 },
    );
  });

  it('calls a range released and made again just as it was not new, one made and released since the last look not live', () => {
    const pool = new FakeSwiotlb(true);
    const slots = new LiveSlots();
    const a = { head: 2, slotIndex: 2, nslots: 2, tlbAddr: BASE + 2 * 2048 + 16, allocSize: 3000 };
    const b = { head: 8, slotIndex: 8, nslots: 1, tlbAddr: BASE + 8 * 2048, allocSize: 2048 };
    pool.add(a);
    expect(slots.follow(pool)).toBe(true);
    expect(slots.freshCount).toBe(1);
    // One change since the last look is a change.
    pool.add(b);
    expect(slots.follow(pool)).toBe(true);
    expect([slots.isFresh(0), slots.isFresh(1)]).toEqual([false, true]);
    pool.remove(1);
    expect(slots.follow(pool)).toBe(true);
    expect(slots.freshCount).toBe(0);
    pool.remove(0);
    pool.add(b);
    pool.remove(1);
    pool.add(a);
    pool.add(b);
    expect(slots.follow(pool)).toBe(true);
    expect(listed(slots)).toEqual([key(a), key(b)]);
    expect([slots.isFresh(0), slots.isFresh(1)]).toEqual([false, true]);
    expect(slots.follow(pool)).toBe(false);
    expect(slots.freshCount).toBe(0);
  });

  it('fires on a new range that overlaps a live one, outgrows its slots or leaves the pool; not on one that does not', () => {
    const pool = new FakeSwiotlb(true);
    const view = fakeView(pool);
    const step = {} as Step;
    pool.add({ head: 0, slotIndex: 0, nslots: 4, tlbAddr: BASE, allocSize: 8 * KiB });
    expect(swiotlbSlots.check(view, step)).toBeUndefined();
    pool.add({ head: 4, slotIndex: 4, nslots: 2, tlbAddr: BASE + 4 * 2048, allocSize: 4 * KiB });
    expect(swiotlbSlots.check(view, step)).toBeUndefined();
    pool.add({ head: 3, slotIndex: 3, nslots: 2, tlbAddr: BASE + 3 * 2048, allocSize: 1 * KiB });
    expect(messages(swiotlbSlots.check(view, step))).toEqual([
      'swiotlb slot ranges: slots 0..3 (tlb 0x140000000, 8192 bytes) [0x140000000, 0x140002000) and slots 3..4 (tlb 0x140001800, 1024 bytes) [0x140001800, 0x140002800) overlap ==> FAIL (slots allocated twice)',
      'swiotlb slot ranges: slots 3..4 (tlb 0x140001800, 1024 bytes) [0x140001800, 0x140002800) and slots 4..5 (tlb 0x140002000, 4096 bytes) [0x140002000, 0x140003000) overlap ==> FAIL (slots allocated twice)',
    ]);
    pool.add({ head: 10, slotIndex: 10, nslots: 1, tlbAddr: BASE + 10 * 2048 + 1024, allocSize: 2 * KiB });
    expect(messages(swiotlbSlots.check(view, step))).toEqual([expect.stringMatching(/slots 10\.\.10 .* runs outside its slots .* \(allocation larger than its slots\)/)]);
    pool.add({ head: 300, slotIndex: 300, nslots: 1, tlbAddr: BASE + 300 * 2048, allocSize: 2 * KiB });
    expect(messages(swiotlbSlots.check(view, step))).toEqual([expect.stringMatching(/slots 300\.\.300 .* is outside the pool .* \(outside the pool\)/)]);
    // Nothing new: nothing said again; the end-of-case sweep judges every live range again.
    expect(swiotlbSlots.check(view, step)).toBeUndefined();
    const final = messages(swiotlbSlots.final!(view));
    expect(final.filter((m) => m.includes('(slots allocated twice)'))).toHaveLength(2);
    expect(final.filter((m) => /allocation larger than its slots|outside the pool/.test(m))).toHaveLength(2);
  });
});
