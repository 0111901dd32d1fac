// bounce-integrity: streaming DMA in a confidential guest always bounces through swiotlb
// (DOMAIN.md, guest kernel): swiotlb_tbl_map_single() copies the original buffer into the slots,
// swiotlb_tbl_unmap_single() and dma_sync_single_for_cpu() copy the slots back for
// DMA_FROM_DEVICE and DMA_BIDIRECTIONAL (kernel/dma/swiotlb.c, swiotlb_bounce()). So:
// - what the device reads through a to_device or bidirectional mapping is what the CPU had put in
//   the original buffer when it mapped it (or what a device wrote there since);
// - what a device wrote through a from_device or bidirectional mapping is what arrives in the
//   original buffer after the sync or unmap.
// Slots handed out twice (CVE-2024-35814), a stale IO mapping or IOTLB entry of the pool, or a
// missing copy all break one of the two.
//
// Content is compared with memory tokens: one token per 2 KiB chunk, fresh on every write. Per
// live mapping the oracle keeps, for each chunk of its slots, the tokens the slot may legitimately
// hold: those of the original chunks it was copied from at map time, those a device wrote through
// the mapping, or those anybody outside the DMA API wrote (a wild DMA, a host write: not the
// guest's doing, so taken as the new content). A write into the slots by the DMA API on behalf of
// ANOTHER buffer or mapping is never taken: that is the double allocation showing.
//
// Event-based (DMA records, bounce events, the op), so there is no full sweep. A step with none
// of those (most steps) costs a few loops over its records: the per-step sets are built only when
// the step has interleaved activity, writes or a change of the live mappings.

import { argAt, callsIn, defineOracle, hex, pfnOf, tokenRunsOf, type DmaRecord, type GuestEventRecord, type StreamingMapping, type Step, type View } from 'cocofuzz/api';
import { CpuFrames } from './lib/cpu-frames.ts';
import { Findings } from './lib/findings.ts';

const CHUNK = 2048;

interface Tracked {
  mapping: StreamingMapping;
  /** The first and last slot chunk of the mapping. */
  firstChunk: number;
  lastChunk: number;
  /** Slot chunk (GPA / 2K) -> tokens it may hold. */
  allowed: SlotTokens;
}

/** SlotTokens: no token recorded for the chunk; several (see `several`). Tokens are >= 0. */
const ABSENT = -1;
const MANY = -2;

/**
 * The tokens each slot chunk of one mapping may hold: none recorded, one (almost every chunk: a
 * number in a typed array, no Set per chunk), or several (a Set, where a race or a copy across
 * two original chunks left more than one). Listed in the order they were added.
 */
class SlotTokens {
  private readonly one: Float64Array;
  private several: Map<number, Set<number>> | undefined;

  constructor(
    private readonly firstChunk: number,
    count: number,
  ) {
    this.one = new Float64Array(count).fill(ABSENT);
  }

  /** Whether some token is recorded for `chunk`. */
  has(chunk: number): boolean {
    return this.one[chunk - this.firstChunk] !== ABSENT;
  }

  /** Whether `chunk` may hold `token`. */
  includes(chunk: number, token: number): boolean {
    const i = chunk - this.firstChunk;
    const one = this.one[i]!;
    return one === MANY ? this.several!.get(i)!.has(token) : one === token;
  }

  /** The tokens `chunk` may hold (for a message). */
  list(chunk: number): number[] {
    const i = chunk - this.firstChunk;
    const one = this.one[i]!;
    return one === ABSENT ? [] : one === MANY ? [...this.several!.get(i)!] : [one];
  }

  /** `chunk` may hold `token` too. */
  add(chunk: number, token: number): void {
    const i = chunk - this.firstChunk;
    const one = this.one[i]!;
    if (one === ABSENT) this.one[i] = token;
    else if (one === MANY) this.several!.get(i)!.add(token);
    else if (one !== token) {
      (this.several ??= new Map()).set(i, new Set([one, token]));
      this.one[i] = MANY;
    }
  }

  /** add(), for a chunk that has some token recorded already. */
  addToKnown(chunk: number, token: number): void {
    if (this.has(chunk)) this.add(chunk, token);
  }

  /** `chunk` now holds exactly `token`. */
  only(chunk: number, token: number): void {
    this.forget(chunk);
    this.one[chunk - this.firstChunk] = token;
  }

  /** Nothing is known of what `chunk` holds. */
  forget(chunk: number): void {
    const i = chunk - this.firstChunk;
    if (this.one[i] === MANY) this.several!.delete(i);
    this.one[i] = ABSENT;
  }
}

