// The swiotlb slot store (guest/swiotlb-slots.ts, each field as linear runs) against the per-slot
// arrays it replaced, under random writes of the kinds the pool makes (stretches of one value,
// alloc_size counting down, orig_addr counting up, free runs counting down, single head fields,
// segment renumbering): every field of every slot reads the same, the live heads are the same,
// every segment holding a slot off its initial state is listed as written (checkInvariants() skips
// the others), and a copy made as the boot cache makes it (GraphCopy) goes its own way.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SwiotlbSlots } from '../../src/guest/swiotlb-slots.ts';
import { GraphCopy } from '../../src/model/graph-copy.ts';

const SEGSIZE = 128;
/** Five segments and a short tail: the last segment's initial free run stops at the pool's end. */
const NSLABS = 5 * SEGSIZE + 60;
const FIELDS = ['list', 'origAddr', 'allocSize', 'padSlots', 'kind', 'mapSize', 'headOffset'] as const;
type Field = (typeof FIELDS)[number];

/** The per-slot arrays, written slot by slot. */
class Reference {
  readonly values: Record<Field, number[]>;
  constructor(copyOf?: Reference) {
    const initial = (field: Field, i: number): number =>
      field === 'list' ? Math.min(SEGSIZE - (i % SEGSIZE), NSLABS - i) : field === 'origAddr' ? -1 : 0;
    this.values = Object.fromEntries(FIELDS.map((f) => [f, copyOf ? [...copyOf.values[f]] : Array.from({ length: NSLABS }, (_, i) => initial(f, i))])) as Record<Field, number[]>;
  }
  isInitial(i: number): boolean {
    return FIELDS.every((f) => this.values[f][i] === FRESH.values[f][i]);
  }
}
const FRESH = new Reference();

type Write =
  | { kind: 'fill'; field: 'list' | 'origAddr' | 'allocSize' | 'padSlots'; from: number; len: number; value: number }
  | { kind: 'allocSizeRun'; from: number; len: number; value: number }
  | { kind: 'origAddrRun'; from: number; len: number; value: number }
  | { kind: 'listRun'; from: number; len: number; value: number; step: number }
  | { kind: 'renumber'; segment: number; segments: number }
  | { kind: 'head'; field: 'padSlots' | 'kind' | 'mapSize' | 'headOffset'; at: number; value: number };

const at = fc.integer({ min: 0, max: NSLABS - 1 });
const len = fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 2 * SEGSIZE }));
const writeArb: fc.Arbitrary<Write> = fc.oneof(
  fc.record({ kind: fc.constant('fill' as const), field: fc.constantFrom('list' as const, 'origAddr' as const, 'allocSize' as const, 'padSlots' as const), from: at, len, value: fc.constantFrom(0, 1, -1, 3) }),
  fc.record({ kind: fc.constant('allocSizeRun' as const), from: at, len, value: fc.integer({ min: 1, max: 600_000 }) }),
  fc.record({ kind: fc.constant('origAddrRun' as const), from: at, len, value: fc.oneof(fc.nat(), fc.constant(2 ** 52 - 2 ** 20)) }),
  // value 0: the count to the segment's end, which is the initial free run where the step is -1.
  fc.record({ kind: fc.constant('listRun' as const), from: at, len, value: fc.oneof(fc.integer({ min: 1, max: SEGSIZE }), fc.constant(0)), step: fc.constantFrom(-1, 0) }),
  fc.record({ kind: fc.constant('renumber' as const), segment: fc.nat(5), segments: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ kind: fc.constant('head' as const), field: fc.constantFrom('padSlots' as const, 'kind' as const, 'mapSize' as const, 'headOffset' as const), at, value: fc.constantFrom(0, 0, 1, 2, 4096) }),
);

