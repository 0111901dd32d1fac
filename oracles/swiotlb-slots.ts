// swiotlb-slots: the bounce-buffer allocator hands out each slot once, inside the pool, aligned
// as the DMA API promises (kernel/dma/swiotlb.c after Will Deacon's 2024 series, lore
// 20240308152829.25754-1-will@kernel.org, including the CVE-2024-35814 fix "swiotlb: Fix
// double-allocation of slots due to broken alignment handling"; research/amd-snp.md section 4 and
// section 6, oracle 11):
// - live slot ranges are disjoint and inside the pool, and so are the bytes of the live bounce
//   users (streaming mappings and coherent buffers served from swiotlb);
// - a streaming mapping fits in the slots allocated for it, and is at most
//   swiotlb_max_mapping_size(min_align_mask) = 256K - roundup(min_align_mask, 2K): the kernel
//   serves a larger one whenever its slots fit, so only a driver that ignores
//   dma_max_mapping_size() (a map_single with overMax) gets one, and that is what this reports;
// - its bounce address keeps the original's low bits under min_align_mask, and a mapping of a page
//   or more with no min_align_mask is page-aligned (swiotlb_search_pool_area(): "Historically,
//   swiotlb allocations >= PAGE_SIZE were guaranteed to be page-aligned");
// - a coherent allocation from swiotlb is page-aligned (swiotlb_alloc() WARNs and fails otherwise).
//
// Incremental: only when the set of live slot ranges, mappings or buffers changed in the step;
// then the new ones are checked against the pool and against every live one. Telling whether
// anything changed compares numbers with those of the previous step: a step that changed nothing
// (most steps) builds no span, string or Set.

import { SZ_4K, defineOracle, formatSize, hex, type CoherentBuffer, type Finding, type StreamingMapping, type Step, type SwiotlbSlotRange, type View } from 'cocofuzz/api';
import { Findings } from './lib/findings.ts';
import { NumberList } from './lib/number-list.ts';

const SLOT = 2048;
const TWO_32 = 2 ** 32;

/** A slot range, a bounced streaming mapping or a coherent buffer from swiotlb: one of the three is set. */
interface Span {
  start: number;
  end: number;
  /** New in this step (or checking everything). */
  fresh: boolean;
  range: SwiotlbSlotRange | undefined;
  mapping: StreamingMapping | undefined;
  buffer: CoherentBuffer | undefined;
}

/**
 * Spans filled by collect(), reused from check to check: a step that maps or unmaps looks at every
 * live one (about 20 in the bench workload), and findings describe them in words at once.
 */
interface Spans {
  list: Span[];
  count: number;
}

const slotSpans: Spans = { list: [], count: 0 };
const userSpans: Spans = { list: [], count: 0 };

function addSpan(spans: Spans, start: number, end: number, fresh: boolean, range: SwiotlbSlotRange | undefined, mapping: StreamingMapping | undefined, buffer: CoherentBuffer | undefined): void {
  const span = spans.list[spans.count];
  if (span === undefined) spans.list.push({ start, end, fresh, range, mapping, buffer });
  else {
    span.start = start;
    span.end = end;
    span.fresh = fresh;
    span.range = range;
    span.mapping = mapping;
    span.buffer = buffer;
  }
  spans.count++;
}

/** The span in words, for a finding. */
function what(span: Span): string {
  if (span.range !== undefined) {
    const range = span.range;
    return `slots ${range.slotIndex}..${range.slotIndex + range.nslots - 1} (tlb ${hex(range.tlbAddr)}, ${range.allocSize} bytes)`;
  }
  if (span.mapping !== undefined) return `map ${span.mapping.id} (dev ${span.mapping.dev}, ${span.mapping.bytes} bytes)`;
  const buffer = span.buffer!;
  return `coherent buffer ${buffer.id} (dev ${buffer.dev}, ${buffer.bytes} bytes)`;
}

