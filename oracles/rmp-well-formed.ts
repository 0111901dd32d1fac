// rmp-well-formed: the RMP itself is consistent (research/amd-snp.md section 6, oracles 1 and 6).
// - An assigned 2M entry sits at a 2M-aligned frame and a 2M-aligned GPA, and governs all 512
//   frames: each reads as 2M, with the head's ASID and Validated bit, at head GPA + i * 4K
//   (__snp_lookup_rmpentry() reads the level from pfn & ~511).
// - PSMASH leaves 512 4K entries with the same ASID, GPA + i * 4K and the same Validated bit
//   (comment on Linux psmash()).
// - Each GPA of a guest is backed by at most one assigned frame (RMP.gpa is injective per ASID):
//   two frames assigned at one GPA let the host swap which one the guest reaches.
//
// Incremental: the frames the step touched (their 2M regions for the 2M rules, their (ASID, GPA)
// keys in an index of all assigned frames for injectivity), plus the PSMASH calls of the step,
// looked for only when the PSMASH counter moved (view.counters.psmash counts every successful one).
// The keys are re-read only when the RMPUPDATE or PSMASH counter moved: nothing else changes them.
// The PSMASH rule needs the step's calls, so the full sweep (which sees no calls) checks the 2M and
// injectivity rules only.
//
// The index lives per 2M region (each frame's key; how many frames claim each key), so a step
// allocates nothing; only a finding lists the frames of a key, by a scan. A region is one number
// while its frames agree: the first key of a frame region whose keys advance one GFN per frame (a
// 2M entry, an untouched PSMASH result), the one count of a key region all of whose keys are
// claimed as often; it becomes a typed array only where frames differ. So a 2M conversion costs a
// few numbers, not 512 keys and claims, and a partial one (a 2M share at an unaligned GPA) claims
// and releases its keys stretch by stretch. A PSMASH is judged against the step's later RMPUPDATEs
// and PVALIDATEs of its region, found in a run of calls by arithmetic on its strided addresses
// (lib/call-pages.ts), not call by call. The index also counts the keys claimed twice: while there
// are none (every correct run), a step updates the index and looks at no key.

import { FRAME_LIMIT, argAt, callsIn, defaultRmpEntry, FRAMES_PER_2M, SZ_2M, SZ_4K, defineOracle, hex, offsetIn, pfn2M, type CallRecord, type RmpEntry, type Step, type View } from 'cocofuzz/api';
import { markCallPages } from './lib/call-pages.ts';
import { Findings } from './lib/findings.ts';
import { RegionArrays } from './lib/regions.ts';
import { regionOf, slotOf } from './lib/region-slot.ts';

/**
 * (asid, gfn) as one safe integer, gfn * 1024 + asid (an RMP ASID has 10 bits): below 2^31, a
 * small integer V8 keeps unboxed, for every guest under 8 GiB, so a step allocates no number.
 * Keys are taken apart by floor, not `%`: read back from a Float64Array a key is a double to V8,
 * and `%` on a double is a call to fmod (lib/region-slot.ts).
 */
const ASIDS = 1024;
const keyOf = (asid: number, gpa: number): number => Math.floor(gpa / SZ_4K) * ASIDS + asid;
const gfnOfKey = (key: number): number => Math.floor(key / ASIDS);
const asidOfKey = (key: number): number => key - gfnOfKey(key) * ASIDS;
const gpaOfKey = (key: number): number => gfnOfKey(key) * SZ_4K;
/** The `claims` array of a key: one per ASID and 2M GPA region. */
const claimsIndex = (key: number): number => regionOf(gfnOfKey(key)) * ASIDS + asidOfKey(key);
const claimsSlot = (key: number): number => slotOf(gfnOfKey(key));
/** A frame that is not assigned to a guest: it claims no key. */
const NO_KEY = -1;

