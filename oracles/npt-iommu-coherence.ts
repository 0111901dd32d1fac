// npt-iommu-coherence: for every GPA the guest holds shared, each device's IO S2 and the CPU's NPT
// lead to the same host frame (research/amd-snp.md section 6, oracle 8). After a conversion the
// host backs the GPA with a new frame; an IO mapping left on the old one is stale: the device
// reads and writes memory the guest no longer uses (a static VFIO map at VM start, AMDESE/AMDSEV
// #109; section 7, item 4).
//
// Absence is not incoherence: a device with no S2 mapping at the GPA cannot reach it (that is
// dma-liveness's business when the guest DMAs there), and an NPT leaf the host has zapped is
// faulted in again from the host's backing, so the NPT side is the NPT translation when present,
// else the host's shared backing frame.
//
// Incremental: the GFNs the step touched (NPT, S2, host backing and guest page state all touch
// them). The IOTLB is iotlb-stale's business.

import { FRAME_LIMIT, GUEST_PAGE_CONVERTING, GUEST_PAGE_SHARED, SZ_4K, defineOracle, formatSize, hex, type DeviceView, type Finding, type Leaf, type PageTableView, type Step, type View } from 'cocofuzz/api';
import { Findings } from './lib/findings.ts';

const started = new WeakSet<View>();
/** Device id and S2 leaf of each finding of the current check, in pairs: one finding per leaf. */
const reported: number[] = [];
const found = new Findings();

/** Each device's S2 translation of the GPA being checked (-1: none), reused. */
const s2Hpa: number[] = [];

/** The GFNs of [from, to) the guest holds shared (and is not converting), run by run of equal flags. */
function checkRange(view: View, from: number, to: number, out: Findings): void {
  for (let gfn = from; gfn < to; ) {
    const flags = view.guest.pageFlags(gfn);
    const end = view.guest.pageRunEnd(gfn, to);
    if ((flags & GUEST_PAGE_SHARED) !== 0 && (flags & GUEST_PAGE_CONVERTING) === 0) checkShared(view, gfn, end, out);
    gfn = end;
  }
}

/**
 * Where each table's current answer holds, for checkShared(): per device's S2, then the NPT side
 * (index devices.length): the answer holds for GPAs below `runEnd`, and is `gpa + runOffset`, or
 * nothing where `runOffset` is NaN (unmapped, or no shared backing frame). Reused.
 */
const runEnd: number[] = [];
const runOffset: number[] = [];
/** The leaf tableRun() found (reused). */
const leaf: Leaf = { iova: 0, pa: 0, size: 0 };

/**
 * Table `t`'s answer from `gpa` (into runOffset and runEnd, for checkShared()): one walk for the
 * leaf, and a second (linearEnd) only where the leaf ends before `last`. Returns whether it maps `gpa`.
 */
function tableRun(table: PageTableView, t: number, gpa: number, last: number): boolean {
  if (!table.leafInto(gpa, leaf)) {
    runOffset[t] = NaN;
    runEnd[t] = table.nextMapped(gpa, last);
    return false;
  }
  const hpa = leaf.pa + (gpa - leaf.iova);
  runOffset[t] = hpa - gpa;
  runEnd[t] = leaf.iova + leaf.size >= last ? last : table.linearEnd(gpa, last, hpa);
  return true;
}

/**
 * Shared GFNs [from, to), piece by piece where every table answers linearly: each device's S2 is
 * unmapped throughout or maps the piece onto contiguous frames, and so does the NPT (or, where
 * it has no leaf, the host's shared backing). Two linear translations of one piece differ at
 * every page or at none, so the first page judges the piece; only a piece that differs is
 * walked page by page, for the findings (one per S2 leaf) a per-page check gives. Each table's
 * run is asked for once and kept until the piece passes its end, so a piece ends where any table
 * changes, and a 1G pool the host shares with linear leaves and frames is one piece, whatever
 * its size; a long run is not rescanned for every short run of another table.
 */
function checkShared(view: View, from: number, to: number, out: Findings): void {
  const devices = view.devices;
  const npt = devices.length;
  const last = to * SZ_4K;
  for (let t = 0; t <= npt; t++) runEnd[t] = -1;
  let gfn = from;
  while (gfn < to) {
    if (to - gfn === 1) {
      checkGfn(view, gfn, out);
      return;
    }
    const gpa = gfn * SZ_4K;
    let end = last;
    let mapped = false;
    for (let d = 0; d < npt; d++) {
      if (gpa >= runEnd[d]!) tableRun(devices[d]!.s2, d, gpa, last);
      s2Hpa[d] = Number.isNaN(runOffset[d]) ? -1 : gpa + runOffset[d]!;
      if (s2Hpa[d]! >= 0) mapped = true;
      end = Math.min(end, runEnd[d]!);
    }
    if (mapped) {
      if (gpa >= runEnd[npt]!) {
        if (!tableRun(view.npt, npt, gpa, last)) {
          const backing = view.host.sharedHpa(gpa);
          runOffset[npt] = backing >= 0 ? backing - gpa : NaN;
          // runEnd[npt] is the NPT's next leaf: the backing answers until then, or its run ends.
          runEnd[npt] = view.host.backingRunEnd(gfn, Math.ceil(runEnd[npt]! / SZ_4K)) * SZ_4K;
        }
      }
      end = Math.min(end, runEnd[npt]!);
      const next = Math.ceil(end / SZ_4K);
      if (!Number.isNaN(runOffset[npt]) && differs(npt, Math.floor((gpa + runOffset[npt]!) / SZ_4K))) for (let g = gfn; g < next; g++) checkGfn(view, g, out);
      gfn = next;
    } else {
      gfn = Math.ceil(end / SZ_4K);
    }
  }
}