interface State {
  /** Live bounced mappings by id. */
  mappings: Map<number, Tracked>;
  /** Ids of every live mapping, bounced or not, in the guest's order (what `sync {map}` indexes). */
  order: number[];
}

const states = new WeakMap<View, State>();
const found = new Findings();

/**
 * Interleaved DMAs (an op's `during`) ran somewhere inside the op: their order against the op's
 * own bounces is not in the step, so a read may see the content before or after a bounce of this
 * step, and a copy back may carry an interleaved write or not.
 */
interface Race {
  /** Slot chunk -> tokens interleaved DMAs wrote there, or bounces of the step put there. */
  racing: ReadonlyMap<number, ReadonlySet<number>>;
  /** Chunks an interleaved CPU access or DMA wrote: after a copy back they may hold that write. */
  overwritten: ReadonlySet<number>;
}

/** A step without interleaving (most steps) shares this one. */
const NO_RACE: Race = { racing: new Map(), overwritten: new Set() };

/** Whether `ids` are the ids of `mappings`, in order: no mapping was created or freed. */
function sameMappings(ids: readonly number[], mappings: readonly StreamingMapping[]): boolean {
  if (ids.length !== mappings.length) return false;
  for (let i = 0; i < ids.length; i++) if (ids[i] !== mappings[i]!.id) return false;
  return true;
}

function hasInterleavedDma(step: Step): boolean {
  for (const dma of step.dmas) if (dma.during !== undefined) return true;
  return false;
}

/**
 * Whether anything in the step ran interleaved with its op (an op's `during`). A step without
 * `Step.interleaved` (an op without `during`: most steps) has none, and its calls, hundreds in a
 * per-page sweep, need no look.
 */
function hasInterleaved(step: Step): boolean {
  if (step.interleaved === undefined) return false;
  if (hasInterleavedDma(step)) return true;
  for (const call of step.calls) if (call.during !== undefined) return true;
  return false;
}

/** One more token chunk `chunk` may hold. */
function note(racing: Map<number, Set<number>>, chunk: number, token: number): void {
  const set = racing.get(chunk) ?? new Set<number>();
  set.add(token);
  racing.set(chunk, set);
}

function raceOf(view: View, step: Step): Race {
  if (!hasInterleaved(step)) return NO_RACE;
  const racing = new Map<number, Set<number>>();
  const overwritten = new Set<number>();
  for (const call of step.calls) {
    if (call.during === undefined || call.prim !== 'guest_access' || call.args.write !== true || call.result !== 'ok') continue;
    const gpa = Number(call.args.gpa);
    for (let c = chunkOf(gpa); c <= chunkOf(gpa + Number(call.args.len ?? 1) - 1); c++) overwritten.add(c);
  }
  for (const dma of step.dmas) {
    if (dma.during === undefined || !dma.write) continue;
    for (let i = 0, n = dmaChunks(dma); i < n; i++) {
      overwritten.add(moved.chunks[i]!);
      note(racing, moved.chunks[i]!, moved.tokens[i]!);
    }
  }
  if (hasInterleavedDma(step)) {
    // Bounces are never runs: the records as logged.
    for (const event of step.guestEventRuns ?? step.guestEvents) {
      if (event.kind !== 'bounce') continue;
      for (let c = chunkOf(event.to); c <= chunkOf(event.to + event.len - 1); c++) {
        const token = tokenAt(view, Math.max(event.to, c * CHUNK));
        if (token !== undefined) note(racing, c, token);
      }
    }
  }
  return { racing, overwritten };
}

const chunkOf = (addr: number): number => Math.floor(addr / CHUNK);

/** The CPU's view of a GPA: the NPT translation, else the host's backing (forgotten at each check). */
const cpu = new CpuFrames();

function tokenAt(view: View, gpa: number): number | undefined {
  const hpa = cpu.hpa(view, gpa);
  return hpa < 0 ? undefined : view.memory.token(hpa);
}

/** What sourceChunks() found: the chunks [first, last] (reused; empty when last < first). */
const sources = { first: 0, last: -1 };

/**
 * The chunks of [src, src + len) that bytes of the chunk of `dst` at `dstChunk` were copied from,
 * into `sources`: consecutive chunks, so a range and no array.
 */
function sourceChunks(dstChunk: number, dst: number, src: number, len: number): typeof sources {
  const from = Math.max(dst, dstChunk * CHUNK);
  const to = Math.min(dst + len, (dstChunk + 1) * CHUNK);
  sources.first = chunkOf(src + (from - dst));
  sources.last = to <= from ? sources.first - 1 : chunkOf(src + (to - 1 - dst));
  return sources;
}

