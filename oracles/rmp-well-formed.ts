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
// keys in an index of all assigned frames for injectivity), plus the PSMASH calls of the step. The
// PSMASH rule needs the step's calls, so the full sweep (which sees no calls) checks the 2M and
// injectivity rules only.

import { FRAMES_PER_2M, SZ_2M, SZ_4K, defineOracle, hex, type Finding, type Step, type View } from 'cocofuzz/api';

/** (asid, gfn) as one safe integer: asid < 2^10, gfn < 2^40. */
const keyOf = (asid: number, gpa: number): number => asid * 2 ** 40 + Math.floor(gpa / SZ_4K);
const asidOfKey = (key: number): number => Math.floor(key / 2 ** 40);
const gpaOfKey = (key: number): number => (key % 2 ** 40) * SZ_4K;

interface State {
  /** Assigned frame -> its (asid, gpa) key. */
  keyOfFrame: Map<number, number>;
  /** (asid, gpa) key -> the assigned frame (or frames) claiming it. */
  framesOfKey: Map<number, number | Set<number>>;
}

const states = new WeakMap<View, State>();

function setFrame(state: State, pfn: number, key: number | undefined): void {
  const old = state.keyOfFrame.get(pfn);
  if (old === key) return;
  if (old !== undefined) {
    const frames = state.framesOfKey.get(old);
    if (frames === pfn) state.framesOfKey.delete(old);
    else if (typeof frames === 'object') {
      frames.delete(pfn);
      if (frames.size === 1) state.framesOfKey.set(old, frames.values().next().value as number);
    }
    state.keyOfFrame.delete(pfn);
  }
  if (key !== undefined) {
    state.keyOfFrame.set(pfn, key);
    const frames = state.framesOfKey.get(key);
    if (frames === undefined) state.framesOfKey.set(key, pfn);
    else if (typeof frames === 'number') state.framesOfKey.set(key, new Set([frames, pfn]));
    else frames.add(pfn);
  }
}

function frameKey(view: View, pfn: number): number | undefined {
  const entry = view.rmp.entry(pfn);
  // ASID 0 is the hypervisor and firmware: its entries carry no guest GPA.
  return entry.assigned && entry.asid !== 0 ? keyOf(entry.asid, entry.gpa) : undefined;
}

function checkKey(state: State, key: number, out: Finding[]): void {
  const frames = state.framesOfKey.get(key);
  if (typeof frames !== 'object' || frames.size < 2) return;
  const list = [...frames].sort((a, b) => a - b);
  const gpa = gpaOfKey(key);
  out.push({
    message:
      `RMP: gpa ${hex(gpa)} of asid ${asidOfKey(key)} is assigned to ${list.length} frames ` +
      `(${list.slice(0, 4).map((pfn) => `hpa ${hex(pfn * SZ_4K)}`).join(', ')}${list.length > 4 ? ', ...' : ''}) ==> FAIL (one GPA, two frames)`,
    details: { gpa, hpa: (list[0] ?? 0) * SZ_4K, asid: asidOfKey(key), frames: list.map((pfn) => pfn * SZ_4K) },
  });
}