interface State {
  /**
   * Frame region (pfn / 512) -> the key each frame claims: a number while the region is linear
   * (frame i claims that key + i * ASIDS, or every frame NO_KEY), else one key per frame.
   */
  keyOfFrame: RegionArrays<Float64Array | number>;
  /**
   * claimsIndex(key) (ASID, GPA 2M region) -> how many assigned frames claim each key of it: a
   * number while every key of the region has that count, else one count per key.
   */
  claims: RegionArrays<Uint32Array | number>;
  /** view.counters.psmash when last checked: a step that leaves it alone made no successful PSMASH. */
  psmashes: number;
  /** view.counters.rmpUpdate when last checked, likewise for RMPUPDATE. */
  rmpUpdates: number;
  /** How many keys two or more frames claim: while 0 (a correct run), a step has no key to report. */
  duplicates: number;
}

const states = new WeakMap<View, State>();
const found = new Findings();
/** Scratch for RmpView.load. */
const head = defaultRmpEntry();
const entry: RmpEntry = { ...head };
const run: RmpEntry = { ...head };
/** The keys a step must re-check, reused from step to step. */
const keysToCheck: number[] = [];
/**
 * The touched frames whose key the step changed and the keys they left, as triples (noteLeft(),
 * candidates()): the first `length` numbers count (reused, never truncated: setting an array's
 * length to 0 at every step showed in the profile).
 */
interface Left {
  triples: number[];
  length: number;
}
const left: Left = { triples: [], length: 0 };
/** PSMASH: which of the 512 frames a later call of the step rewrote. */
const rewritten = new Uint8Array(FRAMES_PER_2M);

/** Frame i of a linear key region claims `first + i * ASIDS` (NO_KEY: every frame claims none). */
const linearKey = (first: number, i: number): number => (first === NO_KEY ? NO_KEY : first + i * ASIDS);

/** The per-frame keys of frame region `index`, made from its one number when a frame first differs. */
function keysOf(state: State, index: number): Float64Array {
  const region = state.keyOfFrame.get(index) ?? NO_KEY;
  if (typeof region !== 'number') return region;
  const keys = new Float64Array(FRAMES_PER_2M);
  for (let i = 0; i < FRAMES_PER_2M; i++) keys[i] = linearKey(region, i);
  state.keyOfFrame.set(index, keys);
  return keys;
}

/** The per-key counts of claims region `index`, made from its one number when a key first differs. */
function countsOf(state: State, index: number): Uint32Array {
  const region = state.claims.get(index) ?? 0;
  if (typeof region !== 'number') return region;
  const counts = new Uint32Array(FRAMES_PER_2M).fill(region);
  state.claims.set(index, counts);
  return counts;
}

function claimCount(state: State, key: number): number {
  const region = state.claims.get(claimsIndex(key)) ?? 0;
  return typeof region === 'number' ? region : region[claimsSlot(key)]!;
}

/** How the count of keys claimed twice or more moves when one key's claims go from `before` to `after`. */
const duplicatesChange = (before: number, after: number): number => (after >= 2 ? 1 : 0) - (before >= 2 ? 1 : 0);

/**
 * One claim more or less of every key of claims region `index` (a 2M GPA range of one ASID):
 * one number while the region is uniform.
 */
function claimRegion(state: State, index: number, delta: number): void {
  const region = state.claims.get(index) ?? 0;
  if (typeof region === 'number') {
    state.claims.set(index, region + delta);
    state.duplicates += FRAMES_PER_2M * duplicatesChange(region, region + delta);
    return;
  }
  claimSlots(state, region, 0, FRAMES_PER_2M, delta);
}

/** One claim more or less of the keys in slots [from, to) of one claims region's per-key `counts`. */
function claimSlots(state: State, counts: Uint32Array, from: number, to: number, delta: number): void {
  for (let i = from; i < to; i++) {
    const before = counts[i]!;
    counts[i] = before + delta;
    state.duplicates += duplicatesChange(before, before + delta);
  }
}

/**
 * One claim more (+1) or less (-1) of each of `count` keys from `first`, one GFN apart: per claims
 * region, one number where they cover it whole (claimRegion), else a count per key.
 */