/**
 * The chunks a DMA moved and the token it read or wrote in each, as dmaChunks() fills them: the
 * first dmaChunks() entries count (reused, never truncated: `length = 0` would drop the storage).
 */
const moved = { chunks: [] as number[], tokens: [] as number[] };

/**
 * Each chunk in [lo, hi] a DMA moved, with the token it read or wrote (pieces are split at 4K,
 * chunks at 2K), into `moved`; returns how many. The tokens come from DmaRecord.tokenRuns, walked
 * alongside the chunks, so chunks outside [lo, hi] (most of a DMA of hundreds of MiB, next to a
 * mapping of a few slots) cost nothing but the arithmetic that skips them.
 */
function dmaChunks(dma: DmaRecord, lo = -Infinity, hi = Infinity): number {
  // A record built by hand (an oracle test) may carry only `tokens`.
  const runs = dma.tokenRuns ?? tokenRunsOf(dma.tokens);
  let n = 0;
  // The run read next: runs[r] is its first token (0: chunks never written), `used` of its runs[r + 1] taken.
  let r = 0;
  let used = 0;
  for (const piece of dma.result.pieces) {
    const first = chunkOf(piece.gpa);
    const last = chunkOf(piece.gpa + piece.len - 1);
    for (let c = first; c <= last && r < runs.length; ) {
      // Chunks outside [lo, hi] are passed over a run at a time.
      const take = Math.min(last + 1 - c, runs[r + 1]! - used, c < lo ? lo - c : c > hi ? Infinity : 1);
      if (c >= lo && c <= hi) {
        moved.chunks[n] = c;
        moved.tokens[n] = runs[r] === 0 ? 0 : runs[r]! + used;
        n++;
      }
      c += take;
      used += take;
      if (used === runs[r + 1]) {
        r += 2;
        used = 0;
      }
    }
  }
  return n;
}

function track(view: View, mapping: StreamingMapping): Tracked {
  const tlb = mapping.tlbAddr ?? 0;
  const firstChunk = chunkOf(tlb);
  const lastChunk = chunkOf(tlb + mapping.bytes - 1);
  const tracked: Tracked = { mapping: { ...mapping }, firstChunk, lastChunk, allowed: new SlotTokens(firstChunk, lastChunk - firstChunk + 1) };
  // What the CPU had put in the original: each slot chunk holds one of the original chunks it
  // overlaps. For a from_device mapping too: swiotlb_tbl_map_single() bounces whatever the
  // direction (swiotlb.c, since aa6f8dcbab47), so that the copy back of chunks the device did not
  // write returns the original's own bytes, not a previous user's of the slot (CVE-2022-0854).
  for (let chunk = firstChunk; chunk <= lastChunk; chunk++) {
    const { first, last } = sourceChunks(chunk, tlb, mapping.orig, mapping.bytes);
    for (let source = first; source <= last; source++) {
      const token = tokenAt(view, source * CHUNK);
      if (token !== undefined) tracked.allowed.add(chunk, token);
    }
  }
  return tracked;
}

/** A mapping made in a step that ran something interleaved: its slot chunks may hold what raced its bounce. */
function allowRaces(tracked: Tracked, racing: ReadonlyMap<number, ReadonlySet<number>>, overwritten: ReadonlySet<number>): void {
  const mapping = tracked.mapping;
  const tlb = mapping.tlbAddr ?? 0;
  for (let chunk = tracked.firstChunk; chunk <= tracked.lastChunk; chunk++) {
    for (const token of racing.get(chunk) ?? []) tracked.allowed.addToKnown(chunk, token);
    const { first, last } = sourceChunks(chunk, tlb, mapping.orig, mapping.bytes);
    for (let source = first; source <= last; source++) {
      if (!overwritten.has(source)) continue;
      tracked.allowed.forget(chunk);
      break;
    }
  }
}

/**
 * After a copy back, each original chunk holds a token its slot chunks may hold. `racing`: tokens
 * interleaved DMAs wrote into slot chunks during the step; whether they landed before or after the
 * copy is the race the step ran, so either content is accepted.
 */
