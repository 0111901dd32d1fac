// The state-coverage signal (issue 16): what a campaign keeps a case for. Computed by the engine
// from the step and the read-only view after it, never by user oracles, and never feeding back
// into the run: a case's verdict does not depend on whether coverage is on.
//
// A feature is an *abstract situation*, free of addresses: an old situation at a new address is
// not new. Like syzkaller's signal (edges, not PCs) and TLC's per-action coverage, three kinds:
//   op:<kind>:<outcome>            the op kind and how it ended (ok, skipped, its result, a guest
//                                  error, the fault kinds it met), and interleaved inner ops;
//   call:<kind>:<prim>=<status>    each primitive call of the op with its status code;
//   <table>=<value>                each component of the region tuple below, alone (per table);
//   region:<tuple>                 the abstract tuple of a 2M guest region the step touched;
//   move:<tuple>><tuple>           a region's tuple before and after the step, when it changed.
// The region tuple: RMP size and assigned mix, validated mix, NPT leaf size, per device its S2
// leaf size and view (s2/nested, TDI state), how much of the memory the host backs in that
// view its S2 translates (s2.backed), whether the region holds a live DMA object made for the
// device and whether its S2 translates it (dma.live), and the IOTLB's cached size; the guest's
// shared mix, and
// whether the region holds swiotlb slots or an atomic-pool buffer. A "mix" is none/some/all of
// the region's 512 frames.

import { GUEST_PAGE_SHARED, GUEST_PAGE_VALIDATED, type PageTableView, type Step, type View } from '../api.ts';
import { defaultRmpEntry } from '../model/rmp.ts';
import { FRAMES_PER_2M, SZ_2M, SZ_4K } from '../model/size.ts';
import { type FaultKind, faultKindOf, faultRecordsOf } from '../model/types.ts';
import { Names } from './names.ts';

/** The tables of the region tuple and the values each can take (what `cocofuzz coverage` lists). */
export const TABLE_VALUES: Readonly<Record<string, readonly string[]>> = {
  'rmp.size': ['none', '4K', '2M', 'mixed'],
  'rmp.assigned': ['none', 'some', 'all'],
  'rmp.validated': ['none', 'some', 'all'],
  'npt.leaf': ['none', '4K', '2M', '1G', 'mixed'],
  's2.leaf': ['none', '4K', '2M', '1G', 'mixed'],
  's2.view': ['s2/unlocked', 's2/locked', 's2/run', 'nested/unlocked', 'nested/locked', 'nested/run'],
  's2.backed': ['unbacked', 'none', 'some', 'all'],
  'dma.live': ['none', 'translated', 'untranslated'],
  'iotlb.cached': ['none', '4K', '2M', 'mixed'],
  'guest.shared': ['none', 'some', 'all'],
  'guest.validated': ['none', 'some', 'all'],
  'pool': ['none', 'swiotlb', 'atomic-pool', 'both'],
};

/** Every fault kind, as a record the compiler checks is complete (a kind added to FaultKind must be listed). */
const FAULT_KINDS = { npf: 0, vc: 0, host_rmp_pf: 0, rmp_page_fault: 0, io_page_fault: 0 } satisfies Record<FaultKind, 0>;

/** DMA outcomes by (ok ? 2 : 0) + (legit ? 1 : 0). */
const DMA_OUTCOMES = ['dma failed', 'dma failed legit', 'dma ok wild', 'dma ok'] as const;

/**
 * The fixed part of an op's `op:` outcomes, which any op kind can reach (an interleaved DMA or
 * touch can ride on any op): what `cocofuzz coverage` lists as never reached per op. Results,
 * guest errors and call statuses are open text: they are listed only as reached.
 */
export const OP_OUTCOMES: readonly string[] = [
  'ok',
  'skipped',
  ...Object.keys(FAULT_KINDS).map((kind) => `fault ${kind}`),
  ...DMA_OUTCOMES,
  // Interleaved inner ops (`during`): a DMA of a stalled device waits; a touch's #NPF is deferred.
  ...['during dma', 'during dma skipped', 'during dma waited', 'during touch', 'during touch skipped', 'during touch deferred'],
];

/** The RMP entry regionTuple reads into (reused). */
const scratch = defaultRmpEntry();

/** Regions looked at per step: a conversion of 512 pages touches one; a 1G sweep is capped. */
const MAX_REGIONS_PER_STEP = 4;