function claimKeys(state: State, first: number, count: number, delta: number): void {
  for (let key = first; count > 0; ) {
    const index = claimsIndex(key);
    const slot = claimsSlot(key);
    const n = Math.min(count, FRAMES_PER_2M - slot);
    if (n === FRAMES_PER_2M) claimRegion(state, index, delta);
    else claimSlots(state, countsOf(state, index), slot, slot + n, delta);
    key += n * ASIDS;
    count -= n;
  }
}

/**
 * Frames [pfn, end) of one frame region now claim keys `first + k * ASIDS` (NO_KEY: none), in the
 * region's per-frame keys; frames whose key changed and the keys they left go to `left`. Stretch by
 * stretch of frames whose old keys advance one GFN per frame (or are all NO_KEY): against new keys
 * that do too, such a stretch changes on every frame or on none, and its keys are claimed and
 * released as ranges (a 2M region partly converted: two stretches, not 512 keys).
 */
function setRun(state: State, pfn: number, end: number, first: number, left: Left | undefined): void {
  const index = regionOf(pfn);
  const keys = keysOf(state, index);
  const base = index * FRAMES_PER_2M;
  for (let f = pfn; f < end; ) {
    const old = keys[f - base]!;
    const key = linearKey(first, f - pfn);
    let stop = f + 1;
    while (stop < end && keys[stop - base] === linearKey(old, stop - f)) stop++;
    if (old !== key) {
      if (old !== NO_KEY) {
        claimKeys(state, old, stop - f, -1);
        if (left !== undefined) noteLeft(left, f, stop, old);
      }
      if (key !== NO_KEY) claimKeys(state, key, stop - f, 1);
      for (let g = f; g < stop; g++) keys[g - base] = linearKey(key, g - f);
    }
    f = stop;
  }
}

/**
 * Frame region `index` (all 512 frames) now claims keys `first + i * ASIDS` (NO_KEY: none), where
 * `first` is NO_KEY or the key of a 2M-aligned GPA: the keys of one claims region. Frames whose key
 * changed and the keys they left go to `left` (noteLeft()); returns false, changing nothing, when
 * the region's old keys are not linear over one claims region (then the caller goes frame by frame).
 */
function setRegion(state: State, index: number, first: number, left: Left | undefined): boolean {
  const old = state.keyOfFrame.get(index) ?? NO_KEY;
  if (typeof old !== 'number' || (old !== NO_KEY && claimsSlot(old) !== 0)) return false;
  if (old === first) return true;
  if (old !== NO_KEY) {
    claimRegion(state, claimsIndex(old), -1);
    if (left !== undefined) noteLeft(left, index * FRAMES_PER_2M, (index + 1) * FRAMES_PER_2M, old);
  }
  if (first !== NO_KEY) claimRegion(state, claimsIndex(first), 1);
  state.keyOfFrame.set(index, first);
  return true;
}

/** The key `pfn` claims in the index (NO_KEY). */
function keyAt(state: State, pfn: number): number {
  const region = state.keyOfFrame.get(regionOf(pfn)) ?? NO_KEY;
  return typeof region === 'number' ? linearKey(region, slotOf(pfn)) : region[slotOf(pfn)]!;
}

/** The key of the first frame of a run loaded into `entry`: NO_KEY unless assigned to a guest (ASID 0 is the hypervisor and firmware: its entries carry no guest GPA). */
const guestKey = (entry: RmpEntry): number => (entry.assigned && entry.asid !== 0 ? keyOf(entry.asid, entry.gpa) : NO_KEY);

/**
 * Frames [pfn, end) of one 2M frame region now claim keys `first + k * ASIDS` (NO_KEY: none): a
 * whole region onto a 2M-aligned GPA range in one step (setRegion), else frame by frame (setRun),
 * where a frame whose key the index already holds (most of them: an unchanged frame of a touched
 * range) changes nothing. Frames whose key changed and the keys they left go to `left`.
 */
