// io-s2-rmp-size: a trusted (SEV-TIO) device in RUN checks every DMA below vTOM against the RMP
// with the S2 leaf rounded down to {4K, 2M}, and never retries at 4K (Alexey, seed thread, lore
// 5a3dfc0a-eca4-4de1-96cd-b4034f0b8e06@amd.com; research/amd-snp.md section 6, oracle 3). So every
// S2 leaf such a device can reach over guest private memory must lead to frames assigned to the
// guest, at the matching GPA (1:1 under vTOM), with exactly the checked size. "Reachable" means:
// the device's TDI is in RUN, the GPA is below vTOM, and the guest holds the page private and
// accepted: shared or never-accepted pages are not private DMA targets, and an absent leaf is a
// DMA fault (dma-liveness), not a size disagreement.
//
// Incremental: the GFNs a step touched (S2, RMP-at-GPA and guest-state changes), the frames it
// touched (through the RMP's GPA, and a reverse index of the GPA -> frame pairs already checked,
// for frames that lost their assignment), and every private page again for a device whose TDI
// entered RUN. A page a touched frame leads to is checked once: not again when the step touched
// its GFN too (the usual case: a conversion touches both), and the frames are read RMP run by RMP
// run, a run not assigned to the guest only through the index.
//
// Cost: work is per 2M region where the tables allow it. A 2M S2 leaf onto a 2M RMP entry assigned
// to the guest at the region's own GPA is right for all 512 pages of the region, whatever the
// guest's page states: one leaf and one entry lookup answer for it. Other regions are checked page
// by page. State lives in per-2M typed arrays (or, for a region of frames reached linearly, its
// base GFN alone), and messages are built only for a finding.

import { FRAME_LIMIT, defaultRmpEntry, FRAMES_PER_2M, GUEST_PAGE_ACCEPTED, GUEST_PAGE_CONVERTING, GUEST_PAGE_SHARED, SZ_2M, SZ_4K, defineOracle, formatSize, hex, type DeviceView, type Finding, type FrameRange, type Leaf, type PageSize, type Step, type View } from 'cocofuzz/api';
import { Findings } from './lib/findings.ts';
import { LeafCache } from './lib/leaf-cache.ts';
import { RegionArrays } from './lib/regions.ts';
import { regionOf, slotOf } from './lib/region-slot.ts';
import { firstOutside, holdsAll, outsideEnd, overlaps } from './lib/runs.ts';

/** RMP entries view.rmp.load() fills (reused: no object per frame). */
const gfnEntry = defaultRmpEntry();
const regionEntry = defaultRmpEntry();
const frameEntry = defaultRmpEntry();
/** S2 leaves PageTableView.leafInto() fills (reused); the one of the last page checked answers for the pages after it. */
const s2 = new LeafCache();
const regionLeaf: Leaf = { iova: 0, pa: 0, size: 0 };

interface State {
  /** TDI state of each device (by index in view.devices) when last seen. */
  tdi: string[];
  /**
   * Host 2M region -> for each of its frames, 1 + the GFN whose S2 leaf led to it when checked (0:
   * none); a region `linear` holds has no array until a mapping that differs comes (framesOf()).
   */
  reverse: RegionArrays<Float64Array>;
  /** Frames reached from more than one GFN: the GFNs beyond the one in `reverse` (rare: aliasing S2 leaves). */
  aliases: Map<number, Set<number>>;
  /**
   * Host 2M regions whose 512 frames the index holds as reached from GFNs G + i, by G (a 2M leaf
   * seen once, or 512 4K leaves that continue it): remembering the same mapping again learns
   * nothing and costs one look-up, and the region needs no per-frame array until another comes.
   */
  linear: Map<number, number>;
}

const states = new WeakMap<View, State>();
const found = new Findings();
/** (device id, GPA 2M region, problem kind) of each finding of the current check, in triples. */
const reported: number[] = [];
/** Per device index: rescanned whole in this check (its TDI entered RUN). */
const rescanned: boolean[] = [];

/** The size the IOMMU checks an S2 leaf at (Alexey, 22 Jan: 2M or more is checked as 2M). */
const checkedSize = (leafSize: number): PageSize => (leafSize >= SZ_2M ? '2M' : '4K');

function isPrivate(view: View, gfn: number): boolean {
  const flags = view.guest.pageFlags(gfn);
  return (flags & GUEST_PAGE_ACCEPTED) !== 0 && (flags & (GUEST_PAGE_SHARED | GUEST_PAGE_CONVERTING)) === 0;
}

