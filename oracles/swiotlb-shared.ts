// swiotlb-shared: memory the guest hands to an untrusted device must be shared for as long as the
// device may use it, and must not go back to the page allocator while still shared
// (research/amd-snp.md section 4 and section 6, oracles 11 and 12):
// - every swiotlb slot in use, and every live coherent buffer that is not private (an accepted
//   TIO device's buffers are private by design), is shared memory: the guest's page state says
//   shared AND the frame behind the GPA is unassigned in the RMP (the IOMMU lets an untrusted
//   device reach only unassigned frames);
// - a coherent buffer made of converted pages is private again once freed (dma_direct_free()
//   re-encrypts), or leaked when that fails; a leaked page is never handed out again.
//
// Incremental: the GFNs the step touched that lie in a live slot range or coherent buffer, the
// frames the step touched that back one (reverse index), every page of a buffer or slot range
// that appeared in the step, and the pages of buffers freed in the step. The frame behind a GPA
// is the NPT translation, else the host's backing.
//
// Cost: the required pages are kept as ranges (disjoint runs of GFNs, each with its owner), so a
// change of the live ranges costs per range, plus one look per page that became required: a 1G
// swiotlb pool's long-lived slot ranges are not walked page by page on every change. A step whose
// live ranges did not change compares numbers, builds no string and allocates no Set; the live
// slot ranges are followed through the pool's change log (SwiotlbView.changesSince(),
// lib/live-slots.ts), so a map or an unmap applies its one change instead of listing them all. Owners are
// described in words only for a finding. A touched stretch of frames that backed consecutive GFNs
// all in the step's touched GFNs, checked just before, is not read frame by frame
// (lib/frame-gfns.ts).

import { defaultRmpEntry, GUEST_PAGE_SHARED, SZ_4K, defineOracle, hex, type CoherentBuffer, type Finding, type Step, type View } from 'cocofuzz/api';
import { Findings } from './lib/findings.ts';
import { CpuFrames } from './lib/cpu-frames.ts';
import { FrameGfns } from './lib/frame-gfns.ts';
import { LiveSlots } from './lib/live-slots.ts';
import { NumberList } from './lib/number-list.ts';
import { RangeSet } from './lib/range-set.ts';
import { firstEndAbove, holdsAll } from './lib/runs.ts';

/** RMP entries view.rmp.load() fills (reused: no object per frame). */
const sharedEntry = defaultRmpEntry();

const SLOT = 2048;

/** What needs a page shared: a live slot range or a coherent buffer, as seen when marked. */
interface Owner {
  /** swiotlb slots: slotIndex, nslots, tlbAddr; buffer: the buffer. */
  slotIndex: number;
  nslots: number;
  tlbAddr: number;
  buffer: CoherentBuffer | undefined;
}

const describeOwner = (owner: Owner): string =>
  owner.buffer !== undefined
    ? `coherent buffer ${owner.buffer.id} (${owner.buffer.source}, dev ${owner.buffer.dev})`
    : `swiotlb slots ${owner.slotIndex}..${owner.slotIndex + owner.nslots - 1} (tlb ${hex(owner.tlbAddr)})`;

/**
 * Disjoint runs of GFNs [start[i], end[i]) in ascending order, each required by owner[i] (an index
 * in State.owners): where two owners overlap, the run belongs to the first one marked. The first
 * `count` entries are in use: the arrays only grow, because truncating an array (`length = 0`)
 * drops its backing store in V8 and the next marking would grow it again, on every map and unmap.
 */
interface Runs {
  start: number[];
  end: number[];
  owner: number[];
  count: number;
}

const noRuns = (): Runs => ({ start: [], end: [], owner: [], count: 0 });

interface State {
  /** The required runs now, and those of the previous marking (what "newly required" is against). */
  required: Runs;
  previous: Runs;
  /** The owners of this marking: the first `ownerCount` of `owners` (objects reused from marking to marking). */
  owners: Owner[];
  ownerCount: number;
  /** The live slot ranges, followed through the pool's change log. */
  readonly slots: LiveSlots;
  /**
   * Live coherent buffers, as last seen (copies: the guest may reuse its objects), in the order
   * they first appeared; the first `bufferCount`. A handful are live: a scan beats a Map.
   */
  buffers: CoherentBuffer[];
  bufferCount: number;
  /**
   * The ids of view.guest.buffers, in its order, when `buffers` was last brought up to date: the
   * same list now means the same set, told without a search per buffer on every step.
   */
  bufferIds: NumberList;
  /** Host frame -> the GFN it backed when checked. */
  reverse: FrameGfns;
  /** Size of the guest's leaked set when last seen. */
  leaked: number;
}