/** What was live after the previous check, as numbers (lists refilled, never shrunk: NumberList). */
interface Keys {
  /** slotIndex, nslots, tlbAddr, allocSize of each live slot range. */
  readonly slots: NumberList;
  /** Ids of the live bounced streaming mappings. */
  readonly mappings: NumberList;
  /** Ids of the live coherent buffers served from swiotlb. */
  readonly buffers: NumberList;
  /** `swiotlb.generation` when `slots` was taken: unchanged, so are the ranges. */
  slotGeneration: number;
}

/** What is kept per view: the keys live after the previous check. */
interface State {
  live: Keys;
}

const emptyKeys = (): Keys => ({ slots: new NumberList(), mappings: new NumberList(), buffers: new NumberList(), slotGeneration: -1 });

const states = new WeakMap<View, State>();
const found = new Findings();
/** The live keys of this step, filled then swapped with the state's (reused). */
let next = emptyKeys();

/** addr & mask for a 32-bit mask, without ToInt32 truncating a 52-bit address first. */
const and32 = (addr: number, mask: number): number => ((addr % TWO_32) & mask) >>> 0;

/** Where in `before` known() looks second: just after the key it found last (reset per list). */
let hint = 0;

/**
 * Whether the `width` numbers of the key at `at` in `list` appear as a key of `before`: first at
 * the same place, then just after the last key found (the keys after one that went or came are
 * shifted by one), then anywhere.
 */
function known(before: NumberList, list: NumberList, at: number, width: number): boolean {
  const count = before.count;
  if (at + width <= count && sameKey(before, at, list, at, width)) {
    hint = at + width;
    return true;
  }
  if (hint + width <= count && sameKey(before, hint, list, at, width)) {
    hint += width;
    return true;
  }
  for (let from = 0; from + width <= count; from += width) {
    if (sameKey(before, from, list, at, width)) {
      hint = from + width;
      return true;
    }
  }
  return false;
}

function sameKey(a: NumberList, at: number, b: NumberList, bt: number, width: number): boolean {
  for (let k = 0; k < width; k++) if (a.at(at + k) !== b.at(bt + k)) return false;
  return true;
}

/**
 * In one pass: fill `next` with the live keys and slotSpans and userSpans with every live slot
 * range and bounce user, each marked fresh when its key is new. Returns how many are new (all
 * when `before` is undefined).
 */
function collect(view: View, before: Keys | undefined): number {
  const swiotlb = view.guest.swiotlb;
  next.slotGeneration = swiotlb.generation;
  // No slot written since the last check: the same ranges, none of them new (liveMappings() is the pool's kept list).
  const sameSlots = before !== undefined && before.slotGeneration === swiotlb.generation;
  slotSpans.count = 0;
  userSpans.count = 0;
  let fresh = 0;
  const slots = next.slots;
  slots.clear();
  hint = 0;
  for (const range of swiotlb.liveMappings()) {
    const at = slots.count;
    slots.push(range.slotIndex);
    slots.push(range.nslots);
    slots.push(range.tlbAddr);
    slots.push(range.allocSize);
    const isFresh = before === undefined || (!sameSlots && !known(before.slots, slots, at, 4));
    if (isFresh) fresh++;
    const start = swiotlb.base + range.slotIndex * SLOT;
    addSpan(slotSpans, start, start + range.nslots * SLOT, isFresh, range, undefined, undefined);
  }
  const mappings = next.mappings;
  mappings.clear();
  hint = 0;
  for (const mapping of view.guest.mappings) {
    if (mapping.tlbAddr === undefined) continue;
    mappings.push(mapping.id);
    const isFresh = before === undefined || !known(before.mappings, mappings, mappings.count - 1, 1);
    if (isFresh) fresh++;
    addSpan(userSpans, mapping.tlbAddr, mapping.tlbAddr + mapping.bytes, isFresh, undefined, mapping, undefined);
  }
  const buffers = next.buffers;
  buffers.clear();
  hint = 0;
  for (const buffer of view.guest.buffers) {
    if (buffer.source !== 'swiotlb') continue;
    buffers.push(buffer.id);
    const isFresh = before === undefined || !known(before.buffers, buffers, buffers.count - 1, 1);
    if (isFresh) fresh++;
    addSpan(userSpans, buffer.gpa, buffer.gpa + buffer.bytes, isFresh, undefined, undefined, buffer);
  }
  return fresh;
}

