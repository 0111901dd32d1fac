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
// then the new ones are checked against the pool and against every live one.

import { SZ_4K, defineOracle, formatSize, hex, type Finding, type StreamingMapping, type Step, type View } from 'cocofuzz/api';

const SLOT = 2048;
const TWO_32 = 2 ** 32;

interface Span {
  start: number;
  end: number;
  what: string;
  key: string;
  /** For a slot range: the address handed out and the bytes asked for. */
  tlbAddr?: number;
  allocSize?: number;
}

interface State {
  keys: Set<string>;
}

const states = new WeakMap<View, State>();

/** addr & mask for a 32-bit mask, without ToInt32 truncating a 52-bit address first. */
const and32 = (addr: number, mask: number): number => ((addr % TWO_32) & mask) >>> 0;

/** Every live bounce user and slot range, keyed so that a step's new ones can be told apart. */
function spansOf(view: View): { slots: Span[]; users: Span[]; mappings: Map<string, StreamingMapping> } {
  const swiotlb = view.guest.swiotlb;
  const slots: Span[] = [];
  for (const range of swiotlb.liveMappings()) {
    const start = swiotlb.base + range.slotIndex * SLOT;
    slots.push({
      start,
      end: start + range.nslots * SLOT,
      what: `slots ${range.slotIndex}..${range.slotIndex + range.nslots - 1} (tlb ${hex(range.tlbAddr)}, ${range.allocSize} bytes)`,
      key: `r${range.slotIndex}:${range.nslots}:${range.tlbAddr}:${range.allocSize}`,
      tlbAddr: range.tlbAddr,
      allocSize: range.allocSize,
    });
  }
  const users: Span[] = [];
  const mappings = new Map<string, StreamingMapping>();
  for (const mapping of view.guest.mappings) {
    if (mapping.tlbAddr === undefined) continue;
    const key = `m${mapping.id}`;
    users.push({ start: mapping.tlbAddr, end: mapping.tlbAddr + mapping.bytes, what: `map ${mapping.id} (dev ${mapping.dev}, ${mapping.bytes} bytes)`, key });
    mappings.set(key, mapping);
  }
  for (const buffer of view.guest.buffers) {
    if (buffer.source !== 'swiotlb') continue;
    users.push({ start: buffer.gpa, end: buffer.gpa + buffer.bytes, what: `coherent buffer ${buffer.id} (dev ${buffer.dev}, ${buffer.bytes} bytes)`, key: `b${buffer.id}` });
  }
  return { slots, users, mappings };
}

/** Overlaps between spans, reported once per pair that involves a span of `only` (all when undefined). */
function overlaps(spans: Span[], kind: string, only: Set<string> | undefined, out: Finding[]): void {
  const sorted = [...spans].sort((a, b) => a.start - b.start || a.end - b.end);
  for (let i = 0; i < sorted.length; i++) {
    const a = sorted[i]!;
    for (let j = i + 1; j < sorted.length; j++) {
      const b = sorted[j]!;
      if (b.start >= a.end) break;
      if (only !== undefined && !only.has(a.key) && !only.has(b.key)) continue;
      out.push({
        message: `swiotlb ${kind}: ${a.what} [${hex(a.start)}, ${hex(a.end)}) and ${b.what} [${hex(b.start)}, ${hex(b.end)}) overlap ==> FAIL (slots allocated twice)`,
        details: { gpa: b.start, first: a.what, second: b.what },
      });
    }
  }
}