const states = new WeakMap<View, State>();
const found = new Findings();
/** The pages this check has looked at: each page once per check (reset by every check and sweep). */
const checked = new RangeSet();
/** GFN ranges that became required in this check, [from, to) pairs in the order their owners were marked. */
const fresh = new NumberList();

/**
 * Whether the live slot ranges and buffers differ from those last seen (numbers only). The slot
 * ranges are followed through the pool's change log: a map or an unmap is one change to apply,
 * not a list of every live range to compare.
 */
function changed(view: View, state: State): boolean {
  if (state.slots.follow(view.guest.swiotlb)) return true;
  const buffers = view.guest.buffers;
  if (sameIds(buffers, state)) return false;
  if (buffers.length !== state.bufferCount) return true;
  for (let b = 0; b < buffers.length; b++) if (!isKnown(state, buffers[b]!.id)) return true;
  // The same buffers in another order.
  keepIds(state, buffers);
  return false;
}

/** Whether the buffers were live when last seen (state.buffers). */
function isKnown(state: State, id: number): boolean {
  for (let k = 0; k < state.bufferCount; k++) if (state.buffers[k]!.id === id) return true;
  return false;
}

function sameIds(buffers: readonly CoherentBuffer[], state: State): boolean {
  if (buffers.length !== state.bufferIds.count) return false;
  for (let b = 0; b < buffers.length; b++) if (buffers[b]!.id !== state.bufferIds.at(b)) return false;
  return true;
}

function keepIds(state: State, buffers: readonly CoherentBuffer[]): void {
  state.bufferIds.clear();
  for (let b = 0; b < buffers.length; b++) state.bufferIds.push(buffers[b]!.id);
}

/** The index of the first run of `runs` that ends after `gfn` (runs.count when none). */
const firstEndingAfter = (runs: Runs, gfn: number): number => firstEndAbove(runs.end, runs.count, gfn);

/** The owner requiring `gfn` now, or -1. */
function ownerOf(state: State, gfn: number): number {
  const runs = state.required;
  const i = firstEndingAfter(runs, gfn);
  return i < runs.count && runs.start[i]! <= gfn ? runs.owner[i]! : -1;
}

/** Collect in `fresh` the ranges of GFNs of [from, to) the previous marking did not require. */
function collectFresh(previous: Runs, from: number, to: number): void {
  let i = firstEndingAfter(previous, from);
  let at = from;
  while (at < to) {
    if (i < previous.count && previous.start[i]! <= at) {
      at = previous.end[i++]!;
      continue;
    }
    const stop = i < previous.count ? Math.min(to, previous.start[i]!) : to;
    if (at < stop) {
      fresh.push(at);
      fresh.push(stop);
    }
    at = stop;
  }
}

/** Insert run [start, end) of `owner` at index `i` of `runs`, the runs from `i` on moving up one. */
function insertRun(runs: Runs, i: number, start: number, end: number, owner: number): void {
  for (let k = runs.count; k > i; k--) {
    runs.start[k] = runs.start[k - 1]!;
    runs.end[k] = runs.end[k - 1]!;
    runs.owner[k] = runs.owner[k - 1]!;
  }
  runs.start[i] = start;
  runs.end[i] = end;
  runs.owner[i] = owner;
  runs.count++;
}

/** Require [addr, addr + len) by owner `index`, where no owner marked earlier requires it; collect the pages new to it. */
function markPages(state: State, addr: number, len: number, index: number): void {
  if (!(len > 0)) return;
  const runs = state.required;
  const end = Math.floor((addr + len - 1) / SZ_4K) + 1;
  let at = Math.floor(addr / SZ_4K);
  let i = firstEndingAfter(runs, at);
  while (at < end) {
    if (i < runs.count && runs.start[i]! <= at) {
      at = runs.end[i++]!;
      continue;
    }
    const stop = i < runs.count ? Math.min(end, runs.start[i]!) : end;
    insertRun(runs, i, at, stop, index);
    i++;
    collectFresh(state.previous, at, stop);
    at = stop;
  }
}