/** Remember that the S2 leads GFNs [gfn, gfn + count) to frames [pfn, pfn + count), 2M region by region. */
function remember(state: State, pfn: number, gfn: number, count: number): void {
  for (let i = 0; i < count; ) {
    const region = regionOf(pfn + i);
    const stop = Math.min(count, (region + 1) * FRAMES_PER_2M - pfn);
    // The GFN this mapping gives the region's first frame.
    const base = gfn + i - slotOf(pfn + i);
    const linearBase = state.linear.get(region);
    if (linearBase === base) {
      i = stop;
      continue;
    }
    const whole = stop - i === FRAMES_PER_2M;
    if (whole && linearBase === undefined && state.reverse.get(region) === undefined) {
      // A whole region the index knew nothing of: its base says it all.
      state.linear.set(region, base);
      i = stop;
      continue;
    }
    let linear = true;
    const frames = framesOf(state, region);
    for (; i < stop; i++) {
      const slot = slotOf(pfn + i);
      const known = frames[slot]!;
      if (known === 0) frames[slot] = gfn + i + 1;
      else if (known !== gfn + i + 1) {
        linear = false;
        let more = state.aliases.get(pfn + i);
        if (more === undefined) state.aliases.set(pfn + i, (more = new Set()));
        more.add(gfn + i);
      }
    }
    if (whole && linear) state.linear.set(region, base);
  }
}

/** The per-frame array of host region `region`, created (from its linear base, if the index holds one) when missing. */
function framesOf(state: State, region: number): Float64Array {
  const missing = state.reverse.get(region) === undefined;
  const frames = state.reverse.getOrCreate(region);
  const base = missing ? state.linear.get(region) : undefined;
  if (base !== undefined) for (let slot = 0; slot < FRAMES_PER_2M; slot++) frames[slot] = base + slot + 1;
  return frames;
}

const PROBLEMS = ['not assigned', 'asid mismatch', 'gpa mismatch', 'size mismatch'] as const;

/** Check one page for `device`. */
function checkGfn(view: View, state: State, device: DeviceView, gfn: number): void {
  const gpa = gfn * SZ_4K;
  if (gpa >= view.vtom || !isPrivate(view, gfn)) return;
  const hpa = s2.translate(device.s2, gpa);
  if (hpa < 0) return;
  const leaf = s2.leaf;
  const pfn = Math.floor(hpa / SZ_4K);
  remember(state, pfn, gfn, 1);

  const checked = checkedSize(leaf.size);
  const entry = view.rmp.load(pfn, gfnEntry);
  let kind: number;
  if (!entry.assigned) kind = 0;
  else if (entry.asid !== view.asid) kind = 1;
  else if (entry.gpa !== gpa) kind = 2;
  else if (entry.size !== checked) kind = 3;
  else return;
  // One finding per device, 2M region and kind of problem: 512 4K leaves over one 2M entry
  // (or one 2M leaf over 512 4K entries) are one disagreement.
  const region = Math.floor(gpa / SZ_2M);
  for (let i = 0; i < reported.length; i += 3) if (reported[i] === device.id && reported[i + 1] === region && reported[i + 2] === kind) return;
  reported.push(device.id, region, kind);
  const problem =
    kind === 0
      ? PROBLEMS[0]
      : kind === 1
        ? `asid mismatch: RMP asid ${entry.asid}, guest asid ${view.asid}`
        : kind === 2
          ? `gpa mismatch: RMP gpa ${hex(entry.gpa)}`
          : PROBLEMS[3];
  const where = checked === '2M' ? ` (2M region ${hex(gpa - (gpa % SZ_2M))})` : '';
  found.push({
    message:
      // A state invariant: it fires when the tables disagree, before any DMA has to fail.
      `a trusted DMA by dev ${device.id} (TDI in RUN) to ${hex(gpa)}${where} would fail: S2[${formatSize(leaf.size)}] -- [${checked}] --> ` +
      `RMP[${entry.assigned ? entry.size : 'unassigned'}] at hpa ${hex(hpa)} ==> FAIL (${problem})`,
    details: {
      dev: device.id,
      iova: gpa,
      gpa,
      hpa,
      // An unassigned entry has no size that counts: RMP[-] in explain's arrow, with the reason.
      sizes: { s2: leaf.size, ...(entry.assigned ? { rmp: entry.size } : {}), checked },
      problem,
      reason: problem,
      leaf: { iova: leaf.iova, pa: leaf.pa, size: leaf.size },
    },
  });
}

