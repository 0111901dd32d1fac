// Efficiency after a case (DOMAIN.md: "measured, not judged"): how much guest private memory sits
// under 2M leaves in each table, how often the host smashed and split, how big the IOTLB grew.
// A policy may be correct and slow; these numbers say how slow.

import { FRAME_LIMIT, defaultRmpEntry, SZ_2M, SZ_4K, type View, pfnOf } from '../api.ts';

export interface Metrics {
  /** Share (0..1) of assigned guest frames under 2M RMP entries. */
  rmp2M: number;
  /** Share of private NPT-mapped guest bytes under leaves of 2M or more. */
  npt2M: number;
  /** Share of IO S2-mapped bytes (all devices) under leaves of 2M or more. */
  ioS2_2M: number;
  psmash: number;
  nptSplits: number;
  ioSplits: number;
  /** IOTLB entries per MiB of guest memory. */
  iotlbPerMiB: number;
}

const share = (large: number, total: number): number => (total === 0 ? 0 : large / total);

/** Scratch for RmpView.load: the metrics allocate nothing per frame or leaf. */
const entry = defaultRmpEntry();

export function computeMetrics(view: View): Metrics {
  let assigned = 0;
  let assigned2M = 0;
  // Run by run (RmpView.runEnd): a run shares assigned, ASID and size, and hypervisor-owned
  // memory (a swiotlb pool shared with 2M RMPUPDATEs) is a few runs, whatever its size.
  for (let pfn = 0; pfn < FRAME_LIMIT; ) {
    const end = view.rmp.runEnd(pfn, FRAME_LIMIT);
    view.rmp.load(pfn, entry);
    if (entry.assigned && entry.asid === view.asid) {
      assigned += end - pfn;
      if (entry.size === '2M') assigned2M += end - pfn;
    }
    pfn = end;
  }
  let nptBytes = 0;
  let npt2M = 0;
  for (const leaf of view.npt.leaves()) {
    // Private leaves only: shared memory is hypervisor-owned, no RMP entry limits its NPT size.
    view.rmp.load(pfnOf(leaf.pa), entry);
    if (!entry.assigned || entry.asid !== view.asid) continue;
    nptBytes += leaf.size;
    if (leaf.size >= SZ_2M) npt2M += leaf.size;
  }
  let ioBytes = 0;
  let io2M = 0;
  let iotlb = 0;
  for (const device of view.devices) {
    for (const leaf of device.s2.leaves()) {
      ioBytes += leaf.size;
      if (leaf.size >= SZ_2M) io2M += leaf.size;
    }
    iotlb += device.iotlb.size;
  }
  return {
    rmp2M: share(assigned2M, assigned),
    npt2M: share(npt2M, nptBytes),
    ioS2_2M: share(io2M, ioBytes),
    psmash: view.counters.psmash,
    nptSplits: view.counters.nptSplits,
    ioSplits: view.counters.ioSplits,
    iotlbPerMiB: iotlb / (view.config.guestMemory / (256 * SZ_4K)),
  };
}

/** Sums metrics over cases; `mean()` gives the per-case average the campaign reports. */
export class MetricsTotal {
  private readonly sum: Metrics = { rmp2M: 0, npt2M: 0, ioS2_2M: 0, psmash: 0, nptSplits: 0, ioSplits: 0, iotlbPerMiB: 0 };
  private count = 0;

  add(metrics: Metrics): void {
    for (const key of Object.keys(this.sum) as (keyof Metrics)[]) this.sum[key] += metrics[key];
    this.count++;
  }

  mean(): Metrics {
    const out = { ...this.sum };
    for (const key of Object.keys(out) as (keyof Metrics)[]) out[key] = this.count === 0 ? 0 : Math.round((out[key] / this.count) * 1000) / 1000;
    return out;
  }
}

export function formatMetrics(m: Metrics): string {
  const pct = (x: number): string => `${Math.round(x * 100)}%`;
  return `under 2M leaves: RMP ${pct(m.rmp2M)}, NPT ${pct(m.npt2M)}, IO S2 ${pct(m.ioS2_2M)}; per case: ${m.psmash} PSMASH, ${m.nptSplits} NPT splits, ${m.ioSplits} IO splits; ${m.iotlbPerMiB} IOTLB entries/MiB`;
}