/** The next owner of this marking (an object of an earlier marking, rewritten); returns its index. */
function addOwner(state: State, slotIndex: number, nslots: number, tlbAddr: number, buffer: CoherentBuffer | undefined): number {
  const index = state.ownerCount++;
  const owner = state.owners[index];
  if (owner === undefined) state.owners.push({ slotIndex, nslots, tlbAddr, buffer });
  else {
    owner.slotIndex = slotIndex;
    owner.nslots = nslots;
    owner.tlbAddr = tlbAddr;
    owner.buffer = buffer;
  }
  return index;
}

/** A new marking of the required pages: the live slot ranges, then the non-private buffers. */
function markRequired(view: View, state: State): void {
  const previous = state.previous;
  state.previous = state.required;
  state.required = previous;
  previous.count = 0;
  state.ownerCount = 0;
  fresh.clear();
  const swiotlb = view.guest.swiotlb;
  const slots = state.slots;
  slots.follow(swiotlb);
  for (let i = 0; i < slots.count; i++) {
    const slotIndex = slots.slotIndex[i]!;
    const nslots = slots.nslots[i]!;
    markPages(state, swiotlb.base + slotIndex * SLOT, nslots * SLOT, addOwner(state, slotIndex, nslots, slots.tlbAddr[i]!, undefined));
  }
  for (const buffer of view.guest.buffers) {
    if (buffer.source === 'private') continue;
    markPages(state, buffer.gpa, buffer.bytes, addOwner(state, 0, 0, 0, buffer));
  }
}

/** Check `gfn` if the page is required now and was not checked yet in this check. */
function checkPage(view: View, state: State, gfn: number): void {
  const owner = ownerOf(state, gfn);
  if (owner >= 0) checkOwned(view, state, gfn, owner);
}

/** Check `gfn`, required by owner `owner`, unless this check did already. */
function checkOwned(view: View, state: State, gfn: number, owner: number): void {
  if (checked.has(gfn)) return;
  checked.add(gfn, gfn + 1);
  checkShared(view, state, gfn, state.owners[owner]!);
}

/** Check the required pages among GFNs [from, to), run by run. */
function checkRun(view: View, state: State, from: number, to: number): void {
  const runs = state.required;
  for (let i = firstEndingAfter(runs, from); i < runs.count && runs.start[i]! < to; i++) {
    checkOwnedRange(view, state, Math.max(from, runs.start[i]!), Math.min(to, runs.end[i]!), runs.owner[i]!);
  }
}

/**
 * Check GFNs [from, to), all required by owner `owner`, where this check has not yet, piece by
 * piece: a piece is one run of guest page flags, of the CPU's translation (contiguous frames) and
 * of RMP entries, so one look judges all its pages. A piece that passes only records its pages as
 * checked (and in the reverse index); one that fails is checked page by page, for the findings a
 * per-page check gives. A bounce through a 256K slot range costs a few looks, not 64.
 */
function checkOwnedRange(view: View, state: State, from: number, to: number, owner: number): void {
  for (let at = checked.firstOutside(from, to); at < to; at = checked.firstOutside(at, to)) {
    const stop = checked.outsideEnd(at, to);
    for (let gfn = at; gfn < stop; ) {
      const end = pieceEnd(view, gfn, stop);
      if (piece.passes) markChecked(state, gfn, end, piece.hpa);
      else for (let g = gfn; g < end; g++) checkOwned(view, state, g, owner);
      gfn = end;
    }
    at = stop;
  }
}

/** What pieceEnd() found about its piece (reused). */
const piece = { passes: false, hpa: -1 };

/**
 * The end (at most `to`) of the piece from `gfn` over which checkShared()'s verdict cannot
 * change; `piece` says whether it passes (shared, and unassigned in the RMP where a frame backs
 * it) and the frame behind `gfn` (-1: none, then the piece is that one page).
 */
