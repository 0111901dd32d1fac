// npt-rmp-size: KVM never maps a private GPA with an NPT leaf larger than the RMP entry beneath
// it: the NPT level is min(fault level, gmem folio order, RMP level) (sev_gmem_max_mapping_level(),
// kvm_gmem_max_mapping_level(); research/amd-snp.md section 2b and section 6, oracle 2). The
// reverse (NPT 4K over RMP 2M) is a recoverable #NPF that KVM fixes with PSMASH, not a violation.
// Bugs that break it: KVM's max-level bug (aca0ec970d76) and re-promotion after a round trip
// (Michael Roth's scenario), section 7 items 5 and 6.
//
// A leaf is private where it covers a frame assigned to the guest's ASID. Only NPT leaves of 2M
// or more can be larger than an RMP entry, so only those are looked at.
//
// Incremental: the NPT leaf at each GFN the step touched, and the 2M-or-larger leaves over each
// frame it touched, found through a reverse index (host 2M region -> GPAs of large leaves seen).
// A leaf of 2M or more covers whole 2M regions, so one leaf lookup (into a reused Leaf) per
// touched 2M region finds every large leaf over the touched GFNs; the RMP under a leaf is read run
// by run (RmpView.runEnd), not frame by frame. The sweep visits the large leaves only, one look
// per mapped 2M block, and none while the NPT holds no leaf of 2M or more (PageTableView.leafBytes).

import { defaultRmpEntry, FRAMES_PER_2M, SZ_2M, SZ_4K, defineOracle, formatSize, hex, type Finding, type Leaf, type Step, type View } from 'cocofuzz/api';
import { Findings } from './lib/findings.ts';
import { NumberList } from './lib/number-list.ts';
import { firstEndAbove } from './lib/runs.ts';

/** RMP entries view.rmp.load() fills (reused: no object per frame). */
const headEntry = defaultRmpEntry();
const subEntry = defaultRmpEntry();

interface State {
  /** Host 2M region (pfn / 512) -> GPAs of the 2M-or-larger NPT leaves seen over it. */
  reverse: Map<number, NumberList>;
  /**
   * The keys of `reverse`, ascending: a step's frame range is matched against the regions the
   * index holds, not looked up region by region (a trusted device's attach touches a 1G swiotlb
   * pool's 512 regions, of which the index holds none).
   */
  regions: number[];
}

const states = new WeakMap<View, State>();
const found = new Findings();
/** Scratch for PageTableView.leafInto. */
const nptLeaf: Leaf = { iova: 0, pa: 0, size: 0 };
/** GPAs of the large leaves to check in this step, in the order they were found (reused). */
const candidates = new NumberList();
/** First GPAs of the leaves checked in this step: each leaf once (reused). */
const checked = new NumberList();

/** Index and check `leaf` if it is 2M or more and this step has not checked it yet. */
function checkOnce(view: View, state: State, leaf: Leaf): void {
  if (leaf.size < SZ_2M || checked.includes(leaf.iova)) return;
  checked.push(leaf.iova);
  index(state, leaf);
  checkLeaf(view, leaf, found);
}

function index(state: State, leaf: Leaf): void {
  for (let offset = 0; offset < leaf.size; offset += SZ_2M) {
    const region = Math.floor((leaf.pa + offset) / SZ_2M);
    let gpas = state.reverse.get(region);
    if (gpas === undefined) {
      state.reverse.set(region, (gpas = new NumberList()));
      state.regions.splice(firstAtOrAfter(state.regions, region), 0, region);
    }
    gpas.pushOnce(leaf.iova);
  }
}

/** The first frame under `leaf` that is private and governed by a smaller RMP entry. */
function checkLeaf(view: View, leaf: Leaf, out: Findings): void {
  if (leaf.size < SZ_2M) return;
  for (let offset = 0; offset < leaf.size; offset += SZ_2M) {
    const base = Math.floor((leaf.pa + offset) / SZ_4K);
    const head = view.rmp.load(base, headEntry);
    let pfn: number | undefined;
    if (head.size === '2M') {
      if (leaf.size > SZ_2M && head.assigned && head.asid === view.asid) pfn = base;
    } else {
      // Run by run (RmpView.runEnd): a run shares assigned and ASID, so its first entry answers for it.
      for (let at = base; at < base + FRAMES_PER_2M; at = view.rmp.runEnd(at, base + FRAMES_PER_2M)) {
        const entry = at === base ? head : view.rmp.load(at, subEntry);
        if (entry.assigned && entry.asid === view.asid) {
          pfn = at;
          break;
        }
      }
    }
    if (pfn === undefined) continue;
    const entry = view.rmp.entry(pfn);
    const hpa = pfn * SZ_4K;
    const gpa = leaf.iova + (hpa - leaf.pa);
    out.push({
      message:
        `private access at ${hex(gpa)}: NPT[${formatSize(leaf.size)}] --> RMP[${entry.size}] at hpa ${hex(hpa)} ` +
        `==> FAIL (NPT leaf ${hex(leaf.iova)} larger than the RMP entry beneath it)`,
      details: { gpa, hpa, sizes: { npt: leaf.size, rmp: entry.size }, leaf: { iova: leaf.iova, pa: leaf.pa, size: leaf.size } },
    });
    return;
  }
}

