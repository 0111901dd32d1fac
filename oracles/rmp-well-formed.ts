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
// The index lives in typed arrays per 2M region (each frame's key; how many frames claim each
// key), so a step allocates nothing; only a finding lists the frames of a key, by a scan. It also
// counts the keys claimed twice: while there are none (every correct run), a step updates the
// index and looks at no key.

import { FRAME_LIMIT, argAt, callsIn, defaultRmpEntry, FRAMES_PER_2M, SZ_2M, SZ_4K, defineOracle, hex, offsetIn, pfn2M, type CallRecord, type RmpEntry, type Step, type View } from 'cocofuzz/api';
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
  /** Frame region (pfn / 512) -> the key each frame claims (NO_KEY). */
  keyOfFrame: RegionArrays<Float64Array>;
  /** claimsIndex(key) (ASID, GPA 2M region) -> how many assigned frames claim each key of it. */
  claims: RegionArrays<Uint32Array>;
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
/** The touched frames whose key the step changed and the key each left, in pairs (reused). */
const left: number[] = [];
/** PSMASH: which of the 512 frames a later call of the step rewrote. */
const rewritten = new Uint8Array(FRAMES_PER_2M);

const newKeys = (): Float64Array => new Float64Array(FRAMES_PER_2M).fill(NO_KEY);
const newClaims = (): Uint32Array => new Uint32Array(FRAMES_PER_2M);

function claimsOf(state: State, key: number, create: boolean): Uint32Array | undefined {
  return create ? state.claims.getOrCreate(claimsIndex(key)) : state.claims.get(claimsIndex(key));
}

const claimCount = (state: State, key: number): number => claimsOf(state, key, false)?.[claimsSlot(key)] ?? 0;

/** Record that `pfn` now claims `key`; returns the key it claimed before. */
function setFrame(state: State, pfn: number, key: number): number {
  const index = regionOf(pfn);
  const keys = key === NO_KEY ? state.keyOfFrame.get(index) : state.keyOfFrame.getOrCreate(index);
  if (keys === undefined) return NO_KEY;
  const i = slotOf(pfn);
  const old = keys[i]!;
  if (old === key) return old;
  if (old !== NO_KEY && claimsOf(state, old, false)![claimsSlot(old)]!-- === 2) state.duplicates--;
  if (key !== NO_KEY && ++claimsOf(state, key, true)![claimsSlot(key)]! === 2) state.duplicates++;
  keys[i] = key;
  return old;
}

/** The key `pfn` claims in the index (NO_KEY). */
const keyAt = (state: State, pfn: number): number => state.keyOfFrame.get(regionOf(pfn))?.[slotOf(pfn)] ?? NO_KEY;

/**
 * The keys a step must re-check, in the order the step reached them: for each touched frame, the
 * key it left (from `left`: frame, old key pairs of the frames whose key changed, in frame order)
 * and the key it claims. Built only when some key is claimed twice.
 */
function candidates(state: State, step: Step, left: readonly number[], out: number[]): void {
  out.length = 0;
  let next = 0;
  for (const range of step.frameRanges) {
    for (let pfn = range.start; pfn < range.end; pfn++) {
      const key = keyAt(state, pfn);
      if (next < left.length && left[next] === pfn) {
        out.push(left[next + 1]!);
        next += 2;
      }
      if (key !== NO_KEY) out.push(key);
    }
  }
}

/** The frames claiming `key`, ascending (a scan: only for a finding). */
function framesOf(state: State, key: number): number[] {
  const out: number[] = [];
  for (const [index, keys] of [...state.keyOfFrame.entries()].sort((a, b) => a[0] - b[0])) {
    for (let i = 0; i < FRAMES_PER_2M; i++) if (keys[i] === key) out.push(index * FRAMES_PER_2M + i);
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
      if (record.prim !== 'pvalidate') continue;
      const pages = record.args.size === '2M' ? FRAMES_PER_2M : 1;
      for (let i = 0, n = callsIn(record); i < n; i++) {
        const start = Math.floor(argAt(record, 'gpa', i) / SZ_4K);
        for (let gfn = Math.max(start, first); gfn < Math.min(start + pages, first + FRAMES_PER_2M); gfn++) this.pages[gfn - first] = 1;
      }
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
    if (record.prim !== 'rmpupdate' && record.prim !== 'psmash') continue;
    for (let i = k === index ? r + 1 : 0, n = callsIn(record); i < n; i++) {
      if (record.prim === 'rmpupdate' && record.result === 0) {
        const pfn = Math.floor(argAt(record, 'hpa', i) / SZ_4K);
        const count = record.args.size === '2M' ? FRAMES_PER_2M : 1;
        for (let f = Math.max(pfn, base); f < Math.min(pfn + count, base + FRAMES_PER_2M); f++) rewritten[f - base] = 1;
      } else if (record.prim === 'psmash' && Math.floor(argAt(record, 'hpa', i) / SZ_4K) === base) {
        // Smashed again later in the step: that PSMASH is the one to judge.
        return true;
      }
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
  // frame when assigned.
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
    if (problem === '') continue;
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
  const state: State = { keyOfFrame: new RegionArrays(newKeys), claims: new RegionArrays(newClaims), psmashes: view.counters.psmash, rmpUpdates: view.counters.rmpUpdate, duplicates: 0 };
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
    // ASID 0 is the hypervisor and firmware: its entries carry no guest GPA.
    if (run.assigned && run.asid !== 0) for (let f = pfn; f < end; f++) setFrame(state, f, keyOf(run.asid, run.gpa + (f - pfn) * SZ_4K));
    pfn = end;
  }
  // Each duplicated key once, in the order its first frame was indexed.
  keysToCheck.length = 0;
  for (const [, keys] of [...state.keyOfFrame.entries()].sort((a, b) => a[0] - b[0])) {
    for (let i = 0; i < FRAMES_PER_2M; i++) {
      const key = keys[i]!;
      if (key !== NO_KEY && claimCount(state, key) >= 2 && !keysToCheck.includes(key)) keysToCheck.push(key);
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
      // Run by run within each 2M region: a run's keys follow from its first entry, and a run
      // that claims no key changes nothing in a region the index holds no key of.
      for (let pfn = range.start; pfn < range.end; ) {
        const region = pfn2M(pfn);
        if (region !== lastRegion) {
          lastRegion = region;
          checkRegion(view, region, findings);
        }
        if (!keysMoved) {
          pfn = Math.min(range.end, region + FRAMES_PER_2M);
          continue;
        }
        const first = pfn;
        const end = view.rmp.runEnd(pfn, Math.min(range.end, region + FRAMES_PER_2M));
        view.rmp.load(pfn, run);
        // ASID 0 is the hypervisor and firmware: its entries carry no guest GPA.
        const guest = run.assigned && run.asid !== 0;
        const keys = state.keyOfFrame.get(regionOf(pfn));
        if (!guest && keys === undefined) {
          pfn = end;
          continue;
        }
        // The run's keys advance one GFN (ASIDS) per frame; frames whose key the index already
        // holds (most of them: an unchanged frame of a touched range) change nothing.
        const firstKey = guest ? keyOf(run.asid, run.gpa) : NO_KEY;
        for (; pfn < end; pfn++) {
          const key = guest ? firstKey + (pfn - first) * ASIDS : NO_KEY;
          if (keys !== undefined && keys[pfn - region] === key) continue;
          const old = setFrame(state, pfn, key);
          if (old !== NO_KEY) left.push(pfn, old);
        }
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