function pieceEnd(view: View, gfn: number, to: number): number {
  const shared = (view.guest.pageFlags(gfn) & GUEST_PAGE_SHARED) !== 0;
  const hpa = cpu.hpa(view, gfn * SZ_4K);
  piece.hpa = hpa;
  piece.passes = shared;
  if (!shared) return gfn + 1;
  if (hpa < 0) return gfn + 1;
  let end = cpu.linearEnd(view, gfn, view.guest.pageRunEnd(gfn, to));
  const pfn = Math.floor(hpa / SZ_4K);
  piece.passes = !view.rmp.load(pfn, sharedEntry).assigned;
  end = Math.min(end, gfn + view.rmp.runEnd(pfn, pfn + (end - gfn)) - pfn);
  return end;
}

/** Pages [from, to), not checked yet, of a passing piece whose first page is backed by `hpa` (-1: none): checked in this check, and in the reverse index, as checkShared() records them. */
function markChecked(state: State, from: number, to: number, hpa: number): void {
  checked.add(from, to);
  if (hpa >= 0) state.reverse.setRun(Math.floor(hpa / SZ_4K), from, to - from);
}

/** The frame behind a GPA: the NPT translation, else the host's backing (one NPT walk per leaf). */
const cpu = new CpuFrames();

function checkShared(view: View, state: State, gfn: number, owner: Owner): void {
  const gpa = gfn * SZ_4K;
  const shared = (view.guest.pageFlags(gfn) & GUEST_PAGE_SHARED) !== 0;
  const hpa = cpu.hpa(view, gpa);
  if (hpa >= 0) state.reverse.set(Math.floor(hpa / SZ_4K), gfn);
  let problem = '';
  let entrySize: 'unassigned' | '4K' | '2M' = 'unassigned';
  if (!shared) problem = 'the guest holds the page private';
  else if (hpa >= 0) {
    const entry = view.rmp.load(Math.floor(hpa / SZ_4K), sharedEntry);
    if (entry.assigned) {
      entrySize = entry.size;
      problem = `RMP[${entry.size}] at hpa ${hex(hpa)} is assigned (asid ${entry.asid}, gpa ${hex(entry.gpa)})`;
    }
  }
  if (problem === '') return;
  found.push({
    message: `${describeOwner(owner)} at gpa ${hex(gpa)}: ${problem} ==> FAIL (memory an untrusted device uses is not shared)`,
    details: { gpa, ...(hpa >= 0 ? { hpa } : {}), ...(entrySize !== 'unassigned' ? { sizes: { rmp: entrySize } } : {}) },
  });
}

function checkFreed(view: View, buffer: CoherentBuffer): void {
  if (buffer.source !== 'pages') return;
  const leaked = view.guest.leaked;
  for (let gfn = Math.floor(buffer.gpa / SZ_4K); gfn <= Math.floor((buffer.gpa + buffer.bytes - 1) / SZ_4K); gfn++) {
    if (leaked.has(gfn)) continue;
    if ((view.guest.pageFlags(gfn) & GUEST_PAGE_SHARED) === 0) continue;
    found.push({
      message: `coherent buffer ${buffer.id} (pages, dev ${buffer.dev}) freed, but gpa ${hex(gfn * SZ_4K)} is still shared and not leaked ==> FAIL (shared page returned to the page allocator)`,
      details: { gpa: gfn * SZ_4K, dev: buffer.dev, buffer: buffer.id },
    });
    return;
  }
}

/** Buffers using a leaked page; `onlyNew`: only those not seen before this check. */
function checkReuse(view: View, state: State, onlyNew: boolean): void {
  const leaked = view.guest.leaked;
  if (leaked.size === 0) return;
  for (const buffer of view.guest.buffers) {
    if (buffer.source !== 'pages' && buffer.source !== 'private') continue;
    if (onlyNew && isKnown(state, buffer.id)) continue;
    for (let gfn = Math.floor(buffer.gpa / SZ_4K); gfn <= Math.floor((buffer.gpa + buffer.bytes - 1) / SZ_4K); gfn++) {
      if (!leaked.has(gfn)) continue;
      found.push({
        message: `coherent buffer ${buffer.id} (${buffer.source}, dev ${buffer.dev}) uses gpa ${hex(gfn * SZ_4K)}, a page leaked by an earlier free ==> FAIL (leaked page reused)`,
        details: { gpa: gfn * SZ_4K, dev: buffer.dev, buffer: buffer.id },
      });
      break;
    }
  }
}

