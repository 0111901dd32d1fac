// Efficiency after a case (DOMAIN.md: "measured, not judged"): how much guest private memory sits
// under 2M leaves in each table, how often the host smashed and split, how big the IOTLB grew.
// A policy may be correct and slow; these numbers say how slow.

import { defaultRmpEntry, SZ_2M, SZ_4K, type Leaf, type PageTableView, type View, pfnOf } from '../api.ts';

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

/** Scratch for RmpView.load, leafRuns and leafInto: the metrics allocate nothing per frame or leaf. */
const entry = defaultRmpEntry();
const runs: number[] = [];
const leaf: Leaf = { iova: 0, pa: 0, size: 0 };

/** A frame the guest owns: the RMP assigns it to the guest's ASID. */
function isPrivate(view: View, pfn: number): boolean {
  view.rmp.load(pfn, entry);
  return entry.assigned && entry.asid === view.asid;
}

/**
 * Bytes under the leaves of `table` whose first frame is private (`all`), and under such leaves
 * of 2M or more (`large`), as summing over leaves() would, in steps of runs and 2M blocks rather than
 * leaves: leafRuns() gives a table of 512 linear 4K leaves (a swiotlb pool mapped 4K by 4K) as
 * one piece, and inside a run each 2M-aligned block is either one leaf of 2M or more or leaves
 * below 2M, none crossing the block's edge (leaves are naturally aligned).
 */
function privateBytes(view: View, table: PageTableView): { all: number; large: number } {
  const bytes = { all: 0, large: 0 };
  const count = table.leafRuns(0, Number.MAX_SAFE_INTEGER, runs);
  for (let r = 0; r < count; r++) {
    const iova = runs[3 * r]!;
    const pa = runs[3 * r + 1]!;
    const end = iova + runs[3 * r + 2]!;
    // `at` is always the first byte of a leaf: runs hold whole leaves.
    for (let at = iova; at < end; ) {
      table.leafInto(at, leaf);
      if (leaf.size >= SZ_2M) {
        if (isPrivate(view, pfnOf(pa + (at - iova)))) {
          bytes.all += leaf.size;
          bytes.large += leaf.size;
        }
        at += leaf.size;
        continue;
      }
      const stop = Math.min(end, Math.floor(at / SZ_2M) * SZ_2M + SZ_2M);
      bytes.all += privateSmallBytes(view, table, at, stop, pa + (at - iova));
      at = stop;
    }
  }
  return bytes;
}

/**
 * Bytes of the leaves in [from, stop) (below 2M, linear output from `pa`) whose first frame is
 * private, one RMP run (RmpView.runEnd) at a time: every leaf starting inside a run is judged
 * by the run's entry, the one straddling its end included.
 */
function privateSmallBytes(view: View, table: PageTableView, from: number, stop: number, pa: number): number {
  let counted = 0;
  const limit = pfnOf(pa + (stop - from - 1)) + 1;
  for (let at = from; at < stop; ) {
    const pfn = pfnOf(pa + (at - from));
    const runEnd = view.rmp.runEnd(pfn, limit);
    let next = at + (runEnd - pfn) * SZ_4K;
    if (next < stop) {
      table.leafInto(next - 1, leaf);
      next = leaf.iova + leaf.size;
    } else {
      next = stop;
    }
    if (isPrivate(view, pfn)) counted += next - at;
    at = next;
  }
  return counted;
}

export function computeMetrics(view: View): Metrics {
  // Counters the RMP and the page tables keep as they change (issue 15), not a sweep per case.
  const { frames: assigned, frames2M: assigned2M } = view.rmp.assignedCount(view.asid);
  // Private leaves only: shared memory is hypervisor-owned, no RMP entry limits its NPT size.
  const { all: nptBytes, large: npt2M } = privateBytes(view, view.npt);
  let ioBytes = 0;
  let io2M = 0;
  let iotlb = 0;
  for (const device of view.devices) {
    ioBytes += device.s2.leafBytes();
    io2M += device.s2.leafBytes(SZ_2M);
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
