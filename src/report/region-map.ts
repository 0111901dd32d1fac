// The failing 2M region as data for a picture: one row per table (guest, NPT, RMP, each device's
// IO S2 and IOTLB), each row a list of runs over the region's 512 4K frames. explain prints the
// same region as text (region.ts); the HTML report draws these rows as an SVG map, before and
// after the failing step, so "S2[4K] over RMP[2M]" is seen at a glance.

import { type Leaf, SZ_2M, SZ_4K, type View, formatSize, hex, pfnOf } from '../api.ts';

export interface MapRun {
  /** First and one-past-last 4K frame of the run within the region (0..512). */
  from: number;
  to: number;
  /** What the run is, for the colour: "2M", "4K", "unmapped", "assigned", "shared"... */
  kind: string;
  /** A one-line description, shown on hover. */
  label: string;
}

export interface MapRow {
  table: string;
  runs: MapRun[];
}

export interface RegionMap {
  /** The 2M-aligned guest address of the region. */
  gpa: number;
  rows: MapRow[];
}

const FRAMES = SZ_2M / SZ_4K;

/** Runs of equal kind over frames 0..511, from a per-frame classifier. */
function runsOf(classify: (frame: number) => { kind: string; label: string }): MapRun[] {
  const runs: MapRun[] = [];
  for (let frame = 0; frame < FRAMES; frame++) {
    const { kind, label } = classify(frame);
    const last = runs.at(-1);
    if (last && last.kind === kind && last.label === label) last.to = frame + 1;
    else runs.push({ from: frame, to: frame + 1, kind, label });
  }
  return runs;
}

/** A page table's leaves over the region: each leaf is a run, gaps are "unmapped". */
function leafRuns(leaves: Iterable<Leaf>, base: number): MapRun[] {
  const runs: MapRun[] = [];
  let next = 0;
  const sorted = [...leaves].filter((l) => l.iova < base + SZ_2M && l.iova + l.size > base).sort((a, b) => a.iova - b.iova);
  for (const leaf of sorted) {
    const from = Math.max(0, Math.floor((leaf.iova - base) / SZ_4K));
    const to = Math.min(FRAMES, Math.ceil((leaf.iova + leaf.size - base) / SZ_4K));
    if (from > next) runs.push({ from: next, to: from, kind: 'unmapped', label: 'unmapped' });
    const kind = leaf.size >= SZ_2M ? '2M' : '4K';
    runs.push({ from, to, kind, label: `${formatSize(leaf.size)} leaf ${hex(leaf.iova)} -> ${hex(leaf.pa)}` });
    next = to;
  }
  if (next < FRAMES) runs.push({ from: next, to: FRAMES, kind: 'unmapped', label: 'unmapped' });
  return runs;
}

/** The region holding guest address `gpa` (and, when known, host frame `hpa`) in every table. */
export function regionMap(view: View, where: { gpa: number; hpa: number | undefined }): RegionMap {
  const base = where.gpa - (where.gpa % SZ_2M);
  const firstGfn = base / SZ_4K;
  const rows: MapRow[] = [];
  rows.push({
    table: 'guest',
    runs: runsOf((i) => {
      const page = view.guest.page(firstGfn + i);
      if (!page?.accepted) return { kind: 'unaccepted', label: 'not accepted' };
      if (page.shared) return { kind: 'shared', label: 'shared' };
      return page.validated ? { kind: 'validated', label: 'private, validated' } : { kind: 'accepted', label: 'accepted, not validated' };
    }),
  });
  rows.push({ table: 'NPT', runs: leafRuns(view.npt.leaves(base, base + SZ_2M), base) });
  const backing = where.hpa ?? view.host.backing(base)?.hpa;
  if (backing === undefined) rows.push({ table: 'RMP', runs: [{ from: 0, to: FRAMES, kind: 'none', label: 'no backing frame yet' }] });
  else {
    const rmpBase = pfnOf(backing - (backing % SZ_2M));
    rows.push({
      table: 'RMP',
      runs: runsOf((i) => {
        const entry = view.rmp.entry(rmpBase + i);
        const size = entry.size === '2M' ? '2M' : '4K';
        if (!entry.assigned) return { kind: `${size}-hv`, label: `${size} hypervisor-owned @${hex((rmpBase + i) * SZ_4K)}` };
        const state = `${entry.validated ? 'validated' : 'not validated'}${entry.immutable ? ', immutable' : ''}`;
        return { kind: size, label: `${size} assigned asid ${entry.asid}, ${state}` };
      }),
    });
  }
  for (const device of view.devices) {
    rows.push({ table: `IO S2 dev${device.id}`, runs: leafRuns(device.s2.leaves(base, base + SZ_2M), base) });
    const cached = [...device.iotlb.entries()].filter((e) => e.addr < base + SZ_2M && e.addr + (e.size === '2M' ? SZ_2M : SZ_4K) > base);
    rows.push({
      table: `IOTLB dev${device.id}`,
      runs: leafRuns(
        cached.map((e): Leaf => ({ iova: e.addr, pa: e.hpa, size: e.size === '2M' ? SZ_2M : SZ_4K })),
        base,
      ).map((run) => (run.kind === 'unmapped' ? { ...run, kind: 'empty', label: 'not cached' } : { ...run, label: run.label.replace('leaf', 'cached') })),
    });
  }
  return { gpa: base, rows };
}