/**
 * Check GFNs [from, to) of one 2M region for `device`: all at once when one 2M-or-larger S2 leaf
 * maps the whole region onto a 2M RMP entry assigned to the guest at the region's GPA (then every
 * page is right, private or not), else page by page.
 */
function checkRegion(view: View, state: State, device: DeviceView, from: number, to: number): void {
  const base = regionOf(from) * SZ_2M;
  if (base + SZ_2M <= view.vtom && to - from > 1) {
    const leaf = regionLeaf;
    if (device.s2.leafInto(base, leaf) && leaf.size >= SZ_2M) {
      const pfn = Math.floor((leaf.pa + (base - leaf.iova)) / SZ_4K);
      if (slotOf(pfn) === 0) {
        const entry = view.rmp.load(pfn, regionEntry);
        if (entry.assigned && entry.asid === view.asid && entry.gpa === base && entry.size === '2M') {
          const first = base / SZ_4K;
          remember(state, pfn + (from - first), from, to - from);
          return;
        }
      }
    }
  }
  checkPages(view, state, device, from, to);
}

/**
 * checkGfn() for GFNs [from, to) of one 2M region, piece by piece: a run of private pages under one
 * S2 translation checked at one size onto one RMP run (RmpView.runEnd: same assigned, ASID, size, a GPA advancing 4K per frame) whose first
 * entry is right for the first page is right throughout, and is only remembered. checkGfn() judges
 * a page alone (a 4K leaf) or where the first entry is wrong, and reports it as the page-by-page
 * check would.
 */
function checkPages(view: View, state: State, device: DeviceView, from: number, to: number): void {
  to = Math.min(to, Math.ceil(view.vtom / SZ_4K));
  for (let gfn = from; gfn < to; ) {
    const flagsEnd = view.guest.pageRunEnd(gfn, to);
    if (!isPrivate(view, gfn)) {
      gfn = flagsEnd;
      continue;
    }
    while (gfn < flagsEnd) gfn = checkPiece(view, state, device, gfn, flagsEnd);
  }
}

/** checkPages() for the piece of private GFNs [gfn, end) that starts at `gfn`; returns where it stops. */
function checkPiece(view: View, state: State, device: DeviceView, gfn: number, end: number): number {
  const gpa = gfn * SZ_4K;
  const hpa = s2.translate(device.s2, gpa);
  // An absent leaf is a DMA fault, not a size disagreement: on to the next leaf.
  if (hpa < 0) return Math.min(end, device.s2.nextMapped(gpa, end * SZ_4K) / SZ_4K);
  const leaf = s2.leaf;
  // [gfn, end) lies in one 2M region (checkRange): below 2M, every leaf there is below 2M and
  // checked at 4K, so the piece runs on over adjacent 4K leaves that continue the translation.
  end = leaf.size < SZ_2M ? Math.min(end, device.s2.linearEnd(gpa, end * SZ_4K, hpa) / SZ_4K) : Math.min(end, (leaf.iova + leaf.size) / SZ_4K);
  if (end - gfn > 1) {
    const pfn = Math.floor(hpa / SZ_4K);
    const entry = view.rmp.load(pfn, gfnEntry);
    if (entry.assigned && entry.asid === view.asid && entry.gpa === gpa && entry.size === checkedSize(leaf.size)) {
      const count = view.rmp.runEnd(pfn, pfn + (end - gfn)) - pfn;
      remember(state, pfn, gfn, count);
      return gfn + count;
    }
  }
  checkGfn(view, state, device, gfn);
  return gfn + 1;
}

/** GFNs [from, to), region by region. */
function checkRange(view: View, state: State, device: DeviceView, from: number, to: number): void {
  let gfn = from;
  while (gfn < to) {
    const end = Math.min(to, (regionOf(gfn) + 1) * FRAMES_PER_2M);
    checkRegion(view, state, device, gfn, end);
    gfn = end;
  }
}

/** Every page the guest holds private, run by run of equal page flags (the others are no DMA target). */
function checkDevice(view: View, state: State, device: DeviceView): void {
  for (let gfn = 0; gfn < FRAME_LIMIT; ) {
    const end = view.guest.pageRunEnd(gfn, FRAME_LIMIT);
    if (isPrivate(view, gfn)) checkRange(view, state, device, gfn, end);
    gfn = end;
  }
}

