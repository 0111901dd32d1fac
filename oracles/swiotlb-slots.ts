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
//   or more with neither min_align_mask nor alloc_align_mask is page-aligned
//   (swiotlb_search_pool_area(): "Historically, swiotlb allocations >= PAGE_SIZE were guaranteed
//   to be page-aligned in the absence of any other alignment requirements");
// - its allocation starts at a slot aligned to the alloc_align_mask it was mapped with and does
//   not cross the device's segment boundary (the same search): iommu-dma relies on the first, so
//   that the IOVA granule it maps holds no other mapping's bytes. A guest policy that picks the
//   slots itself (swiotlbSlots) is held to both;
// - a coherent allocation from swiotlb is page-aligned (swiotlb_alloc() WARNs and fails otherwise).
//
// Incremental: only when the set of live slot ranges, mappings or buffers changed in the step;
// then the new ones are checked against the pool and against every live one. Telling whether
// anything changed compares numbers with those of the previous step: a step that changed nothing
// (most steps) builds no span, string or Set. The live slot ranges are followed through the
// pool's change log (SwiotlbView.changesSince(), lib/live-slots.ts): a map or an unmap applies
// its one change to the ranges kept as numbers, instead of listing and comparing every live one.

import { SZ_4K, defineOracle, formatSize, hex, type CoherentBuffer, type Finding, type StreamingMapping, type Step, type SwiotlbSlotRange, type View } from 'cocofuzz/api';
import { Findings } from './lib/findings.ts';
import { LiveSlots } from './lib/live-slots.ts';
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
 * Spans reused from check to check: the bounce users are filled on every step that changes them
 * (a handful are live), the slot ranges only to describe an overlap of slot ranges.
 */
interface Spans {
  list: Span[];
  count: number;
}

const slotSpans: Spans = { list: [], count: 0 };
const userSpans: Spans = { list: [], count: 0 };