/** The 2M rules for the region whose first frame is `base`. */
function checkRegion(view: View, base: number, out: Finding[]): void {
  const head = view.rmp.entry(base);
  if (head.size !== '2M' || !head.assigned) return;
  const hpa = base * SZ_4K;
  if (hpa % SZ_2M !== 0 || head.gpa % SZ_2M !== 0) {
    out.push({
      message: `RMP[2M] at hpa ${hex(hpa)} for gpa ${hex(head.gpa)} ==> FAIL (2M entry not 2M-aligned)`,
      details: { hpa, gpa: head.gpa, sizes: { rmp: '2M' } },
    });
    return;
  }
  for (let i = 1; i < FRAMES_PER_2M; i++) {
    const entry = view.rmp.entry(base + i);
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

/** After a successful PSMASH, the frames no later call of the step rewrote must form a clean 4K split. */
function checkPsmash(view: View, step: Step, out: Finding[]): void {
  step.calls.forEach((call, index) => {
    if (call.prim !== 'psmash' || call.result !== 0) return;
    const hpa = Number(call.args.hpa);
    const base = Math.floor(hpa / SZ_4K);
    const rewritten = new Set<number>();
    const revalidated = new Set<number>();
    for (const later of step.calls.slice(index + 1)) {
      if (later.prim === 'rmpupdate' && later.result === 0) {
        const pfn = Math.floor(Number(later.args.hpa) / SZ_4K);
        const count = later.args.size === '2M' ? FRAMES_PER_2M : 1;
        for (let i = 0; i < count; i++) rewritten.add(pfn + i);
      } else if (later.prim === 'psmash') {
        if (Math.floor(Number(later.args.hpa) / SZ_4K) === base) return;
      } else if (later.prim === 'pvalidate') {
        const gpa = Number(later.args.gpa);
        const count = later.args.size === '2M' ? FRAMES_PER_2M : 1;
        for (let i = 0; i < count; i++) revalidated.add(gpa + i * SZ_4K);
      }
    }
    let reference: { asid: number; gpa0: number } | undefined;
    let validated: boolean | undefined;
    for (let i = 0; i < FRAMES_PER_2M; i++) {
      if (rewritten.has(base + i)) continue;
      const entry = view.rmp.entry(base + i);
      let problem = '';
      if (entry.size !== '4K') problem = `still RMP[${entry.size}]`;
      else if (!entry.assigned) problem = 'not assigned';
      else if (reference === undefined) reference = { asid: entry.asid, gpa0: entry.gpa - i * SZ_4K };
      else if (entry.asid !== reference.asid) problem = `asid ${entry.asid}, first frame asid ${reference.asid}`;
      else if (entry.gpa !== reference.gpa0 + i * SZ_4K) problem = `gpa ${hex(entry.gpa)}, expected ${hex(reference.gpa0 + i * SZ_4K)}`;
      // Frames the guest PVALIDATEd after the smash may differ; the others kept the 2M entry's bit.
      if (problem === '' && entry.assigned && !revalidated.has(entry.gpa)) {
        if (validated === undefined) validated = entry.validated;
        else if (entry.validated !== validated) problem = 'Validated bit not preserved';
      }
      if (problem === '') continue;
      out.push({
        message: `PSMASH of RMP[2M] at hpa ${hex(hpa)}: frame ${hex((base + i) * SZ_4K)} ==> FAIL (${problem})`,
        details: { hpa: (base + i) * SZ_4K, gpa: entry.gpa, sizes: { rmp: entry.size } },
      });
      return;
    }
  });
}

function sweep(view: View): { state: State; findings: Finding[] } {
  const state: State = { keyOfFrame: new Map(), framesOfKey: new Map() };
  const findings: Finding[] = [];
  let lastRegion = -1;
  for (const pfn of view.rmp.frames()) {
    const region = pfn - (pfn % FRAMES_PER_2M);
    if (region !== lastRegion) {
      lastRegion = region;
      checkRegion(view, region, findings);
    }
    const key = frameKey(view, pfn);
    if (key !== undefined) setFrame(state, pfn, key);
  }
  for (const key of state.framesOfKey.keys()) checkKey(state, key, findings);
  states.set(view, state);
  return { state, findings };
}

export default defineOracle({
  name: 'rmp-well-formed',
  description:
    '2M entries 2M-aligned and governing their region; PSMASH results consistent; one GPA per assigned frame and one assigned frame per guest GPA',
  severity: 'security',

  check(view: View, step: Step) {
    const state = states.get(view);
    if (state === undefined) {
      const { findings } = sweep(view);
      checkPsmash(view, step, findings);
      return findings;
    }
    const findings: Finding[] = [];
    const keys = new Set<number>();
    let lastRegion = -1;
    for (const pfn of step.frames) {
      const region = pfn - (pfn % FRAMES_PER_2M);
      if (region !== lastRegion) {
        lastRegion = region;
        checkRegion(view, region, findings);
      }
      const old = state.keyOfFrame.get(pfn);
      const key = frameKey(view, pfn);
      setFrame(state, pfn, key);
      if (old !== undefined) keys.add(old);
      if (key !== undefined) keys.add(key);
    }
    for (const key of keys) checkKey(state, key, findings);
    checkPsmash(view, step, findings);
    return findings;
  },

  final(view: View) {
    return sweep(view).findings;
  },
});
