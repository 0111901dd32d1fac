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

import { FRAMES_PER_2M, GUEST_PAGE_CONVERTING, GUEST_PAGE_SHARED, SZ_2M, SZ_4K, defineOracle, formatSize, hex, type DeviceView, type Finding, type Step, type View } from 'cocofuzz/api';
import { Findings } from './lib/findings.ts';

const started = new WeakSet<View>();
/** Device id and S2 leaf of each finding of the current check, in pairs: one finding per leaf. */
const reported: number[] = [];
const found = new Findings();

/** Per device: whether the GFNs of the current 2M region need a per-page check (reused). */
const perPage: boolean[] = [];
/** Each device's S2 translation of the GPA being checked (-1: none), reused. */
const s2Hpa: number[] = [];

/**
 * Plan the check of 2M region `region`: a device whose one S2 leaf maps the whole region onto the
 * same frames as one NPT leaf is coherent at every GPA of it, whatever the guest's page states;
 * only the other devices are checked page by page. Returns how many those are. A 2M conversion
 * touches 512 GFNs, and a host that keeps both tables at 2M answers for all of them with one
 * lookup per table.
 */
function planRegion(view: View, region: number, pages: number): number {
  const devices = view.devices;
  const base = region * SZ_2M;
  // For a handful of pages the per-page check costs less than the leaf lookups.
  const nptLeaf = pages < 8 ? undefined : view.npt.leafAt(base);
  const expected = nptLeaf !== undefined && nptLeaf.size >= SZ_2M ? nptLeaf.pa + (base - nptLeaf.iova) : -1;
  let count = 0;
  for (let d = 0; d < devices.length; d++) {
    const s2 = devices[d]!.s2;
    // A device whose S2 maps nothing in the region cannot be incoherent there.
    if (pages >= 8 && s2.nextMapped(base, base + SZ_2M) === base + SZ_2M) {
      perPage[d] = false;
      continue;
    }
    const leaf = expected < 0 ? undefined : s2.leafAt(base);
    perPage[d] = leaf === undefined || leaf.size < SZ_2M || leaf.pa + (base - leaf.iova) !== expected;
    if (perPage[d]) count++;
  }
  return count;
}

/** GFNs [from, to) of one run, region by region. */
function checkRun(view: View, from: number, to: number, out: Findings): void {
  let gfn = from;
  while (gfn < to) {
    const region = Math.floor(gfn / FRAMES_PER_2M);
    const end = Math.min(to, (region + 1) * FRAMES_PER_2M);
    if (planRegion(view, region, end - gfn) > 0) for (let g = gfn; g < end; g++) checkGfn(view, g, out);
    gfn = end;
  }
}

// The translations use iovaToPhys(), which allocates nothing: this runs for every GFN the plan
// leaves to a per-page check. Leaves, sizes and strings are looked up only for a finding.
// Cheapest test first: a GPA no device's S2 maps cannot be incoherent; the guest's page flags and
// the NPT translation come next, and the host's shared frame where the NPT has no leaf.
function checkGfn(view: View, gfn: number, out: Findings): void {
  const gpa = gfn * SZ_4K;
  const devices = view.devices;
  let mapped = false;
  for (let d = 0; d < devices.length; d++) {
    const hpa = perPage[d] ? devices[d]!.s2.iovaToPhys(gpa) : undefined;
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
  let region = -1;
  let checks = 0;
  for (const gfn of view.guest.pages()) {
    const at = Math.floor(gfn / FRAMES_PER_2M);
    if (at !== region) {
      region = at;
      checks = planRegion(view, region, FRAMES_PER_2M);
    }
    if (checks > 0) checkGfn(view, gfn, found);
  }
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
    reported.length = 0;
    for (const { start, end } of step.gfnRanges) checkRun(view, start, end, found);
    return found.take();
  },

  final(view: View) {
    started.add(view);
    return sweep(view);
  },
});