/** Make `next` the live keys; the old ones become the next check's `next`. */
function keep(view: View, state: State | undefined): void {
  if (state === undefined) {
    states.set(view, { live: next });
    next = emptyKeys();
  } else {
    const old = state.live;
    state.live = next;
    next = old;
  }
}

/**
 * Whether a fresh span overlaps another one: what overlaps() reports, without sorting. Most
 * changes add one span among many that overlaps none.
 */
function freshOverlap(spans: Spans): boolean {
  for (let i = 0; i < spans.count; i++) {
    const a = spans.list[i]!;
    if (!a.fresh) continue;
    for (let j = 0; j < spans.count; j++) {
      const b = spans.list[j]!;
      if (j !== i && a.start < b.end && b.start < a.end) return true;
    }
  }
  return false;
}

/** Overlaps between spans, reported once per pair that involves a fresh span. */
function overlaps(spans: Spans, kind: string, out: Findings): void {
  if (!freshOverlap(spans)) return;
  const sorted = spans.list.slice(0, spans.count).sort((a, b) => a.start - b.start || a.end - b.end);
  for (let i = 0; i < sorted.length; i++) {
    const a = sorted[i]!;
    for (let j = i + 1; j < sorted.length; j++) {
      const b = sorted[j]!;
      if (b.start >= a.end) break;
      if (!a.fresh && !b.fresh) continue;
      out.push({
        message: `swiotlb ${kind}: ${what(a)} [${hex(a.start)}, ${hex(a.end)}) and ${what(b)} [${hex(b.start)}, ${hex(b.end)}) overlap ==> FAIL (slots allocated twice)`,
        details: { gpa: b.start, first: what(a), second: what(b) },
      });
    }
  }
}

/** A finding about one span. A plain function: a closure made per checked span costs an allocation (and, under tsx, a name) each time. */
function fail(out: Findings, span: Span, problem: string, extra?: Record<string, unknown>): void {
  out.push({ message: `swiotlb ${what(span)} at ${hex(span.start)}: ${problem}`, details: { gpa: span.start, ...extra } });
}