// Every component is computed as a small code (its index in TABLE_VALUES), so that the tuple's
// strings are built once per distinct tuple (`tuples` below), not after every step.
const RMP_SIZE = TABLE_VALUES['rmp.size']!;
const MIX = TABLE_VALUES['rmp.assigned']!;
const LEAF = TABLE_VALUES['npt.leaf']!;
const S2_VIEW = TABLE_VALUES['s2.view']!;
/** S2_VIEW's codes by iommu, then tdi state: looked up per device of each region, without a string. */
const S2_VIEW_CODES = new Map<string, Map<string, number>>();
S2_VIEW.forEach((value, code) => {
  const [iommu, tdi] = value.split('/') as [string, string];
  let byTdi = S2_VIEW_CODES.get(iommu);
  if (byTdi === undefined) S2_VIEW_CODES.set(iommu, (byTdi = new Map<string, number>()));
  byTdi.set(tdi, code);
});
const BACKED = TABLE_VALUES['s2.backed']!;
const CACHED = TABLE_VALUES['iotlb.cached']!;
const POOL = TABLE_VALUES.pool!;
const LEAF_NONE = 0;

const mix = (count: number, total: number): number => (count === 0 ? 0 : count === total ? 2 : 1);

/** A leaf size's code in LEAF (4K, 2M, 1G). */
const sizeCode = (size: number): number => (size >= 1024 * SZ_2M ? 3 : size >= SZ_2M ? 2 : 1);

/**
 * The leaf sizes covering the 2M region [base, base + 2M): one size, "mixed", or "none" (nothing
 * mapped), as a LEAF code. Leaves are naturally aligned, so a leaf of 2M or more that reaches the
 * region covers all of it, base included; any other leaf in the region is smaller than 2M. So the
 * leaf at `base` decides, and without one the region is "4K" if anything in it is mapped: two
 * look-ups instead of a walk over up to 512 leaves (and their objects). "mixed" cannot occur
 * within one aligned 2M region; TABLE_VALUES keeps it for the tables' sake.
 */
function leafCode(table: PageTableView, base: number): number {
  if (table.leafInto(base, leafScratch)) return sizeCode(leafScratch.size);
  return table.nextMapped(base, base + SZ_2M) < base + SZ_2M ? sizeCode(SZ_4K) : LEAF_NONE;
}

/** The IOTLB entries overlapping [base, end) by size, as an `iotlb.cached` code. */
function cachedMix(device: View['devices'][number], base: number, end: number): number {
  if (device.iotlb.size === 0 || !device.iotlb.overlaps(base, end - base)) return 0;
  let seen = 0;
  for (const entry of device.iotlb.entries()) {
    const size = entry.size === '2M' ? SZ_2M : SZ_4K;
    if (entry.addr >= end || entry.addr + size <= base) continue;
    const code = size === SZ_2M ? 2 : 1;
    if (seen !== 0 && seen !== code) return 3;
    seen = code;
  }
  return seen;
}

/** Components per device in the tuple: s2.leaf, s2.view, s2.backed, dma.live, iotlb.cached. */
const PER_DEVICE = 5;
const LIVE = TABLE_VALUES['dma.live']!;

/**
 * The device's live DMA objects over [base, end), as a `dma.live` code: `none` (no memory of a
 * coherent buffer or streaming mapping made for it: the mapping's bounce slots when it bounces),
 * `translated` (its S2 translates every page of theirs the host backs in the device's view to that
 * backing) or `untranslated` (it does not: one DMA away from a dma-liveness finding; a correct
 * policy never gets there). What host changes do to memory a device is using is this tool's
 * central question, so a region's situation under a live buffer is not the same situation
 * elsewhere: s2.backed alone could not tell a hole under a buffer from one beside it, and the
 * corpus kept neither for it (bench/README.md, "dma.live"). Reads the region's backing as
 * readBacking() left it.
 */
function liveCode(view: View, device: View['devices'][number], base: number, end: number): number {
  let live = 0;
  for (const b of view.guest.buffers) {
    if (b.dev === device.id) live = Math.max(live, objectCode(device, b.gpa, b.bytes, base, end));
    if (live === 2) return 2;
  }
  for (const m of view.guest.mappings) {
    if (m.dev === device.id) live = Math.max(live, objectCode(device, m.tlbAddr ?? m.orig, m.bytes, base, end));
    if (live === 2) return 2;
  }
  return live;
}

