// npt-iommu-coherence judges shared GPAs piece by piece: a piece ends where any table's answer
// stops being linear, and only then does its first page answer for the rest. One walk per table
// gives the leaf; the run goes on past the leaf (linearEnd) only where the leaf ends first. A
// stale 4K S2 leaf (or NPT leaf) in the middle of a linear 2M stretch must still be found at its
// own page, whichever table holds the short leaves.

import { describe, expect, it } from 'vitest';
import { GUEST_PAGE_SHARED, type DeviceView, type PageTableView, type View } from '../../src/api.ts';
import { createPageTable } from '../../src/model/pagetable/index.ts';
import { oracleNamed } from './cases.ts';

const SZ_4K = 4096;
const SZ_2M = 2 * 1024 * 1024;
const HPA = 0x1_0000_0000;
const STALE = 0x2_0000_0000;
const oracle = oracleNamed('npt-iommu-coherence');

/** A table mapping [SZ_2M, 2 * SZ_2M) onto HPA linearly: one 2M leaf, or 512 4K leaves with page `stale` (if any) onto STALE. */
function table(leaves: '2M' | '4K', stale?: number): PageTableView {
  const pt = createPageTable({ format: 'x86_64' });
  if (leaves === '2M') expect(pt.map(SZ_2M, HPA, SZ_2M).error).toBeUndefined();
  else {
    for (let page = 0; page < 512; page++) {
      const pa = page === stale ? STALE : HPA + page * SZ_4K;
      expect(pt.map(SZ_2M + page * SZ_4K, pa, SZ_4K).error).toBeUndefined();
    }
  }
  return pt;
}

/** A view where the guest holds every page shared, with one device. */
function viewOf(npt: PageTableView, s2: PageTableView): View {
  const device = { id: 1, trusted: false, iommu: 's2', tdi: 'unlocked', stalled: false, s2, s1: undefined } as unknown as DeviceView;
  return {
    npt,
    devices: [device],
    guest: { pageFlags: () => GUEST_PAGE_SHARED, pageRunEnd: (_gfn: number, limit: number) => limit },
    host: { sharedHpa: () => -1, backingRunEnd: (_gfn: number, end: number) => end },
  } as unknown as View;
}

const staleGpas = (view: View): unknown[] => (oracle.final!(view) ?? []).map((finding) => finding.details?.gpa);

describe('npt-iommu-coherence, piece by piece', () => {
  it('finds a stale 4K S2 leaf in the middle of a stretch the NPT maps with one 2M leaf', () => {
    expect(staleGpas(viewOf(table('2M'), table('4K', 300)))).toEqual([SZ_2M + 300 * SZ_4K]);
  });

  it('finds a 4K NPT leaf that left the frame a 2M S2 leaf still maps', () => {
    expect(staleGpas(viewOf(table('4K', 7), table('2M')))).toEqual([SZ_2M + 7 * SZ_4K]);
  });

  it('stays silent where both tables map the stretch onto the same frames, whatever their leaf sizes', () => {
    expect(staleGpas(viewOf(table('2M'), table('4K')))).toEqual([]);
    expect(staleGpas(viewOf(table('4K'), table('2M')))).toEqual([]);
    expect(staleGpas(viewOf(table('4K'), table('4K')))).toEqual([]);
  });
});