function checkOne(view: View, span: Span, slots: Spans, out: Findings): void {
  const swiotlb = view.guest.swiotlb;
  if (span.start < swiotlb.base || span.end > swiotlb.end) {
    fail(out, span, `[${hex(span.start)}, ${hex(span.end)}) is outside the pool [${hex(swiotlb.base)}, ${hex(swiotlb.end)}) ==> FAIL (outside the pool)`);
    return;
  }
  if (span.range !== undefined) {
    // A slot range: the address it handed out, and the bytes asked for, lie in its slots.
    const { tlbAddr, allocSize } = span.range;
    if (tlbAddr < span.start || tlbAddr + allocSize > span.end) {
      fail(out, span, `tlb ${hex(tlbAddr)} + ${allocSize} bytes runs outside its slots [${hex(span.start)}, ${hex(span.end)}) ==> FAIL (allocation larger than its slots)`);
    }
    return;
  }
  const mapping = span.mapping;
  // A bounce user must lie inside one live slot range.
  let home: Span | undefined;
  for (let i = 0; i < slots.count && home === undefined; i++) {
    const slot = slots.list[i]!;
    if (slot.start <= span.start && span.start < slot.end) home = slot;
  }
  if (home === undefined) fail(out, span, 'no live slot range holds it ==> FAIL (bounce buffer in free slots)');
  else if (span.end > home.end) fail(out, span, `it runs past its ${what(home)} ==> FAIL (mapping larger than its slots)`);
  if (span.buffer !== undefined) {
    if (span.start % SZ_4K !== 0) fail(out, span, 'a coherent swiotlb allocation must be page-aligned ==> FAIL (alignment)');
    return;
  }
  if (mapping === undefined || mapping.tlbAddr === undefined) return;
  const mask = mapping.minAlignMask;
  const max = swiotlb.maxMappingSize(mask);
  if (mapping.bytes > max) {
    fail(out, span, `the driver mapped ${mapping.bytes} bytes, past dma_max_mapping_size() = swiotlb_max_mapping_size ${formatSize(max)}, and swiotlb served it ==> FAIL (mapping too large)`, { bytes: mapping.bytes, max });
  }
  if (mask !== 0 && and32(mapping.tlbAddr, mask) !== and32(mapping.orig, mask)) {
    fail(
      out,
      span,
      `tlb ${hex(mapping.tlbAddr)} & ${hex(mask)} = ${hex(and32(mapping.tlbAddr, mask))}, but orig ${hex(mapping.orig)} & ${hex(mask)} = ${hex(and32(mapping.orig, mask))} ==> FAIL (min_align_mask bits not preserved)`,
      { orig: mapping.orig, minAlignMask: mask },
    );
  } else if (mask === 0 && mapping.bytes >= SZ_4K && mapping.tlbAddr % SZ_4K !== 0) {
    fail(out, span, `a mapping of ${mapping.bytes} bytes without min_align_mask must be page-aligned ==> FAIL (alignment)`);
  }
}

/**
 * Whether the live slot ranges, bounced mappings and swiotlb buffers are those `state` holds, in
 * the same order: then collect() would find nothing new and keep() the same numbers. Most steps
 * (a DMA, a sync, a conversion) change none of them; this compares without copying anything.
 */
function unchanged(view: View, state: Keys): boolean {
  if (state.slotGeneration !== view.guest.swiotlb.generation) return false;
  let n = 0;
  for (const mapping of view.guest.mappings) {
    if (mapping.tlbAddr === undefined) continue;
    if (n >= state.mappings.count || state.mappings.at(n) !== mapping.id) return false;
    n++;
  }
  if (n !== state.mappings.count) return false;
  n = 0;
  for (const buffer of view.guest.buffers) {
    if (buffer.source !== 'swiotlb') continue;
    if (n >= state.buffers.count || state.buffers.at(n) !== buffer.id) return false;
    n++;
  }
  return n === state.buffers.count;
}

/** Check the fresh spans (all of them when `all`) and keep what is live now. */
function run(view: View, state: State | undefined, all: boolean): Finding[] | undefined {
  if (!all && state !== undefined && unchanged(view, state.live)) return undefined;
  const fresh = collect(view, all ? undefined : state?.live);
  if (fresh > 0) {
    for (let i = 0; i < slotSpans.count; i++) if (slotSpans.list[i]!.fresh) checkOne(view, slotSpans.list[i]!, slotSpans, found);
    for (let i = 0; i < userSpans.count; i++) if (userSpans.list[i]!.fresh) checkOne(view, userSpans.list[i]!, slotSpans, found);
    overlaps(slotSpans, 'slot ranges', found);
    overlaps(userSpans, 'bounce buffers', found);
  }
  keep(view, state);
  return found.take();
}

export default defineOracle({
  name: 'swiotlb-slots',
  description: 'live slot ranges never overlap, stay in the pool, respect alignment (min_align_mask, page alignment) and the max mapping size',
  severity: 'correctness',

  check(view: View, _step: Step) {
    const state = states.get(view);
    return run(view, state, state === undefined);
  },

  final(view: View) {
    return run(view, states.get(view), true);
  },
});