function checkOne(view: View, span: Span, slots: Span[], mapping: StreamingMapping | undefined, buffer: boolean, out: Finding[]): void {
  const swiotlb = view.guest.swiotlb;
  const fail = (problem: string, extra: Record<string, unknown> = {}): void => {
    out.push({ message: `swiotlb ${span.what} at ${hex(span.start)}: ${problem}`, details: { gpa: span.start, ...extra } });
  };
  if (span.start < swiotlb.base || span.end > swiotlb.end) {
    fail(`[${hex(span.start)}, ${hex(span.end)}) is outside the pool [${hex(swiotlb.base)}, ${hex(swiotlb.end)}) ==> FAIL (outside the pool)`);
    return;
  }
  if (span.tlbAddr !== undefined) {
    // A slot range: the address it handed out, and the bytes asked for, lie in its slots.
    const allocSize = span.allocSize ?? 0;
    if (span.tlbAddr < span.start || span.tlbAddr + allocSize > span.end) {
      fail(`tlb ${hex(span.tlbAddr)} + ${allocSize} bytes runs outside its slots [${hex(span.start)}, ${hex(span.end)}) ==> FAIL (allocation larger than its slots)`);
    }
    return;
  }
  if (mapping === undefined && !buffer) return;
  // A bounce user must lie inside one live slot range.
  const home = slots.find((slot) => slot.start <= span.start && span.start < slot.end);
  if (home === undefined) fail('no live slot range holds it ==> FAIL (bounce buffer in free slots)');
  else if (span.end > home.end) fail(`it runs past its ${home.what} ==> FAIL (mapping larger than its slots)`);
  if (buffer) {
    if (span.start % SZ_4K !== 0) fail('a coherent swiotlb allocation must be page-aligned ==> FAIL (alignment)');
    return;
  }
  if (mapping === undefined || mapping.tlbAddr === undefined) return;
  const mask = mapping.minAlignMask;
  const max = swiotlb.maxMappingSize(mask);
  if (mapping.bytes > max) {
    fail(`the driver mapped ${mapping.bytes} bytes, past dma_max_mapping_size() = swiotlb_max_mapping_size ${formatSize(max)}, and swiotlb served it ==> FAIL (mapping too large)`, { bytes: mapping.bytes, max });
  }
  if (mask !== 0 && and32(mapping.tlbAddr, mask) !== and32(mapping.orig, mask)) {
    fail(
      `tlb ${hex(mapping.tlbAddr)} & ${hex(mask)} = ${hex(and32(mapping.tlbAddr, mask))}, but orig ${hex(mapping.orig)} & ${hex(mask)} = ${hex(and32(mapping.orig, mask))} ==> FAIL (min_align_mask bits not preserved)`,
      { orig: mapping.orig, minAlignMask: mask },
    );
  } else if (mask === 0 && mapping.bytes >= SZ_4K && mapping.tlbAddr % SZ_4K !== 0) {
    fail(`a mapping of ${mapping.bytes} bytes without min_align_mask must be page-aligned ==> FAIL (alignment)`);
  }
}

function run(view: View, only: Set<string> | undefined): { findings: Finding[]; keys: Set<string> } {
  const { slots, users, mappings } = spansOf(view);
  const findings: Finding[] = [];
  const keys = new Set<string>();
  for (const span of slots) {
    keys.add(span.key);
    if (only === undefined || only.has(span.key)) checkOne(view, span, slots, undefined, false, findings);
  }
  for (const span of users) {
    keys.add(span.key);
    if (only === undefined || only.has(span.key)) checkOne(view, span, slots, mappings.get(span.key), span.key.startsWith('b'), findings);
  }
  overlaps(slots, 'slot ranges', only, findings);
  overlaps(users, 'bounce buffers', only, findings);
  return { findings, keys };
}

export default defineOracle({
  name: 'swiotlb-slots',
  description: 'live slot ranges never overlap, stay in the pool, respect alignment (min_align_mask, page alignment) and the max mapping size',
  severity: 'correctness',

  check(view: View, _step: Step) {
    const state = states.get(view);
    if (state === undefined) {
      const { findings, keys } = run(view, undefined);
      states.set(view, { keys });
      return findings;
    }
    // The new spans of this step: every key not live before.
    const { slots, users } = spansOf(view);
    const fresh = new Set<string>();
    const keys = new Set<string>();
    for (const span of [...slots, ...users]) {
      keys.add(span.key);
      if (!state.keys.has(span.key)) fresh.add(span.key);
    }
    state.keys = keys;
    if (fresh.size === 0) return [];
    return run(view, fresh).findings;
  },

  final(view: View) {
    const { findings, keys } = run(view, undefined);
    states.set(view, { keys });
    return findings;
  },
});