/** liveCode() of one object at [at, at + bytes): 0 outside [base, end), else 1 translated, 2 not. */
function objectCode(device: View['devices'][number], at: number, bytes: number, base: number, end: number): number {
  if (at >= end || at + bytes <= base) return 0;
  return translated(device, Math.max(base, at), Math.min(end, at + bytes)) ? 1 : 2;
}

/** Does the device's S2 translate every page of [from, to) the host backs in its view to that backing? */
function translated(device: View['devices'][number], from: number, to: number): boolean {
  const privateView = device.tdi !== 'unlocked';
  const first = from - (from % SZ_4K);
  for (let r = 0; r < backing.count; r++) {
    const hpa = backing.hpa[r]!;
    if (hpa < 0 || backing.shared[r] === privateView) continue;
    const gpa = backing.start[r]! * SZ_4K;
    const at = Math.max(gpa, first);
    const stop = Math.min(backing.end[r]! * SZ_4K, to);
    if (at < stop && device.s2.linearEnd(at, stop, hpa + (at - gpa)) < stop) return false;
  }
  return true;
}

/** The leaf leafCode() and backedCode() look leaves up into (reused). */
const leafScratch = { iova: 0, pa: 0, size: 0 };

/**
 * How much of what the host backs in the device's view over [base, base + 2M) the device's S2
 * translates to that backing, as an `s2.backed` code: `unbacked` (the host backs nothing there in
 * that view), `none`, `some` or `all`. The view is the private one from TDI lock on (the VMM
 * moves the IOMMUFD before RUN, host.ts tdiRun()), else the shared one; the backing is what
 * mirror() maps (src/host/iommu.ts). A region the CPU reaches that the device's S2 lags behind,
 * or the reverse, is a situation of its own whatever its leaf sizes: the relation between the
 * two views, not each one's shape, is what coherence bugs break (a fault-in the IOMMU never
 * heard of, a resync that repairs it). Reads the region's backing as readBacking() left it.
 */
function backedCode(device: View['devices'][number]): number {
  const privateView = device.tdi !== 'unlocked';
  const s2 = device.s2;
  let mapped = false;
  let missing = false;
  for (let r = 0; r < backing.count && !(mapped && missing); r++) {
    const hpa = backing.hpa[r]!;
    if (hpa < 0 || backing.shared[r] === privateView) continue;
    // Walk the run: linearly mapped stretches to its backing, and gaps (unmapped or mapped elsewhere).
    const gpa = backing.start[r]! * SZ_4K;
    const stop = backing.end[r]! * SZ_4K;
    for (let at = gpa; at < stop && !(mapped && missing); ) {
      const linear = s2.linearEnd(at, stop, hpa + (at - gpa));
      if (linear > at) {
        mapped = true;
        at = linear;
        continue;
      }
      missing = true;
      const next = s2.nextMapped(at, stop);
      at = next > at ? next : s2.leafInto(at, leafScratch) ? Math.max(at + SZ_4K, leafScratch.iova + leafScratch.size) : at + SZ_4K;
    }
  }
  return mapped ? (missing ? 2 : 3) : missing ? 1 : 0;
}

/**
 * The runs of the host's backing over the region regionCodes() is computing (HostView.backingRunEnd:
 * GFNs backed by consecutive frames in one state), read once for the RMP's part and every device's
 * s2.backed: each run's GFNs, the HPA of its first page (-1: not backed), and whether it is the
 * shared view's backing. Reused from region to region.
 */
const backing = { count: 0, start: [] as number[], end: [] as number[], hpa: [] as number[], shared: [] as boolean[] };

function readBacking(view: View, firstGfn: number, lastGfn: number): void {
  backing.count = 0;
  for (let gfn = firstGfn; gfn < lastGfn; ) {
    const end = view.host.backingRunEnd(gfn, lastGfn);
    const gpa = gfn * SZ_4K;
    const hpa = view.host.backingHpa(gpa);
    const r = backing.count++;
    backing.start[r] = gfn;
    backing.end[r] = end;
    backing.hpa[r] = hpa;
    backing.shared[r] = hpa >= 0 && view.host.sharedHpa(gpa) >= 0;
    gfn = end;
  }
}

/** The strings of one abstract tuple, made once per distinct tuple. */
interface Tuple {
  /** One character per component code: what tuples are cached and compared by. */
  readonly key: string;
  /** Its `table=value` parts, in TABLE_VALUES order with one s2/iotlb group per device. */
  readonly parts: readonly string[];
  /** `region:<parts joined>`. */
  readonly region: string;
  /** The parts joined by spaces (what `move:` features are made of). */
  readonly text: string;
}