function claimRun(state: State, pfn: number, end: number, first: number, left: Left | undefined): void {
  const index = regionOf(pfn);
  if (end - pfn === FRAMES_PER_2M && (first === NO_KEY || claimsSlot(first) === 0) && setRegion(state, index, first, left)) return;
  const region = state.keyOfFrame.get(index) ?? NO_KEY;
  // A linear region the run continues changes nothing (nor does claiming nothing where it holds nothing).
  if (typeof region === 'number' && first === linearKey(region, slotOf(pfn))) return;
  setRun(state, pfn, end, first, left);
}

/**
 * Frames [pfn, end) of one RMP run, whose first frame claims key `first` (NO_KEY: none), now claim
 * their keys: claimRun() region by region (the index keeps its keys per frame region; a 2M entry
 * is one number in it), each region's first key following from the run's.
 */
function claimStretch(state: State, pfn: number, end: number, first: number, left: Left | undefined): void {
  for (let f = pfn; f < end; ) {
    const stop = Math.min(end, pfn2M(f) + FRAMES_PER_2M);
    claimRun(state, f, stop, linearKey(first, f - pfn), left);
    f = stop;
  }
}

/** Frames [start, end) left keys `first + k * ASIDS`: one triple in `left` (see candidates()). */
function noteLeft(left: Left, start: number, end: number, first: number): void {
  left.triples[left.length++] = start;
  left.triples[left.length++] = end;
  left.triples[left.length++] = first;
}

/**
 * The keys a step must re-check, in the order the step reached them: for each touched frame, the
 * key it left (from `left`: triples start, end, first key of the frames [start, end) whose key
 * changed, the keys they left advancing one GFN per frame, in frame order) and the key it claims.
 * Built only when some key is claimed twice.
 */
function candidates(state: State, step: Step, left: Left, out: number[]): void {
  const triples = left.triples;
  out.length = 0;
  let next = 0;
  for (const range of step.frameRanges) {
    for (let pfn = range.start; pfn < range.end; pfn++) {
      const key = keyAt(state, pfn);
      while (next < left.length && triples[next + 1]! <= pfn) next += 3;
      if (next < left.length && triples[next]! <= pfn) out.push(triples[next + 2]! + (pfn - triples[next]!) * ASIDS);
      if (key !== NO_KEY) out.push(key);
    }
  }
}

/** The frames claiming `key`, ascending (a scan: only for a finding). */
function framesOf(state: State, key: number): number[] {
  const out: number[] = [];
  for (const [index] of [...state.keyOfFrame.entries()].sort((a, b) => a[0] - b[0])) {
    for (let pfn = index * FRAMES_PER_2M; pfn < (index + 1) * FRAMES_PER_2M; pfn++) if (keyAt(state, pfn) === key) out.push(pfn);
  }
  return out;
}

function checkKey(state: State, key: number, out: Findings): void {
  if (claimCount(state, key) < 2) return;
  const list = framesOf(state, key);
  const gpa = gpaOfKey(key);
  out.push({
    message:
      `RMP: gpa ${hex(gpa)} of asid ${asidOfKey(key)} is assigned to ${list.length} frames ` +
      `(${list.slice(0, 4).map((pfn) => `hpa ${hex(pfn * SZ_4K)}`).join(', ')}${list.length > 4 ? ', ...' : ''}) ==> FAIL (one GPA, two frames)`,
    details: { gpa, hpa: (list[0] ?? 0) * SZ_4K, asid: asidOfKey(key), frames: list.map((pfn) => pfn * SZ_4K) },
  });
}