/** The position of the first of the ascending `regions` at or after `region` (lib/runs.ts's search). */
const firstAtOrAfter = (regions: readonly number[], region: number): number => firstEndAbove(regions, regions.length, region - 1);

/** Past the end of any GPA: nextMapped() stops at the NPT's own end. */
const GPA_END = Number.MAX_SAFE_INTEGER;

/**
 * Every large leaf, in address order: one look per 2M block that something maps (nextMapped()
 * skips the unmapped space, and a block holding a 4K leaf holds no large leaf), not one step per
 * 4K leaf as leaves() would take.
 */
function sweep(view: View, state: State): Finding[] | undefined {
  if (!hasLargeLeaves(view)) return undefined;
  const npt = view.npt;
  for (let gpa = npt.nextMapped(0, GPA_END); gpa < GPA_END; gpa = npt.nextMapped(gpa, GPA_END)) {
    if (!npt.leafInto(gpa, nptLeaf)) throw new Error(`npt-rmp-size: nextMapped() found ${hex(gpa)}, which maps nothing`);
    if (nptLeaf.size < SZ_2M) {
      gpa = (Math.floor(gpa / SZ_2M) + 1) * SZ_2M;
      continue;
    }
    index(state, nptLeaf);
    checkLeaf(view, nptLeaf, found);
    gpa = nptLeaf.iova + nptLeaf.size;
  }
  return found.take();
}

/** Whether the NPT holds any leaf of 2M or more (a counter): without one, nothing can be too large. */
const hasLargeLeaves = (view: View): boolean => view.npt.leafBytes(SZ_2M) > 0;

export default defineOracle({
  name: 'npt-rmp-size',
  description: 'no private NPT leaf is larger than the RMP entry beneath it',
  severity: 'correctness',
  // test/oracles/sweep-coverage.test.ts: the check finds whatever the end-of-case sweep finds.
  checkCoversFinal: true,

  check(view: View, step: Step) {
    let state = states.get(view);
    if (state === undefined) {
      state = { reverse: new Map(), regions: [] };
      states.set(view, state);
      return sweep(view, state);
    }
    // Nothing to look at in a step that touched nothing. No look at leafBytes() per step: it sums
    // a counter per leaf size, which cost more than the one walk per touched 2M region below.
    const gfns = step.gfnRanges;
    const frames = step.frameRanges;
    if (gfns.length === 0 && frames.length === 0) return undefined;
    candidates.clear();
    checked.clear();
    // Indexed loops: for-of over a step's (often shared, frozen, empty) range arrays takes V8's generic iterator.
    for (let r = 0; r < gfns.length; r++) {
      const range = gfns[r]!;
      // One lookup per 2M region of the range (at its first touched GFN): a large leaf covers the
      // region. The leaf found is checked at once, not looked up again as a candidate. Where
      // nothing is mapped the next lookup is at the next leaf (nextMapped()): a large leaf starts
      // a 2M region, so no large leaf is passed over, and unmapped space costs no lookups.
      let gfn = range.start;
      while (gfn < range.end) {
        if (!view.npt.leafInto(gfn * SZ_4K, nptLeaf)) {
          gfn = Math.max(gfn + 1, Math.ceil(view.npt.nextMapped(gfn * SZ_4K, range.end * SZ_4K) / SZ_4K));
          continue;
        }
        checkOnce(view, state, nptLeaf);
        gfn = (Math.floor(gfn / FRAMES_PER_2M) + 1) * FRAMES_PER_2M;
      }
    }
    const regions = state.regions;
    for (let r = 0; r < frames.length; r++) {
      const range = frames[r]!;
      const last = Math.floor((range.end - 1) / FRAMES_PER_2M);
      // The regions of the range the index holds, ascending.
      for (let k = firstAtOrAfter(regions, Math.floor(range.start / FRAMES_PER_2M)); k < regions.length && regions[k]! <= last; k++) {
        const known = state.reverse.get(regions[k]!)!;
        for (let i = 0; i < known.count; i++) candidates.pushOnce(known.at(i));
      }
    }
    for (let c = 0; c < candidates.count; c++) if (view.npt.leafInto(candidates.at(c), nptLeaf)) checkOnce(view, state, nptLeaf);
    return found.take();
  },

  final(view: View) {
    let state = states.get(view);
    if (state === undefined) {
      state = { reverse: new Map(), regions: [] };
      states.set(view, state);
    }
    return sweep(view, state);
  },
});