/** Tuples by their key: a campaign meets a few hundred. */
const tuples = new Map<string, Tuple>();
/** `move:` features by the keys of both tuples. */
const moves = new Map<string, string>();
/** Caches are dropped past this many entries (not reached in practice; memory stays bounded). */
const CACHE_LIMIT = 100_000;

function tupleOf(codes: readonly number[], devices: number): Tuple {
  const key = String.fromCharCode(...codes);
  let tuple = tuples.get(key);
  if (tuple === undefined) {
    const parts = [`rmp.size=${RMP_SIZE[codes[0]!]}`, `rmp.assigned=${MIX[codes[1]!]}`, `rmp.validated=${MIX[codes[2]!]}`, `npt.leaf=${LEAF[codes[3]!]}`];
    for (let d = 0; d < devices; d++) {
      const at = 4 + d * PER_DEVICE;
      parts.push(`s2.leaf=${LEAF[codes[at]!]}`, `s2.view=${S2_VIEW[codes[at + 1]!]}`, `s2.backed=${BACKED[codes[at + 2]!]}`, `dma.live=${LIVE[codes[at + 3]!]}`, `iotlb.cached=${CACHED[codes[at + 4]!]}`);
    }
    const rest = 4 + devices * PER_DEVICE;
    parts.push(`guest.shared=${MIX[codes[rest]!]}`, `guest.validated=${MIX[codes[rest + 1]!]}`, `pool=${POOL[codes[rest + 2]!]}`);
    const text = parts.join(' ');
    if (tuples.size >= CACHE_LIMIT) tuples.clear();
    tuple = { key, parts, region: `region:${text}`, text };
    tuples.set(key, tuple);
  }
  return tuple;
}

/** The `move:` feature from tuple `before` to tuple `after`. */
function moveOf(before: Tuple, after: Tuple): string {
  const key = `${before.key}>${after.key}`;
  let move = moves.get(key);
  if (move === undefined) {
    if (moves.size >= CACHE_LIMIT) moves.clear();
    move = `move:${before.text}>${after.text}`;
    moves.set(key, move);
  }
  return move;
}

/** Component codes of the tuple being computed (reused). */
const codes: number[] = [];

/**
 * The abstract tuple of the 2M guest region starting at `base`, as codes of TABLE_VALUES, into
 * `codes`. Reads run by run (HostView.backingRunEnd, RmpView.runEnd, GuestView.pageRunEnd) and allocates nothing: this
 * runs for up to four regions after every step of a guided campaign.
 */
function regionCodes(view: View, base: number): void {
  const firstGfn = Math.floor(base / SZ_4K);
  let assigned = 0;
  let validated = 0;
  let size4K = false;
  let size2M = false;
  // The RMP entries of the frames backing the region, run by run: HostView.backingRunEnd() gives
  // the GFNs backed by consecutive frames (a private region is one such run), RmpView.runEnd()
  // the frames whose entries agree, so one entry stands for each piece.
  const lastGfn = firstGfn + FRAMES_PER_2M;
  readBacking(view, firstGfn, lastGfn);
  for (let r = 0; r < backing.count; r++) {
    const hpa = backing.hpa[r]!;
    if (hpa >= 0) {
      const first = Math.floor(hpa / SZ_4K);
      const last = first + (backing.end[r]! - backing.start[r]!);
      for (let pfn = first; pfn < last; ) {
        const runEnd = view.rmp.runEnd(pfn, last);
        const entry = view.rmp.load(pfn, scratch);
        if (entry.assigned && entry.asid === view.asid) {
          if (entry.size === '2M') size2M = true;
          else size4K = true;
          assigned += runEnd - pfn;
          if (entry.validated) validated += runEnd - pfn;
        }
        pfn = runEnd;
      }
    }
  }
  let shared = 0;
  let guestValidated = 0;
  for (let gfn = firstGfn; gfn < lastGfn; ) {
    const end = view.guest.pageRunEnd(gfn, lastGfn);
    const flags = view.guest.pageFlags(gfn);
    if ((flags & GUEST_PAGE_SHARED) !== 0) shared += end - gfn;
    if ((flags & GUEST_PAGE_VALIDATED) !== 0) guestValidated += end - gfn;
    gfn = end;
  }
  const end = base + SZ_2M;
  codes.length = 0;
  codes.push(size4K && size2M ? 3 : size2M ? 2 : size4K ? 1 : 0, mix(assigned, FRAMES_PER_2M), mix(validated, FRAMES_PER_2M), leafCode(view.npt, base));
  for (const device of view.devices) {
    const viewCode = S2_VIEW_CODES.get(device.iommu)?.get(device.tdi) ?? -1;
    if (viewCode < 0) throw new Error(`internal: coverage has no s2.view value ${device.iommu}/${device.tdi}`);
    codes.push(leafCode(device.s2, base), viewCode, backedCode(device), liveCode(view, device, base, end), cachedMix(device, base, end));
  }
  const swiotlb = view.guest.swiotlb.base < end && view.guest.swiotlb.end > base;
  let pool = false;
  for (const b of view.guest.buffers) if (b.source === 'atomic-pool' && b.gpa < end && b.gpa + b.bytes > base) pool = true;
  codes.push(mix(shared, FRAMES_PER_2M), mix(guestValidated, FRAMES_PER_2M), swiotlb && pool ? 3 : swiotlb ? 1 : pool ? 2 : 0);
}