/** The 2M rules for the region whose first frame is `base`. */
function checkRegion(view: View, base: number, out: Findings): void {
  view.rmp.load(base, head);
  if (head.size !== '2M' || !head.assigned) return;
  const hpa = base * SZ_4K;
  if (offsetIn(hpa, SZ_2M) !== 0 || offsetIn(head.gpa, SZ_2M) !== 0) {
    out.push({
      message: `RMP[2M] at hpa ${hex(hpa)} for gpa ${hex(head.gpa)} ==> FAIL (2M entry not 2M-aligned)`,
      details: { hpa, gpa: head.gpa, sizes: { rmp: '2M' } },
    });
    return;
  }
  // One run over the region means every frame continues the head (size, ASID, Validated, GPA).
  if (view.rmp.runEnd(base, base + FRAMES_PER_2M) === base + FRAMES_PER_2M) return;
  for (let i = 1; i < FRAMES_PER_2M; i++) {
    view.rmp.load(base + i, entry);
    if (
      entry.size !== '2M' ||
      entry.assigned !== head.assigned ||
      entry.asid !== head.asid ||
      entry.validated !== head.validated ||
      entry.gpa !== head.gpa + i * SZ_4K
    ) {
      out.push({
        message:
          `RMP[2M] at hpa ${hex(hpa)} (gpa ${hex(head.gpa)}, asid ${head.asid}): frame ${hex((base + i) * SZ_4K)} reads ` +
          `RMP[${entry.size}] asid ${entry.asid} gpa ${hex(entry.gpa)}${entry.validated ? ' validated' : ''} ==> FAIL (2M entry does not govern its region)`,
        details: { hpa: (base + i) * SZ_4K, gpa: entry.gpa, sizes: { rmp: entry.size } },
      });
      return;
    }
  }
}

/**
 * The GPAs PVALIDATEd by `calls[from..]`, as a bitmap of the 2M GPA region asked about last (the
 * frames of one smashed entry sit in one such region): filled by one pass over the calls.
 */
class Revalidated {
  private calls: readonly CallRecord[] = [];
  private from = 0;
  private region = -1;
  private readonly pages = new Uint8Array(FRAMES_PER_2M);

  reset(calls: readonly CallRecord[], from: number): void {
    this.calls = calls;
    this.from = from;
    this.region = -1;
  }

  has(gpa: number): boolean {
    const region = Math.floor(gpa / SZ_2M);
    if (region !== this.region) this.fill(region);
    return this.pages[Math.floor((gpa - region * SZ_2M) / SZ_4K)] === 1;
  }

  private fill(region: number): void {
    this.region = region;
    this.pages.fill(0);
    const first = region * FRAMES_PER_2M;
    for (let k = this.from; k < this.calls.length; k++) {
      const record = this.calls[k]!;
      if (record.prim === 'pvalidate') markCallPages(record, 'gpa', record.args.size === '2M' ? FRAMES_PER_2M : 1, first, this.pages);
    }
  }
}

const revalidated = new Revalidated();

/** After a successful PSMASH, the frames no later call of the step rewrote must form a clean 4K split. */
function checkPsmash(view: View, step: Step, out: Findings): void {
  // The calls as recorded: a run of calls is one record (callAt() gives each), in call order.
  const calls = step.callRuns ?? step.calls;
  for (let index = 0; index < calls.length; index++) {
    const record = calls[index]!;
    if (record.prim !== 'psmash' || record.result !== 0) continue;
    for (let r = 0, n = callsIn(record); r < n; r++) {
      const base = Math.floor(argAt(record, 'hpa', r) / SZ_4K);
      if (!smashedAgainLater(calls, index, r, base)) checkSmashed(view, calls, index, base, out);
    }
  }
}

/**
 * Frames a later call of the step rewrote (in `rewritten`), and whether a later PSMASH of the same
 * 2M entry is the one to judge; call `r` of record `index` is the PSMASH.
 */
function smashedAgainLater(calls: readonly CallRecord[], index: number, r: number, base: number): boolean {
  rewritten.fill(0);
  for (let k = index; k < calls.length; k++) {
    const record = calls[k]!;
    if (record.prim === 'rmpupdate') {
      if (record.result === 0) markCallPages(record, 'hpa', record.args.size === '2M' ? FRAMES_PER_2M : 1, base, rewritten);
    } else if (record.prim === 'psmash') {
      // Smashed again later in the step: that PSMASH is the one to judge.
      for (let i = k === index ? r + 1 : 0, n = callsIn(record); i < n; i++) if (Math.floor(argAt(record, 'hpa', i) / SZ_4K) === base) return true;
    }
  }
  return false;
}