function apply(slots: SwiotlbSlots, reference: Reference, w: Write): void {
  const v = reference.values;
  if (w.kind === 'renumber') {
    const from = w.segment * SEGSIZE;
    const to = Math.min((w.segment + w.segments) * SEGSIZE, NSLABS);
    if (from >= to) return;
    slots.renumberFreeRuns(from, to);
    // The loop it replaced: from the end, the count restarts at each segment end.
    let count = 0;
    for (let i = to - 1; i >= from; i--) {
      if (i % SEGSIZE === SEGSIZE - 1) count = 0;
      count = v.list[i] === 0 ? 0 : count + 1;
      v.list[i] = count;
    }
    return;
  }
  if (w.kind === 'head') {
    if (w.field === 'padSlots') slots.setPadSlots(w.at, w.value);
    else if (w.field === 'kind') slots.setKind(w.at, w.value % 3);
    else if (w.field === 'mapSize') slots.setMapSize(w.at, w.value);
    else slots.setHeadOffset(w.at, w.value);
    v[w.field][w.at] = w.field === 'kind' ? w.value % 3 : w.value;
    return;
  }
  const to = Math.min(NSLABS, w.from + w.len);
  if (w.kind === 'listRun' && w.value === 0) w = { ...w, value: Math.min((Math.floor(w.from / SEGSIZE) + 1) * SEGSIZE, NSLABS) - w.from };
  for (let i = w.from; i < to; i++) {
    const k = i - w.from;
    if (w.kind === 'fill') v[w.field][i] = w.value;
    else if (w.kind === 'allocSizeRun') v.allocSize[i] = w.value - k * 2048;
    else if (w.kind === 'origAddrRun') v.origAddr[i] = w.value + k * 2048;
    else v.list[i] = w.value + k * w.step;
  }
  if (w.kind === 'fill') slots.fill(w.field, w.from, to, w.value);
  else if (w.kind === 'allocSizeRun') slots.setAllocSizeRun(w.from, to, w.value, 2048);
  else if (w.kind === 'origAddrRun') slots.setOrigAddrRun(w.from, to, w.value, 2048);
  else slots.setListRun(w.from, to, w.value, w.step);
}

function agree(slots: SwiotlbSlots, reference: Reference): void {
  for (const field of FIELDS) {
    const read = Array.from({ length: NSLABS }, (_, i) => slots[field](i));
    expect(read, field).toEqual(reference.values[field]);
  }
  const heads = reference.values.kind.flatMap((kind, i) => (kind !== 0 ? [i] : []));
  expect([...slots.liveHeads()]).toEqual(heads);
  const written = new Set(slots.writtenSegments());
  for (let i = 0; i < NSLABS; i++) if (!reference.isInitial(i)) expect(written.has(Math.floor(i / SEGSIZE)), `slot ${i}`).toBe(true);
}

describe('swiotlb slot store', () => {
  it('reads as the per-slot arrays it replaced, and a boot-cache copy goes its own way', () => {
    fc.assert(
      fc.property(fc.array(writeArb, { maxLength: 40 }), fc.array(writeArb, { maxLength: 20 }), (before, after) => {
        const slots = new SwiotlbSlots(NSLABS);
        const reference = new Reference();
        for (const w of before) apply(slots, reference, w);
        agree(slots, reference);
        const copy = new GraphCopy().copy(slots);
        const copyReference = new Reference(reference);
        for (const w of after) apply(copy, copyReference, w);
        agree(copy, copyReference);
        agree(slots, reference);
      }),
      { numRuns: 200 },
    );
  });

  it('holds nothing once every slot is back in its initial state', () => {
    const slots = new SwiotlbSlots(NSLABS);
    // A 3-slot mapping at 130 with one padding slot, as swiotlb_tbl_map_single() leaves it.
    slots.fill('list', 129, 132, 0);
    slots.setAllocSizeRun(129, 132, 3 * 2048, 2048);
    slots.setListRun(128, 129, 1, -1);
    slots.setPadSlots(130, 1);
    slots.setOrigAddrRun(130, 132, 2 ** 40, 2048);
    slots.setKind(130, 1);
    slots.setMapSize(130, 4000);
    expect(slots.runCount).toBeGreaterThan(0);
    expect(slots.writtenSegments()).toEqual([1]);
    // swiotlb_release_slots(): the slots count on from the free run after them, then the one before.
    slots.setKind(130, 0);
    slots.setMapSize(130, 0);
    slots.setListRun(129, 132, SEGSIZE - 1, -1);
    slots.fill('origAddr', 129, 132, -1);
    slots.fill('allocSize', 129, 132, 0);
    slots.fill('padSlots', 129, 132, 0);
    slots.setListRun(128, 129, SEGSIZE, -1);
    expect(slots.runCount).toBe(0);
    expect(slots.writtenSegments()).toEqual([]);
  });
});
