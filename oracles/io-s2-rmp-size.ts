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
// entered RUN.

import { SZ_2M, SZ_4K, defineOracle, formatSize, hex, type DeviceView, type Finding, type PageSize, type Step, type View } from 'cocofuzz/api';

interface State {
  /** TDI state of each device when last seen. */
  tdi: Map<number, string>;
  /** Frame -> the GFN (or GFNs) whose S2 leaf led to it when checked. */
  reverse: Map<number, number | Set<number>>;
}

const states = new WeakMap<View, State>();

/** The size the IOMMU checks an S2 leaf at (Alexey, 22 Jan: 2M or more is checked as 2M). */
const checkedSize = (leafSize: number): PageSize => (leafSize >= SZ_2M ? '2M' : '4K');

function isPrivate(view: View, gfn: number): boolean {
  const page = view.guest.page(gfn);
  return page !== undefined && page.accepted && !page.shared && !page.converting;
}

class Checker {
  readonly findings: Finding[] = [];
  private readonly reported = new Set<string>();
  constructor(
    private readonly view: View,
    private readonly state: State,
  ) {}

  gfn(device: DeviceView, gfn: number): void {
    const view = this.view;
    const gpa = gfn * SZ_4K;
    if (gpa >= view.vtom || !isPrivate(view, gfn)) return;
    const leaf = device.s2.leafAt(gpa);
    if (leaf === undefined) return;
    const hpa = leaf.pa + (gpa - leaf.iova);
    const pfn = Math.floor(hpa / SZ_4K);
    const known = this.state.reverse.get(pfn);
    if (known === undefined) this.state.reverse.set(pfn, gfn);
    else if (typeof known === 'number') {
      if (known !== gfn) this.state.reverse.set(pfn, new Set([known, gfn]));
    } else known.add(gfn);

    const checked = checkedSize(leaf.size);
    const entry = view.rmp.entry(pfn);
    let problem = '';
    if (!entry.assigned) problem = 'not assigned';
    else if (entry.asid !== view.asid) problem = `asid mismatch: RMP asid ${entry.asid}, guest asid ${view.asid}`;
    else if (entry.gpa !== gpa) problem = `gpa mismatch: RMP gpa ${hex(entry.gpa)}`;
    else if (entry.size !== checked) problem = 'size mismatch';
    if (problem === '') return;
    // One finding per device, 2M region and kind of problem: 512 4K leaves over one 2M entry
    // (or one 2M leaf over 512 4K entries) are one disagreement.
    const key = `${device.id}:${Math.floor(gpa / SZ_2M)}:${problem.split(':')[0] ?? problem}`;
    if (this.reported.has(key)) return;
    this.reported.add(key);
    const region = checked === '2M' ? ` (2M region ${hex(gpa - (gpa % SZ_2M))})` : '';
    this.findings.push({
      message:
        // A state invariant: it fires when the tables disagree, before any DMA has to fail.
        `a trusted DMA by dev ${device.id} (TDI in RUN) to ${hex(gpa)}${region} would fail: S2[${formatSize(leaf.size)}] -- [${checked}] --> ` +
        `RMP[${entry.assigned ? entry.size : 'unassigned'}] at hpa ${hex(hpa)} ==> FAIL (${problem})`,
      details: {
        dev: device.id,
        iova: gpa,
        gpa,
        hpa,
        sizes: { s2: leaf.size, rmp: entry.size, checked },
        problem,
        leaf: { iova: leaf.iova, pa: leaf.pa, size: leaf.size },
      },
    });
  }

  device(device: DeviceView): void {
    for (const gfn of this.view.guest.pages()) this.gfn(device, gfn);
  }
}

const running = (view: View): DeviceView[] => view.devices.filter((device) => device.trusted && device.tdi === 'run');

function stateOf(view: View): { state: State; fresh: boolean } {
  let state = states.get(view);
  const fresh = state === undefined;
  if (state === undefined) {
    state = { tdi: new Map(), reverse: new Map() };
    states.set(view, state);
  }
  return { state, fresh };
}

function sweep(view: View, state: State): Finding[] {
  const checker = new Checker(view, state);
  for (const device of view.devices) state.tdi.set(device.id, device.tdi);
  for (const device of running(view)) checker.device(device);
  return checker.findings;
}

export default defineOracle({
  name: 'io-s2-rmp-size',
  description:
    'every S2 leaf a trusted device in RUN can reach below vTOM, rounded down to {4K, 2M}, equals the RMP size of the frames it covers, assigned to the guest at the matching GPA',
  severity: 'correctness',
  // test/oracles/sweep-coverage.test.ts: the check finds whatever the end-of-case sweep finds.
  checkCoversFinal: true,

  check(view: View, step: Step) {
    const { state, fresh } = stateOf(view);
    if (fresh) return sweep(view, state);
    const checker = new Checker(view, state);
    const devices = running(view);
    const rescanned = new Set<number>();
    for (const device of view.devices) {
      const before = state.tdi.get(device.id);
      state.tdi.set(device.id, device.tdi);
      if (device.trusted && device.tdi === 'run' && before !== 'run') {
        checker.device(device);
        rescanned.add(device.id);
      }
    }
    const incremental = devices.filter((device) => !rescanned.has(device.id));
    if (incremental.length === 0) return checker.findings;
    const gfns = new Set<number>(step.gfns);
    for (const pfn of step.frames) {
      const entry = view.rmp.entry(pfn);
      if (entry.assigned && entry.asid === view.asid) gfns.add(Math.floor(entry.gpa / SZ_4K));
      const known = state.reverse.get(pfn);
      if (typeof known === 'number') gfns.add(known);
      else if (known !== undefined) for (const gfn of known) gfns.add(gfn);
    }
    for (const device of incremental) for (const gfn of gfns) checker.gfn(device, gfn);
    return checker.findings;
  },

  final(view: View) {
    return sweep(view, stateOf(view).state);
  },
});