/** Some device's S2 translation (s2Hpa) lands outside frame `expectedPfn`. */
function differs(count: number, expectedPfn: number): boolean {
  for (let d = 0; d < count; d++) if (s2Hpa[d]! >= 0 && Math.floor(s2Hpa[d]! / SZ_4K) !== expectedPfn) return true;
  return false;
}

// One GFN, for a piece whose translations differ (and single pages). iovaToPhys() allocates
// nothing; leaves, sizes and strings are looked up only for a finding. Cheapest test first: a GPA
// no device's S2 maps cannot be incoherent; the guest's page flags and the NPT translation come
// next, and the host's shared frame where the NPT has no leaf.
function checkGfn(view: View, gfn: number, out: Findings): void {
  const gpa = gfn * SZ_4K;
  const devices = view.devices;
  let mapped = false;
  for (let d = 0; d < devices.length; d++) {
    const hpa = devices[d]!.s2.iovaToPhys(gpa);
    s2Hpa[d] = hpa ?? -1;
    if (hpa !== undefined) mapped = true;
  }
  if (!mapped) return;
  const flags = view.guest.pageFlags(gfn);
  if ((flags & GUEST_PAGE_SHARED) === 0 || (flags & GUEST_PAGE_CONVERTING) !== 0) return;
  let expected = view.npt.iovaToPhys(gpa);
  if (expected === undefined) {
    expected = view.host.sharedHpa(gpa);
    if (expected < 0) return;
  }
  const expectedPfn = Math.floor(expected / SZ_4K);
  for (let d = 0; d < devices.length; d++) {
    const hpa = s2Hpa[d]!;
    if (hpa >= 0 && Math.floor(hpa / SZ_4K) !== expectedPfn) report(view, devices[d]!, gpa, hpa, expected, out);
  }
}

function report(view: View, device: DeviceView, gpa: number, hpa: number, expected: number, out: Findings): void {
  const leaf = device.s2.leafAt(gpa)!;
  // One finding per device and S2 leaf: a static 64M leaf would otherwise give one per page.
  for (let i = 0; i < reported.length; i += 2) if (reported[i] === device.id && reported[i + 1] === leaf.iova) return;
  reported.push(device.id, leaf.iova);
  const nptLeaf = view.npt.leafAt(gpa);
  const source = nptLeaf !== undefined ? `NPT[${formatSize(nptLeaf.size)}]` : 'host backing (NPT not present)';
  out.push({
    message:
      `shared gpa ${hex(gpa)}: ${source} --> hpa ${hex(expected)}, but dev ${device.id} S2[${formatSize(leaf.size)}] --> hpa ${hex(hpa)} ` +
      `==> FAIL (stale IO mapping after conversion)`,
    details: {
      dev: device.id,
      iova: gpa,
      gpa,
      hpa,
      expectedHpa: expected,
      sizes: { s2: leaf.size, ...(nptLeaf !== undefined ? { npt: nptLeaf.size } : {}) },
    },
  });
}

function sweep(view: View): Finding[] | undefined {
  reported.length = 0;
  checkRange(view, 0, FRAME_LIMIT, found);
  return found.take();
}

export default defineOracle({
  name: 'npt-iommu-coherence',
  description: 'for every shared GPA, the IO S2 and the NPT lead to the same frame (no stale IO mapping after conversion)',
  severity: 'security',
  // test/oracles/sweep-coverage.test.ts: the check finds whatever the end-of-case sweep finds.
  checkCoversFinal: true,

  check(view: View, step: Step) {
    if (!started.has(view)) {
      started.add(view);
      return sweep(view);
    }
    // Most steps touch no GFN. Indexed loops: for-of over a step's (often shared, frozen, empty)
    // range arrays takes V8's generic iterator.
    const touched = step.gfnRanges;
    if (touched.length === 0) return undefined;
    // Only when there is something to drop: setting an array's length is a runtime call in V8.
    if (reported.length !== 0) reported.length = 0;
    for (let r = 0; r < touched.length; r++) checkRange(view, touched[r]!.start, touched[r]!.end, found);
    return found.take();
  },

  final(view: View) {
    started.add(view);
    return sweep(view);
  },
});