function checkCopyBack(view: View, tracked: Tracked, why: string, out: Findings, racing: ReadonlyMap<number, ReadonlySet<number>>, overwritten: ReadonlySet<number>): void {
  const mapping = tracked.mapping;
  const tlb = mapping.tlbAddr ?? 0;
  for (let c = chunkOf(mapping.orig); c <= chunkOf(mapping.orig + mapping.bytes - 1); c++) {
    const { first, last } = sourceChunks(c, mapping.orig, tlb, mapping.bytes);
    // Known when every slot chunk it came from was given something.
    let known = last >= first;
    for (let source = first; known && source <= last; source++) if (!tracked.allowed.has(source)) known = false;
    // An interleaved write may have come after the copy: the CPU owns the original again.
    if (!known || overwritten.has(c)) continue;
    const gpa = Math.max(mapping.orig, c * CHUNK);
    const token = tokenAt(view, gpa);
    if (token === undefined) continue;
    let given = false;
    for (let source = first; !given && source <= last; source++) given = tracked.allowed.includes(source, token) || racing.get(source)?.has(token) === true;
    if (given) continue;
    // The tokens the slot chunks were given, for the message.
    const allowed = new Set<number>();
    for (let source = first; source <= last; source++) {
      for (const token of tracked.allowed.list(source)) allowed.add(token);
      for (const raced of racing.get(source) ?? []) allowed.add(raced);
    }
    const slot = tlb + (gpa - mapping.orig);
    out.push({
      message:
        `map ${mapping.id} (dev ${mapping.dev}, ${mapping.dir}, ${mapping.bytes} bytes): after ${why}, orig ${hex(gpa)} holds data #${token}, ` +
        `not what the slot at ${hex(slot)} was given (#${[...allowed].join('/#')}) ==> FAIL (device data lost in the bounce)`,
      details: { dev: mapping.dev, gpa, iova: mapping.iova + (gpa - mapping.orig), tlbAddr: slot, map: mapping.id },
    });
    return;
  }
}

/** Whether a DMA of the step writes, or the guest bounced something (what takeWrites() takes besides host writes). */
function writesSlots(dmas: readonly DmaRecord[], events: readonly GuestEventRecord[]): boolean {
  for (const dma of dmas) if (dma.write) return true;
  for (const event of events) if (event.kind === 'bounce') return true;
  return false;
}

/**
 * Step 2 of check(): the writes of the step into the slots of the tracked `mappings`. The owner's
 * and outsiders' (a wild DMA, a host write) are the new content, the DMA API's for somebody else
 * (another mapping, a coherent buffer) are not. Mapping by mapping, in the step's order (its DMAs,
 * then its bounces), each looking only at the chunks of its own slots: a DMA of hundreds of MiB
 * next to a few slots costs the walk over its pieces. Only called with mappings to update: the
 * step's DMAs, bounces and calls (hundreds in a per-page sweep) need no look otherwise.
 */
function takeWrites(view: View, step: Step, mappings: ReadonlyMap<number, Tracked>): void {
  let hostWritten: Set<number> | undefined;
  for (const record of step.callRuns ?? step.calls) {
    if (record.prim !== 'host_write' || record.result !== 'ok') continue;
    for (let i = 0, n = callsIn(record); i < n; i++) (hostWritten ??= new Set()).add(pfnOf(argAt(record, 'hpa', i)));
  }
  // Bounces are never runs: the records as logged.
  const events = step.guestEventRuns ?? step.guestEvents;
  // Most steps write nothing: then no mapping has anything to take.
  if (hostWritten === undefined && !writesSlots(step.dmas, events)) return;
  for (const tracked of mappings.values()) {
    const id = tracked.mapping.id;
    for (const dma of step.dmas) {
      if (!dma.write) continue;
      const outsider = !dma.legit || dma.target === undefined;
      if (!outsider && !(dma.target?.kind === 'map' && dma.target.id === id)) continue;
      for (let i = 0, n = dmaChunks(dma, tracked.firstChunk, tracked.lastChunk); i < n; i++) {
        // An interleaved write may land before or after the op's copies: one more possible content.
        if (dma.during !== undefined) tracked.allowed.addToKnown(moved.chunks[i]!, moved.tokens[i]!);
        else tracked.allowed.only(moved.chunks[i]!, moved.tokens[i]!);
      }
    }
    for (const event of events) {
      if (event.kind !== 'bounce' || event.map !== id) continue;
      const first = Math.max(chunkOf(event.to), tracked.firstChunk);
      const last = Math.min(chunkOf(event.to + event.len - 1), tracked.lastChunk);
      for (let c = first; c <= last; c++) {
        const token = tokenAt(view, Math.max(event.to, c * CHUNK));
        if (token !== undefined) tracked.allowed.only(c, token);
      }
    }
    if (hostWritten === undefined) continue;
    for (let chunk = tracked.firstChunk; chunk <= tracked.lastChunk; chunk++) {
      const hpa = cpu.hpa(view, chunk * CHUNK);
      if (hpa >= 0 && hostWritten.has(pfnOf(hpa))) tracked.allowed.only(chunk, view.memory.token(hpa));
    }
  }
}

