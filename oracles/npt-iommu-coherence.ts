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

import { SZ_4K, defineOracle, formatSize, hex, type Finding, type Step, type View } from 'cocofuzz/api';

const started = new WeakSet<View>();

function checkGfn(view: View, gfn: number, out: Finding[], reported: Set<string>): void {
  const page = view.guest.page(gfn);
  if (page === undefined || !page.shared || page.converting) return;
  const gpa = gfn * SZ_4K;
  const nptLeaf = view.npt.leafAt(gpa);
  let expected: number | undefined;
  let source: string;
  if (nptLeaf !== undefined) {
    expected = nptLeaf.pa + (gpa - nptLeaf.iova);
    source = `NPT[${formatSize(nptLeaf.size)}]`;
  } else {
    const backing = view.host.backing(gpa);
    if (backing === undefined || !backing.shared) return;
    expected = backing.hpa;
    source = 'host backing (NPT not present)';
  }
  for (const device of view.devices) {
    const leaf = device.s2.leafAt(gpa);
    if (leaf === undefined) continue;
    const hpa = leaf.pa + (gpa - leaf.iova);
    if (Math.floor(hpa / SZ_4K) === Math.floor(expected / SZ_4K)) continue;
    // One finding per device and S2 leaf: a static 64M leaf would otherwise give one per page.
    const key = `${device.id}:${leaf.iova}`;
    if (reported.has(key)) continue;
    reported.add(key);
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
}

function sweep(view: View): Finding[] {
  const out: Finding[] = [];
  const reported = new Set<string>();
  for (const gfn of view.guest.pages()) checkGfn(view, gfn, out, reported);
  return out;
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
    const out: Finding[] = [];
    const reported = new Set<string>();
    for (const gfn of step.gfns) checkGfn(view, gfn, out, reported);
    return out;
  },

  final(view: View) {
    started.add(view);
    return sweep(view);
  },
});