/**
 * The pages whose S2 leaves may lead to frames [from, to), which the step touched, RMP run by RMP
 * run. `touched` are the step's GFN ranges, which check() went through for this device first: a
 * page there was just checked, and checking it again finds and remembers nothing new (findings are
 * one per device, region and kind; remember() keeps the same S2 pairs), so only the pages outside
 * them are checked here.
 */
function checkFrames(view: View, state: State, device: DeviceView, from: number, to: number, touched: readonly FrameRange[]): void {
  for (let pfn = from; pfn < to; ) {
    // Through the RMP: the page a frame is assigned at. A 2M entry assigns its whole region
    // linearly, so the rest of the run within the region is one GFN range.
    const entry = view.rmp.load(pfn, frameEntry);
    if (!entry.assigned || entry.asid !== view.asid) {
      // A run of frames not the guest's (RmpView.runEnd keeps assigned and ASID): only the pages the index knows.
      const end = view.rmp.runEnd(pfn, to);
      checkKnownIn(view, state, device, pfn, end, touched);
      pfn = end;
      continue;
    }
    const gfn = Math.floor(entry.gpa / SZ_4K);
    if (entry.size === '2M') {
      const end = Math.min(to, (regionOf(pfn) + 1) * FRAMES_PER_2M);
      checkOutside(view, state, device, gfn, gfn + (end - pfn), touched);
      // A frame the index knows from its own GFN alone was just checked with that GFN; a region
      // the index holds linearly from these very GFNs (remember()) has no other to check.
      if (state.aliases.size > 0 || !linearFrom(state, pfn, gfn)) {
        for (let frame = pfn; frame < end; frame++) if (knownElsewhere(state, frame, gfn + (frame - pfn))) checkKnown(view, state, device, frame, touched);
      }
      pfn = end;
      continue;
    }
    // A run of 4K entries assigned at consecutive GFNs, whose frames the reverse index knows
    // from those very GFNs or not at all (the usual case), is the same pages either way round:
    // checked once, piece by piece, in frame order.
    const end = knownFromRun(state, pfn, view.rmp.runEnd(pfn, to), gfn);
    if (end > pfn + 1) {
      checkOutside(view, state, device, gfn, gfn + (end - pfn), touched);
      pfn = end;
      continue;
    }
    if (!overlaps(touched, gfn, gfn + 1)) checkGfn(view, state, device, gfn);
    checkKnown(view, state, device, pfn, touched);
    pfn++;
  }
}

/** checkRange() for the GFNs of [from, to) outside `touched`. */
function checkOutside(view: View, state: State, device: DeviceView, from: number, to: number, touched: readonly FrameRange[]): void {
  for (let gfn = firstOutside(touched, from, to); gfn < to; ) {
    const end = outsideEnd(touched, gfn, to);
    checkRange(view, state, device, gfn, end);
    gfn = firstOutside(touched, end, to);
  }
}

/**
 * checkKnown() for each of frames [from, to), region by region: skipped where the index holds
 * nothing (nor aliases: they extend an entry), and where it holds the region linearly from GFNs
 * that `touched` holds (checked already; without aliases each frame leads to that one GFN).
 */
function checkKnownIn(view: View, state: State, device: DeviceView, from: number, to: number, touched: readonly FrameRange[]): void {
  for (let pfn = from; pfn < to; ) {
    const region = regionOf(pfn);
    const end = Math.min(to, (region + 1) * FRAMES_PER_2M);
    const base = state.linear.get(region);
    const first = base === undefined ? 0 : base + slotOf(pfn);
    const checked = base !== undefined && state.aliases.size === 0 && holdsAll(touched, first, first + (end - pfn));
    if (!checked && (base !== undefined || state.reverse.get(region) !== undefined)) for (let frame = pfn; frame < end; frame++) checkKnown(view, state, device, frame, touched);
    pfn = end;
  }
}

/** The end of the prefix of frames [pfn, end) that the reverse index knows from GFN gfn + i (frame pfn + i) alone, or not at all. */
function knownFromRun(state: State, pfn: number, end: number, gfn: number): number {
  let frame = pfn;
  while (frame < end) {
    const regionEnd = Math.min(end, (regionOf(frame) + 1) * FRAMES_PER_2M);
    if (state.aliases.size === 0 && linearFrom(state, frame, gfn + (frame - pfn))) {
      frame = regionEnd;
      continue;
    }
    while (frame < regionEnd && !knownElsewhere(state, frame, gfn + (frame - pfn))) frame++;
    if (frame < regionEnd) break;
  }
  return frame;
}