/** The frames of the 2M entry PSMASHed by record `index` (at `base`) that no later call rewrote form a clean 4K split. */
function checkSmashed(view: View, calls: readonly CallRecord[], index: number, base: number, out: Findings): void {
  const hpa = base * SZ_4K;
  revalidated.reset(calls, index + 1);
  let refAsid = -1;
  let refGpa0 = 0;
  let validated: boolean | undefined;
  // The entries are read run by run (RmpView.runEnd): within a run only the GPA moves, 4K per
  // frame when assigned, so a run is judged by its first frame that no later call rewrote.
  let runEnd = 0;
  let runStart = 0;
  let runGpa = 0;
  for (let i = 0; i < FRAMES_PER_2M; i++) {
    if (rewritten[i] === 1) continue;
    if (i >= runEnd) {
      view.rmp.load(base + i, entry);
      runEnd = view.rmp.runEnd(base + i, base + FRAMES_PER_2M) - base;
      runStart = i;
      runGpa = entry.gpa;
    } else if (entry.assigned) {
      entry.gpa = runGpa + (i - runStart) * SZ_4K;
    }
    let problem = '';
    if (entry.size !== '4K') problem = `still RMP[${entry.size}]`;
    else if (!entry.assigned) problem = 'not assigned';
    else if (refAsid < 0) {
      refAsid = entry.asid;
      refGpa0 = entry.gpa - i * SZ_4K;
    } else if (entry.asid !== refAsid) problem = `asid ${entry.asid}, first frame asid ${refAsid}`;
    else if (entry.gpa !== refGpa0 + i * SZ_4K) problem = `gpa ${hex(entry.gpa)}, expected ${hex(refGpa0 + i * SZ_4K)}`;
    // Frames the guest PVALIDATEd after the smash may differ; the others kept the 2M entry's bit
    // (a frame that kept it needs no look at the step's PVALIDATEs).
    if (problem === '' && entry.assigned && entry.validated !== validated && !revalidated.has(entry.gpa)) {
      if (validated === undefined) validated = entry.validated;
      else problem = 'Validated bit not preserved';
    }
    if (problem === '') {
      // The rest of the run continues this entry (same size, ASID, Validated, a GPA 4K further per
      // frame): once a frame passes with the reference Validated bit, so does every later one.
      if (entry.validated === validated) i = runEnd - 1;
      continue;
    }
    out.push({
      message: `PSMASH of RMP[2M] at hpa ${hex(hpa)}: frame ${hex((base + i) * SZ_4K)} ==> FAIL (${problem})`,
      details: { hpa: (base + i) * SZ_4K, gpa: entry.gpa, sizes: { rmp: entry.size } },
    });
    break;
  }
}

/**
 * Index every assigned frame and check every region and key. The RMP is walked run by run
 * (RmpView.runEnd): a run shares assigned, ASID and size and advances its GPA 4K per frame, so its
 * frames' keys follow from its first entry, and hypervisor-owned runs (a 32G swiotlb pool shared
 * with 2M RMPUPDATEs) claim nothing and cost one step each.
 */