/** The abstract tuple of the 2M guest region starting at `base`. */
function tupleAt(view: View, base: number): Tuple {
  regionCodes(view, base);
  return tupleOf(codes, view.devices.length);
}

/** The abstract tuple of the 2M guest region starting at `base`, as `table=value` parts. */
export function regionTuple(view: View, base: number): string[] {
  return [...tupleAt(view, base).parts];
}
/** Primitives whose number is how many IOTLB entries went (machine.ts iommuFlush, iotlbInvalidate). */
const ENTRY_COUNTS = new Set(['iommu_flush', 'iotlb_invalidate']);
/** Primitives whose number is how many bytes they mapped or unmapped. */
const BYTE_COUNTS = new Set(['npt_map', 'npt_unmap', 'io_map', 'io_unmap', 's1_map', 's1_unmap']);

/**
 * A call's result as a status, or every count would be a feature: status codes and strings stay;
 * a byte count (what a map or unmap did) becomes its size class; a count of IOTLB entries
 * invalidated becomes AFL's hit-count bucket (afl-fuzz's count_class_lookup8: 1, 2, 3, 4-7,
 * 8-15, 16-31, 32-127, 128+), so that flushing 45 entries after flushing 44 is nothing new.
 */
function status(prim: string, result: number | string): string {
  if (typeof result !== 'number') return result;
  if (ENTRY_COUNTS.has(prim)) return result <= 3 ? String(result) : result < 8 ? '4..7' : result < 16 ? '8..15' : result < 32 ? '16..31' : result < 128 ? '32..127' : '128+';
  if (!BYTE_COUNTS.has(prim) || result === 0) return String(result);
  return result < SZ_4K ? '<4K' : result === SZ_4K ? '4K' : result < SZ_2M ? '4K..2M' : result === SZ_2M ? '2M' : '>2M';
}

/** Digits and hex numbers out of free text (results, guest errors): a value is not a situation. */
const abstract = (text: string): string => text.replace(/0x[0-9a-f]+|\d+/gi, '#').slice(0, 80);

const fixedNames = new Names<string>();
const resultNames = new Names<string>();
const errorNames = new Names<string>();
const callNames = new Names<string>();
const duringCallNames = new Names<string>();
const innerNames = new Names<string>();
const faultNames = new Names<string>();
const fixedName = (kind: string, outcome: string): string => `op:${kind}:${outcome}`;
const resultName = (kind: string, result: string): string => `op:${kind}:result ${abstract(result)}`;
const errorName = (kind: string, error: string): string => `op:${kind}:guest-error ${abstract(error)}`;
const callName = (kind: string, key: string): string => `call:${kind}:${key}`;
const duringCallName = (kind: string, key: string): string => `call:${kind}:during ${key}`;
const innerName = (kind: string, inner: string): string => `op:${kind}:during ${inner}`;
const faultName = (kind: string, fault: string): string => `op:${kind}:fault ${fault}`;
/** Calls' `prim=status` keys by prim, then raw result: one string per distinct pair. */
const callKeys = new Names<number | string>();
const callKey = (prim: string, result: number | string): string => `${prim}=${status(prim, result)}`;

/** Regions of the step being observed (reused). */
const stepRegions: number[] = [];

/**
 * Follows one case step by step and collects its features. Regions remember their last tuple
 * (per case) so that a change of tuple is a `move:` feature.
 */
export class CoverageTracker {
  readonly features = new Set<string>();
  /** The step each feature was first reached at, in the order of `features` (insertion order). */
  readonly firstSteps: number[] = [];
  private readonly last = new Map<number, Tuple>();
  /** The tuples whose features this case has (the tuple cache's objects, by identity). */
  private readonly tuples = new Set<Tuple>();