/**
 * Whether the index holds frame `pfn`'s whole 2M region as reached linearly from the GFNs that put
 * `gfn` at `pfn` (State.linear): then it knows each frame of the region from that GFN alone, and
 * will (its entries are only ever filled, never changed).
 */
const linearFrom = (state: State, pfn: number, gfn: number): boolean => state.linear.get(regionOf(pfn)) === gfn - slotOf(pfn);

/** 1 + the GFN whose S2 led to `pfn` when checked, in the reverse index (0: none). */
function knownAt(state: State, pfn: number): number {
  const region = regionOf(pfn);
  const frames = state.reverse.get(region);
  if (frames !== undefined) return frames[slotOf(pfn)]!;
  const base = state.linear.get(region);
  return base === undefined ? 0 : base + slotOf(pfn) + 1;
}

/** Whether the reverse index knows `pfn` from a GFN other than `gfn` (checkKnown() would check another page). */
function knownElsewhere(state: State, pfn: number, gfn: number): boolean {
  const known = knownAt(state, pfn);
  return (known !== 0 && known !== gfn + 1) || (state.aliases.size > 0 && state.aliases.has(pfn));
}

/** Through the reverse index: the pages whose S2 led to `pfn` when checked (outside `touched`, checked already). */
function checkKnown(view: View, state: State, device: DeviceView, pfn: number, touched: readonly FrameRange[]): void {
  const known = knownAt(state, pfn);
  if (known === 0) return;
  if (!overlaps(touched, known - 1, known)) checkGfn(view, state, device, known - 1);
  const more = state.aliases.get(pfn);
  if (more !== undefined) for (const gfn of more) if (!overlaps(touched, gfn, gfn + 1)) checkGfn(view, state, device, gfn);
}

const isRunning = (device: DeviceView): boolean => device.trusted && device.tdi === 'run';

/** The state kept for `view`, created empty on first use. */
function stateOf(view: View): State {
  let state = states.get(view);
  if (state === undefined) {
    state = { tdi: [], reverse: new RegionArrays(() => new Float64Array(FRAMES_PER_2M)), aliases: new Map(), linear: new Map() };
    states.set(view, state);
  }
  return state;
}

function sweep(view: View, state: State): Finding[] | undefined {
  reported.length = 0;
  s2.forget();
  const devices = view.devices;
  for (let d = 0; d < devices.length; d++) state.tdi[d] = devices[d]!.tdi;
  for (let d = 0; d < devices.length; d++) if (isRunning(devices[d]!)) checkDevice(view, state, devices[d]!);
  return found.take();
}

export default defineOracle({
  name: 'io-s2-rmp-size',
  description:
    'every S2 leaf a trusted device in RUN can reach below vTOM, rounded down to {4K, 2M}, equals the RMP size of the frames it covers, assigned to the guest at the matching GPA',
  severity: 'correctness',
  // test/oracles/sweep-coverage.test.ts: the check finds whatever the end-of-case sweep finds.
  checkCoversFinal: true,

  check(view: View, step: Step) {
    const state = states.get(view);
    if (state === undefined) return sweep(view, stateOf(view));
    // Only when there is something to drop: setting an array's length is a runtime call in V8.
    if (reported.length !== 0) reported.length = 0;
    s2.forget();
    const devices = view.devices;
    // Devices whose TDI entered RUN first: every private page is now a DMA target.
    for (let d = 0; d < devices.length; d++) {
      const device = devices[d]!;
      rescanned[d] = isRunning(device) && state.tdi[d] !== 'run';
      state.tdi[d] = device.tdi;
      if (rescanned[d]) checkDevice(view, state, device);
    }
    for (let d = 0; d < devices.length; d++) {
      const device = devices[d]!;
      if (!isRunning(device) || rescanned[d]) continue;
      // Indexed loops: for-of over a step's (often shared, frozen, empty) range arrays takes V8's generic iterator.
      const gfns = step.gfnRanges;
      const frames = step.frameRanges;
      for (let r = 0; r < gfns.length; r++) checkRange(view, state, device, gfns[r]!.start, gfns[r]!.end);
      for (let r = 0; r < frames.length; r++) checkFrames(view, state, device, frames[r]!.start, frames[r]!.end, gfns);
    }
    return found.take();
  },

  final(view: View) {
    return sweep(view, stateOf(view));
  },
});