function sweep(view: View): void {
  const state: State = { keyOfFrame: new RegionArrays(() => NO_KEY), claims: new RegionArrays(() => 0), psmashes: view.counters.psmash, rmpUpdates: view.counters.rmpUpdate, duplicates: 0 };
  const findings = found;
  let lastRegion = -1;
  for (let pfn = 0; pfn < FRAME_LIMIT; ) {
    const end = view.rmp.runEnd(pfn, FRAME_LIMIT);
    view.rmp.load(pfn, run);
    // The 2M rules concern the regions of assigned 2M entries (each frame of one reads as 2M).
    if (run.assigned && run.size === '2M') {
      for (let region = pfn2M(pfn); region < end; region += FRAMES_PER_2M) {
        if (region === lastRegion) continue;
        lastRegion = region;
        checkRegion(view, region, findings);
      }
    }
    // The state starts empty: a run that claims nothing has nothing to change.
    const first = guestKey(run);
    if (first !== NO_KEY) claimStretch(state, pfn, end, first, undefined);
    pfn = end;
  }
  // Each duplicated key once, in the order its first frame was indexed.
  keysToCheck.length = 0;
  if (state.duplicates > 0) {
    for (const [index] of [...state.keyOfFrame.entries()].sort((a, b) => a[0] - b[0])) {
      for (let pfn = index * FRAMES_PER_2M; pfn < (index + 1) * FRAMES_PER_2M; pfn++) {
        const key = keyAt(state, pfn);
        if (key !== NO_KEY && claimCount(state, key) >= 2 && !keysToCheck.includes(key)) keysToCheck.push(key);
      }
    }
  }
  for (const key of keysToCheck) checkKey(state, key, findings);
  states.set(view, state);
}

export default defineOracle({
  name: 'rmp-well-formed',
  description:
    '2M entries 2M-aligned and governing their region; PSMASH results consistent; one GPA per assigned frame and one assigned frame per guest GPA',
  severity: 'security',
  checkCoversFinal: true,

  boot(view: View) {
    sweep(view);
    return found.take();
  },

  check(view: View, step: Step) {
    const state = states.get(view);
    if (state === undefined) {
      sweep(view);
      checkPsmash(view, step, found);
      return found.take();
    }
    const findings = found;
    left.length = 0;
    // Only a successful RMPUPDATE or PSMASH changes which key a frame claims (PVALIDATE changes the
    // Validated bit alone), and each touches its frames: without one in the step, the index
    // already holds every touched frame's key, and the regions' 2M rules are all there is to check.
    const keysMoved = view.counters.rmpUpdate !== state.rmpUpdates || view.counters.psmash !== state.psmashes;
    state.rmpUpdates = view.counters.rmpUpdate;
    let lastRegion = -1;
    for (const range of step.frameRanges) {
      // Run by run (RmpView.runEnd): a run's keys follow from its first entry, and a run that
      // claims no key changes nothing in a region the index holds no key of. The 2M rules look at
      // the head of every region the range touches: a region a run enters at its head reads as
      // that run does, so only the regions of runs of assigned 2M entries, and the region each
      // run starts in (whose head may read otherwise where the rules are broken), can be at
      // fault. So a range over a pool of hypervisor-owned 2M entries (a trusted device's attach
      // touches a 1G pool) is one run, not 512 regions.
      for (let pfn = range.start; pfn < range.end; ) {
        const end = view.rmp.runEnd(pfn, range.end);
        view.rmp.load(pfn, run);
        const last = run.assigned && run.size === '2M' ? end - 1 : pfn;
        for (let region = pfn2M(pfn); region <= last; region += FRAMES_PER_2M) {
          if (region === lastRegion) continue;
          lastRegion = region;
          checkRegion(view, region, findings);
        }
        if (keysMoved) claimStretch(state, pfn, end, guestKey(run), left);
        pfn = end;
      }
    }
    // Candidates: the keys the touched frames left and claim, checked once every frame is indexed.
    // A duplicated key (rare) is reported once, where the step first reached it.
    if (state.duplicates > 0) {
      candidates(state, step, left, keysToCheck);
      for (let k = 0; k < keysToCheck.length; k++) {
        const key = keysToCheck[k]!;
        if (claimCount(state, key) >= 2 && keysToCheck.indexOf(key) === k) checkKey(state, key, findings);
      }
    }
    if (view.counters.psmash !== state.psmashes) {
      state.psmashes = view.counters.psmash;
      checkPsmash(view, step, findings);
    }
    return findings.take();
  },

  final(view: View) {
    sweep(view);
    return found.take();
  },
});