export default defineOracle({
  name: 'bounce-integrity',
  description: 'data written by a device through a bounce buffer arrives in the original buffer after sync/unmap, and the device reads what the CPU put in the original',
  severity: 'correctness',

  check(view: View, step: Step) {
    let state = states.get(view);
    if (state === undefined) {
      state = { mappings: new Map(), order: [] };
      states.set(view, state);
    }
    const out = found;
    cpu.forget();
    // The live mappings before this step: `sync {map}` indexes them (state.order is replaced, never changed in place).
    const before = state.order;
    const race = raceOf(view, step);
    const { racing, overwritten } = race;

    // 1. Device reads through a mapping see what the slot was given.
    for (const dma of step.dmas) {
      if (dma.write || dma.target?.kind !== 'map') continue;
      const tracked = state.mappings.get(dma.target.id);
      if (tracked === undefined || tracked.mapping.dir === 'from_device') continue;
      for (let i = 0, n = dmaChunks(dma, tracked.firstChunk, tracked.lastChunk); i < n; i++) {
        const chunk = moved.chunks[i]!;
        const token = moved.tokens[i]!;
        if (!tracked.allowed.has(chunk) || tracked.allowed.includes(chunk, token)) continue;
        if (dma.during !== undefined && racing.get(chunk)?.has(token) === true) continue;
        const gpa = Math.max(chunk * CHUNK, tracked.mapping.tlbAddr ?? 0);
        const piece = dma.result.pieces.find((p) => gpa >= p.gpa && gpa < p.gpa + p.len);
        out.push({
          message:
            `dev ${dma.dev} read map ${tracked.mapping.id} (${tracked.mapping.dir}) at slot ${hex(gpa)}: data #${token}, ` +
            `but the CPU put #${tracked.allowed.list(chunk).join('/#')} there${piece ? ` (hpa ${hex(piece.hpa + (gpa - piece.gpa))}${piece.fromIotlb ? ', from the IOTLB' : ''})` : ''} ==> FAIL (device reads the wrong bounce data)`,
          details: {
            dev: dma.dev,
            iova: dma.iova,
            gpa,
            ...(piece ? { hpa: piece.hpa + (gpa - piece.gpa), sizes: { s2: piece.s2Size, checked: piece.checkedSize } } : {}),
            map: tracked.mapping.id,
          },
        });
        break;
      }
    }

    // 2. Writes into slots: the owner's and outsiders' are the new content, the DMA API's for somebody else are not.
    if (state.mappings.size > 0) takeWrites(view, step, state.mappings);

    // 3. Mappings that went away were copied back (unless to_device); new ones are tracked.
    const mappings = view.guest.mappings;
    const changed = !sameMappings(before, mappings);
    const live = changed ? new Map<number, StreamingMapping>() : undefined;
    if (live !== undefined) {
      for (const mapping of mappings) if (mapping.tlbAddr !== undefined) live.set(mapping.id, mapping);
      // Deleting the entry being visited leaves a Map's iteration over the rest as it was: no copy.
      for (const [id, tracked] of state.mappings) {
        if (live.has(id)) continue;
        if (tracked.mapping.dir !== 'to_device') checkCopyBack(view, tracked, 'unmap', out, racing, overwritten);
        state.mappings.delete(id);
      }
    }
    if (step.op.op === 'sync' && before.length > 0) {
      const id = before[((step.op.map % before.length) + before.length) % before.length];
      const tracked = id === undefined ? undefined : state.mappings.get(id);
      // Without a change, every tracked mapping is still live.
      if (tracked !== undefined && (live === undefined || live.has(tracked.mapping.id)) && tracked.mapping.dir !== 'to_device') {
        checkCopyBack(view, tracked, 'dma_sync_single_for_cpu', out, racing, overwritten);
      }
    }
    if (live !== undefined) {
      for (const [id, mapping] of live) {
        if (state.mappings.has(id)) continue;
        const tracked = track(view, mapping);
        // A write that raced the mapping's own bounce may be what the slot holds; an original
        // overwritten by an interleaved write may have been bounced before or after it.
        if (race !== NO_RACE) allowRaces(tracked, racing, overwritten);
        state.mappings.set(id, tracked);
      }
      state.order = mappings.map((m) => m.id);
    }
    return out.take();
  },
});
