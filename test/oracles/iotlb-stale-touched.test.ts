// iotlb-stale, between flush points, judges only the IOTLB entries of the GFNs a step touched, and
// visits only the stretches of the (address-sorted) listing that can hold them: a 2M entry starts
// before a touched range that begins inside its region and must still be judged, and entries
// outside every touched range must not be.

import { describe, expect, it } from 'vitest';
import type { IotlbEntry, Leaf, Step, View } from '../../src/api.ts';
import { oracleNamed } from './cases.ts';

const SZ_4K = 4096;
const SZ_2M = 2 * 1024 * 1024;
const oracle = oracleNamed('iotlb-stale');

/** A world with one device whose S2 maps nothing, caching `entries`, and a host with no flush pending. */
function viewWith(entries: IotlbEntry[]): View {
  const iotlb = {
    entries: () => entries,
    lookup: () => undefined,
    get size() {
      return entries.length;
    },
    overlaps: (addr: number, len: number) => entries.some((e) => e.addr < addr + len && addr < e.addr + (e.size === '2M' ? SZ_2M : SZ_4K)),
  };
  const s2 = { leafInto: (_iova: number, _out: Leaf) => false, leaves: () => [] };
  return { host: { flushPending: false }, devices: [{ id: 1, s2, iotlb }] } as unknown as View;
}

const stepTouching = (start: number, end: number): Step => ({ op: { op: 'dma' }, gfnRanges: [{ start, end }] }) as unknown as Step;

describe('iotlb-stale between flush points', () => {
  it('judges a 2M entry whose region a touched range starts inside, and no entry outside the ranges', () => {
    const entries: IotlbEntry[] = [];
    const view = viewWith(entries);
    // The first step sweeps (nothing cached yet); the next ones judge what they touch.
    expect(oracle.check(view, stepTouching(0, 1))).toBeUndefined();
    entries.push(
      { dev: 1, addr: 0, hpa: 0x1000_0000, size: '4K' },
      { dev: 1, addr: SZ_2M, hpa: 0x4000_0000, size: '2M' },
      { dev: 1, addr: 3 * SZ_2M, hpa: 0x5000_0000, size: '4K' },
    );
    // GFNs 517..520 sit inside the 2M entry's region (GFNs 512..1023).
    const found = oracle.check(view, stepTouching(517, 520)) ?? [];
    expect(found.map((f) => f.details?.iotlb)).toEqual([{ addr: SZ_2M, hpa: 0x4000_0000, size: '2M' }]);
    // Two ranges: the 4K entries at GFN 0 and GFN 1536, in address order, not the 2M entry.
    const both = oracle.check(view, { ...stepTouching(0, 1), gfnRanges: [{ start: 0, end: 1 }, { start: 1536, end: 1537 }] }) ?? [];
    expect(both.map((f) => f.details?.iova)).toEqual([0, 3 * SZ_2M]);
  });
});