/** Judge the buffers freed since the last look, in the order they appeared; `state.buffers` keeps the live ones. */
function freedBuffers(view: View, state: State): void {
  const buffers = view.guest.buffers;
  let kept = 0;
  for (let k = 0; k < state.bufferCount; k++) {
    const buffer = state.buffers[k]!;
    let live = false;
    for (let b = 0; b < buffers.length && !live; b++) live = buffers[b]!.id === buffer.id;
    if (live) state.buffers[kept++] = buffer;
    else checkFreed(view, buffer);
  }
  state.bufferCount = kept;
}

/** Copy the buffers not seen before after those kept, in the guest's order. */
function rememberBuffers(view: View, state: State): void {
  const buffers = view.guest.buffers;
  const known = state.bufferCount;
  for (let b = 0; b < buffers.length; b++) {
    let seen = false;
    for (let k = 0; k < known && !seen; k++) seen = state.buffers[k]!.id === buffers[b]!.id;
    if (!seen) state.buffers[state.bufferCount++] = { ...buffers[b]! };
  }
  keepIds(state, buffers);
}

function sweep(view: View): Finding[] | undefined {
  let state = states.get(view);
  if (state === undefined) {
    state = {
      required: noRuns(),
      previous: noRuns(),
      owners: [],
      ownerCount: 0,
      slots: new LiveSlots(),
      buffers: [],
      bufferCount: 0,
      bufferIds: new NumberList(),
      reverse: new FrameGfns(),
      leaked: 0,
    };
    states.set(view, state);
  } else state.reverse = new FrameGfns();
  checked.clear();
  cpu.forget();
  freedBuffers(view, state);
  rememberBuffers(view, state);
  markRequired(view, state);
  // Every required page, in the order its owner was marked (fresh holds only the new ones).
  for (let o = 0; o < state.ownerCount; o++) {
    const owner = state.owners[o]!;
    const addr = owner.buffer !== undefined ? owner.buffer.gpa : view.guest.swiotlb.base + owner.slotIndex * SLOT;
    const len = owner.buffer !== undefined ? owner.buffer.bytes : owner.nslots * SLOT;
    if (!(len > 0)) continue;
    checkRun(view, state, Math.floor(addr / SZ_4K), Math.floor((addr + len - 1) / SZ_4K) + 1);
  }
  state.leaked = view.guest.leaked.size;
  checkReuse(view, state, false);
  return found.take();
}

export default defineOracle({
  name: 'swiotlb-shared',
  description:
    'every swiotlb slot in use and every live non-private coherent buffer is shared memory for its whole life, and private again (or leaked, never reused) after free',
  severity: 'security',
  // test/oracles/sweep-coverage.test.ts: the check finds whatever the end-of-case sweep finds.
  checkCoversFinal: true,

  check(view: View, step: Step) {
    const state = states.get(view);
    if (state === undefined) return sweep(view);
    checked.clear();
    cpu.forget();
    fresh.clear();
    if (changed(view, state)) {
      markRequired(view, state);
      freedBuffers(view, state);
      if (view.guest.leaked.size === state.leaked) checkReuse(view, state, true);
      rememberBuffers(view, state);
    }
    if (view.guest.leaked.size !== state.leaked) {
      state.leaked = view.guest.leaked.size;
      checkReuse(view, state, false);
    }
    // Pages that became required, then touched pages, then pages backed by touched frames: each once.
    for (let i = 0; i < fresh.count; i += 2) checkRun(view, state, fresh.at(i), fresh.at(i + 1));
    // Indexed loops: for-of over a step's (often shared, frozen, empty) range arrays takes V8's generic iterator.
    const gfns = step.gfnRanges;
    for (let r = 0; r < gfns.length; r++) checkRun(view, state, gfns[r]!.start, gfns[r]!.end);
    const frames = step.frameRanges;
    for (let r = 0; r < frames.length; r++) {
      const range = frames[r]!;
      for (let pfn = range.start; pfn < range.end; ) {
        const end = state.reverse.stretch(pfn, range.end);
        const gfn = state.reverse.gfn;
        // Frames that backed GFNs the touched ranges hold (a conversion touches a page and its
        // frame alike) were looked at just now: nothing more to do.
        if (gfn >= 0 && !holdsAll(gfns, gfn, gfn + (end - pfn))) for (let g = gfn; g < gfn + (end - pfn); g++) checkPage(view, state, g);
        pfn = end;
      }
    }
    return found.take();
  },

  final(view: View) {
    return sweep(view);
  },
});