  observe(step: Step, view: View): void {
    const kind = step.op.op;
    const features = this.features;
    const known = features.size;
    // How the step ended, as few words (`op:` features): skipped, its result, guest errors,
    // faults, DMAs by outcome, or plain "ok".
    if (step.skipped !== undefined) features.add(fixedNames.get(kind, 'skipped', fixedName));
    else {
      let outcomes = 0;
      if (step.result !== undefined) {
        features.add(resultNames.get(kind, step.result, resultName));
        outcomes++;
      }
      for (const error of step.guestErrors ?? []) {
        features.add(errorNames.get(kind, error, errorName));
        outcomes++;
      }
      // A fault-in makes a fault per page (512 for a 2M range), mostly of one kind: a kind just
      // added is not looked up again.
      let lastFault = '';
      for (const fault of faultRecordsOf(step)) {
        const faultKind = faultKindOf(fault);
        if (faultKind !== lastFault) features.add(faultNames.get(kind, (lastFault = faultKind), faultName));
        outcomes++;
      }
      for (const dma of step.dmas) {
        features.add(fixedNames.get(kind, DMA_OUTCOMES[(dma.result.ok ? 2 : 0) + (dma.legit ? 1 : 0)]!, fixedName));
        outcomes++;
      }
      if (outcomes === 0) features.add(fixedNames.get(kind, 'ok', fixedName));
    }
    // Per record: a run of calls (CallRun) shares one prim and result, and never has `during`.
    // A record like the one before it (a page's calls repeat block after block) is the same feature.
    let lastPrim = '';
    let lastResult: number | string = '';
    let lastDuring: number | undefined;
    for (const call of step.callRuns ?? step.calls) {
      if (call.prim === lastPrim && call.result === lastResult && (call.during === undefined) === (lastDuring === undefined)) continue;
      lastPrim = call.prim;
      lastResult = call.result;
      lastDuring = call.during;
      const key = callKeys.get(call.prim, call.result, callKey);
      features.add(call.during === undefined ? callNames.get(kind, key, callName) : duringCallNames.get(kind, key, duringCallName));
    }
    for (const record of step.interleaved ?? []) {
      const how = record.skipped !== undefined ? ' skipped' : record.waited ? ' waited' : record.deferred ? ' deferred' : '';
      features.add(innerNames.get(kind, `${record.op.op}${how}`, innerName));
    }
    // The first MAX_REGIONS_PER_STEP distinct regions of the step's ranges, in address order.
    const regions = stepRegions;
    regions.length = 0;
    for (const range of step.gfnRanges) {
      for (let region = Math.floor(range.start / FRAMES_PER_2M); region * FRAMES_PER_2M < range.end && regions.length < MAX_REGIONS_PER_STEP; region++) {
        if (!regions.includes(region)) regions.push(region);
      }
    }
    regions.sort((a, b) => a - b);
    for (const region of regions) {
      const base = region * SZ_2M;
      const tuple = tupleAt(view, base);
      // A tuple met before in this case added its parts and its region feature then: most steps
      // leave their regions' tuples as they were, and a tuple is 12-20 features.
      if (!this.tuples.has(tuple)) {
        this.tuples.add(tuple);
        for (const part of tuple.parts) features.add(part);
        features.add(tuple.region);
      }
      const before = this.last.get(base);
      if (before !== undefined && before.key !== tuple.key) features.add(moveOf(before, tuple));
      this.last.set(base, tuple);
    }
    for (let i = known; i < features.size; i++) this.firstSteps.push(step.index);
  }

  /** The features, sorted, with the step each was first reached at (for the corpus's trimming). */
  sorted(): { features: string[]; steps: number[] } {
    const order = [...this.features].map((feature, i) => ({ feature, step: this.firstSteps[i] ?? 0 }));
    order.sort((a, b) => (a.feature < b.feature ? -1 : a.feature > b.feature ? 1 : 0));
    return { features: order.map((o) => o.feature), steps: order.map((o) => o.step) };
  }
}

/** The kind of a feature, for reports: op, call, region, move or the table of a tuple component. */
export function featureTable(feature: string): string {
  const colon = feature.indexOf(':');
  if (colon > 0 && !feature.slice(0, colon).includes('=')) return feature.slice(0, colon);
  return feature.slice(0, feature.indexOf('='));
}
