// A snapshot of one 2M region in every table, for explain's before/after picture.

import { type Leaf, SZ_2M, SZ_4K, type View, formatSize, hex, pfnOf } from '../api.ts';

export interface RegionRow {
  table: string;
  state: string;
}

function summarizeLeaves(leaves: Iterable<Leaf>, from: number, to: number): string {
  const counts = new Map<number, number>();
  let first: Leaf | undefined;
  for (const leaf of leaves) {
    if (leaf.iova + leaf.size <= from || leaf.iova >= to) continue;
    first ??= leaf;
    counts.set(leaf.size, (counts.get(leaf.size) ?? 0) + 1);
  }
  if (!first) return 'unmapped';
  const sizes = [...counts.entries()].sort((a, b) => b[0] - a[0]).map(([size, n]) => `${n} x ${formatSize(size)}`);
  return `${sizes.join(', ')} (first ${hex(first.iova)} -> ${hex(first.pa)})`;
}

function summarizeRmp(view: View, hpaBase: number): string {
  const base = pfnOf(hpaBase);
  const head = view.rmp.entry(base);
  if (head.size === '2M') {
    return head.assigned
      ? `2M assigned asid ${head.asid} gpa ${hex(head.gpa)}${head.validated ? ' validated' : ''}${head.immutable ? ' immutable' : ''}`
      : '2M unassigned';
  }
  let assigned = 0;
  let validated = 0;
  for (let i = 0; i < 512; i++) {
    const entry = view.rmp.entry(base + i);
    if (entry.assigned) assigned++;
    if (entry.validated) validated++;
  }
  return assigned === 0 ? '4K entries, all unassigned' : `4K entries: ${assigned}/512 assigned, ${validated}/512 validated`;
}

/** The region holding guest address `gpa` (and, when known, host frame `hpa`) in every table. */
export function snapshotRegion(view: View, gpa: number, hpa: number | undefined): RegionRow[] {
  const from = gpa - (gpa % SZ_2M);
  const to = from + SZ_2M;
  let accepted = 0;
  let validated = 0;
  let shared = 0;
  for (let gfn = from / SZ_4K; gfn < to / SZ_4K; gfn++) {
    const page = view.guest.page(gfn);
    if (!page) continue;
    if (page.accepted) accepted++;
    if (page.validated) validated++;
    if (page.shared) shared++;
  }
  const rows: RegionRow[] = [
    { table: 'guest', state: `${accepted}/512 accepted, ${validated}/512 validated, ${shared}/512 shared` },
    { table: 'NPT', state: summarizeLeaves(view.npt.leaves(from, to), from, to) },
  ];
  // Rows keep the same labels before and after a step (explain pairs them by label): the frame
  // address goes into the state, since the backing may only appear with the step.
  const backing = hpa ?? view.host.backing(from)?.hpa;
  const rmpBase = backing === undefined ? undefined : backing - (backing % SZ_2M);
  rows.push({ table: 'RMP', state: rmpBase === undefined ? 'no backing frame yet' : `@${hex(rmpBase)}: ${summarizeRmp(view, rmpBase)}` });
  for (const device of view.devices) {
    rows.push({ table: `IO S2 dev${device.id}`, state: summarizeLeaves(device.s2.leaves(from, to), from, to) });
    const cached = [...device.iotlb.entries()].filter((e) => e.addr < to && e.addr + (e.size === '2M' ? SZ_2M : SZ_4K) > from);
    rows.push({
      table: `IOTLB dev${device.id}`,
      state: cached.length === 0 ? 'empty' : cached.slice(0, 3).map((e) => `${e.size} ${hex(e.addr)} -> ${hex(e.hpa)}`).join(', ') + (cached.length > 3 ? ` (+${cached.length - 3})` : ''),
    });
  }
  return rows;
}