function addSpan(spans: Spans, start: number, end: number, fresh: boolean, range: SwiotlbSlotRange | undefined, mapping: StreamingMapping | undefined, buffer: CoherentBuffer | undefined): Span {
  const span = spans.list[spans.count];
  spans.count++;
  if (span === undefined) {
    const made = { start, end, fresh, range, mapping, buffer };
    spans.list.push(made);
    return made;
  }
  span.start = start;
  span.end = end;
  span.fresh = fresh;
  span.range = range;
  span.mapping = mapping;
  span.buffer = buffer;
  return span;
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

/** What is kept per view: the live slot ranges, and the bounce users live after the previous check, as numbers. */
interface State {
  /** The live slot ranges, followed through the pool's change log; which are new since the last check. */
  readonly slots: LiveSlots;
  /** Ids of the live bounced streaming mappings (lists refilled, never shrunk: NumberList). */
  mappings: NumberList;
  /** Ids of the live coherent buffers served from swiotlb. */
  buffers: NumberList;
}

const states = new WeakMap<View, State>();
const found = new Findings();
/** The live ids of this step, filled then swapped with the state's (reused). */
let nextMappings = new NumberList();
let nextBuffers = new NumberList();

/** addr & mask for a 32-bit mask, without ToInt32 truncating a 52-bit address first. */
const and32 = (addr: number, mask: number): number => ((addr % TWO_32) & mask) >>> 0;

/** Where in `before` known() looks second: just after the id it found last (reset per list). */
let hint = 0;

/**
 * Whether the id at `at` in `list` is an id of `before`: first at the same place, then just after
 * the last one found (the ids after one that went or came are shifted by one), then anywhere.
 */
function known(before: NumberList, list: NumberList, at: number): boolean {
  const id = list.at(at);
  const count = before.count;
  if (at < count && before.at(at) === id) {
    hint = at + 1;
    return true;
  }
  if (hint < count && before.at(hint) === id) {
    hint++;
    return true;
  }
  for (let from = 0; from < count; from++) {
    if (before.at(from) === id) {
      hint = from + 1;
      return true;
    }
  }
  return false;
}

/**
 * Fill userSpans with every live bounce user, each marked fresh when its id is new (all of them
 * when `all`), and the state's id lists with those live now. Returns how many are new.
 */
function collectUsers(view: View, state: State, all: boolean): number {
  userSpans.count = 0;
  let fresh = 0;
  const mappings = nextMappings;
  mappings.clear();
  hint = 0;
  for (const mapping of view.guest.mappings) {
    if (mapping.tlbAddr === undefined) continue;
    mappings.push(mapping.id);
    const isFresh = all || !known(state.mappings, mappings, mappings.count - 1);
    if (isFresh) fresh++;
    addSpan(userSpans, mapping.tlbAddr, mapping.tlbAddr + mapping.bytes, isFresh, undefined, mapping, undefined);
  }
  const buffers = nextBuffers;
  buffers.clear();
  hint = 0;
  for (const buffer of view.guest.buffers) {
    if (buffer.source !== 'swiotlb') continue;
    buffers.push(buffer.id);
    const isFresh = all || !known(state.buffers, buffers, buffers.count - 1);
    if (isFresh) fresh++;
    addSpan(userSpans, buffer.gpa, buffer.gpa + buffer.bytes, isFresh, undefined, undefined, buffer);
  }
  nextMappings = state.mappings;
  state.mappings = mappings;
  nextBuffers = state.buffers;
  state.buffers = buffers;
  return fresh;
}

/** The first byte of live slot range `i` and the byte after it. */
const slotStart = (view: View, slots: LiveSlots, i: number): number => view.guest.swiotlb.base + slots.slotIndex[i]! * SLOT;
const slotEnd = (view: View, slots: LiveSlots, i: number): number => slotStart(view, slots, i) + slots.nslots[i]! * SLOT;

/**
 * slotSpans filled with every live slot range, marked fresh as `isFresh` says, for describing
 * their overlaps in words: only when a fresh one overlaps another (a finding).
 */
function slotSpansOf(view: View, slots: LiveSlots, all: boolean): Spans {
  slotSpans.count = 0;
  for (let i = 0; i < slots.count; i++) {
    const range = { slotIndex: slots.slotIndex[i]!, nslots: slots.nslots[i]!, tlbAddr: slots.tlbAddr[i]!, allocSize: slots.allocSize[i]! };
    addSpan(slotSpans, slotStart(view, slots, i), slotEnd(view, slots, i), all || slots.isFresh(i), range, undefined, undefined);
  }
  return slotSpans;
}

/** Whether a fresh slot range overlaps another live one (numbers only: most changes add one range that overlaps none). */
function freshSlotOverlap(view: View, slots: LiveSlots, all: boolean): boolean {
  for (let i = 0; i < slots.count; i++) {
    if (!all && !slots.isFresh(i)) continue;
    const start = slotStart(view, slots, i);
    const end = slotEnd(view, slots, i);
    for (let j = 0; j < slots.count; j++) {
      if (j !== i && start < slotEnd(view, slots, j) && slotStart(view, slots, j) < end) return true;
    }
  }
  return false;
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

/** Scratch spans for one live slot range (reused: each is described in words at once, if at all). */
const one: Span = { start: 0, end: 0, fresh: true, range: { slotIndex: 0, nslots: 0, tlbAddr: 0, allocSize: 0 }, mapping: undefined, buffer: undefined };
const home: Span = { start: 0, end: 0, fresh: false, range: { slotIndex: 0, nslots: 0, tlbAddr: 0, allocSize: 0 }, mapping: undefined, buffer: undefined };

/** `span` made live slot range `i`. */
function slotSpan(view: View, slots: LiveSlots, i: number, span: Span): Span {
  span.start = slotStart(view, slots, i);
  span.end = slotEnd(view, slots, i);
  const range = span.range!;
  range.slotIndex = slots.slotIndex[i]!;
  range.nslots = slots.nslots[i]!;
  range.tlbAddr = slots.tlbAddr[i]!;
  range.allocSize = slots.allocSize[i]!;
  return span;
}

/** The first live slot range holding `addr`, as the scratch span `home`, or undefined. */
function homeOf(view: View, slots: LiveSlots, addr: number): Span | undefined {
  for (let i = 0; i < slots.count; i++) {
    if (slotStart(view, slots, i) <= addr && addr < slotEnd(view, slots, i)) return slotSpan(view, slots, i, home);
  }
  return undefined;
}

function checkOne(view: View, span: Span, slots: LiveSlots, out: Findings): void {
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
  const slot = homeOf(view, slots, span.start);
  if (slot === undefined) fail(out, span, 'no live slot range holds it ==> FAIL (bounce buffer in free slots)');
  else if (span.end > slot.end) fail(out, span, `it runs past its ${what(slot)} ==> FAIL (mapping larger than its slots)`);
  if (span.buffer !== undefined) {
    if (span.start % SZ_4K !== 0) fail(out, span, 'a coherent swiotlb allocation must be page-aligned ==> FAIL (alignment)');
    return;
  }
  if (mapping === undefined || mapping.tlbAddr === undefined) return;
  const mask = mapping.minAlignMask;
  const allocAlign = mapping.allocAlignMask ?? 0;
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
  } else if (mask === 0 && !allocAlign && mapping.bytes >= SZ_4K && mapping.tlbAddr % SZ_4K !== 0) {
    // Page alignment only "in the absence of any other alignment requirements" (swiotlb.c).
    fail(out, span, `a mapping of ${mapping.bytes} bytes without min_align_mask or alloc_align_mask must be page-aligned ==> FAIL (alignment)`);
  }
  // Where the allocation starts: tlb_addr less the offset swiotlb_align_offset() kept of the
  // original's low bits; swiotlb_search_pool_area() took that slot only if it is aligned to
  // alloc_align_mask and the allocation does not cross the device's segment boundary
  // (iommu_is_span_boundary()). A guest's own slot choice (GuestPolicy.swiotlbSlots) must too.
  const start = mapping.tlbAddr - and32(mapping.orig, (mask & (allocAlign | (SLOT - 1))) >>> 0);
  if (allocAlign && and32(start, allocAlign) !== 0) {
    fail(out, span, `its slots start at ${hex(start)}, not aligned to alloc_align_mask ${hex(allocAlign)} ==> FAIL (alloc_align_mask not honoured)`, { allocAlignMask: allocAlign });
  }
  const boundary = mapping.segmentBoundaryMask;
  if (boundary !== undefined) {
    const segment = boundary + 1;
    if (Math.floor(start / segment) !== Math.floor((mapping.tlbAddr + mapping.bytes - 1) / segment)) {
      fail(out, span, `[${hex(start)}, ${hex(mapping.tlbAddr + mapping.bytes)}) crosses the device's segment boundary (mask ${hex(boundary)}) ==> FAIL (segment boundary crossed)`, { segmentBoundaryMask: boundary });
    }
  }
}

/**
 * Whether the live slot ranges, bounced mappings and swiotlb buffers are those `state` holds, in
 * the same order: then nothing is new. Most steps (a DMA, a sync, a conversion) change none of
 * them; this compares numbers without copying anything.
 */
function unchanged(view: View, state: State): boolean {
  if (state.slots.generation !== view.guest.swiotlb.generation) return false;
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

/** Check what is new (everything when `all`) and keep what is live now. */
function run(view: View, all: boolean): Finding[] | undefined {
  let state = states.get(view);
  if (state === undefined) {
    state = { slots: new LiveSlots(), mappings: new NumberList(), buffers: new NumberList() };
    states.set(view, state);
  } else if (!all && unchanged(view, state)) return undefined;
  const slots = state.slots;
  slots.follow(view.guest.swiotlb);
  const freshSlots = all ? slots.count : slots.freshCount;
  const freshUsers = collectUsers(view, state, all);
  if (freshSlots + freshUsers > 0) {
    for (let i = 0; i < slots.count; i++) if (all || slots.isFresh(i)) checkOne(view, slotSpan(view, slots, i, one), slots, found);
    for (let i = 0; i < userSpans.count; i++) if (userSpans.list[i]!.fresh) checkOne(view, userSpans.list[i]!, slots, found);
    if (freshSlots > 0 && freshSlotOverlap(view, slots, all)) overlaps(slotSpansOf(view, slots, all), 'slot ranges', found);
    overlaps(userSpans, 'bounce buffers', found);
  }
  return found.take();
}

export default defineOracle({
  name: 'swiotlb-slots',
  description: 'live slot ranges never overlap, stay in the pool, respect alignment (min_align_mask, page alignment) and the max mapping size',
  severity: 'correctness',

  check(view: View, _step: Step) {
    return run(view, !states.has(view));
  },

  final(view: View) {
    return run(view, true);
  },
});
