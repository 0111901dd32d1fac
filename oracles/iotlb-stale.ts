// iotlb-stale: once the host has reached its flush point (a host_sync, or any moment it has no
// gathered invalidation pending), no IOTLB entry may lead to a frame the S2 no longer maps there:
// a stale entry keeps sending DMA to the old frame (DOMAIN.md, IOTLB; iommupt frees table pages
// and the IOMMU forgets translations only after the flush). A 2M entry must still be backed by S2
// leaves mapping its whole 2M range contiguously onto the cached frames: after an S2 cut, the
// 4K leaves that now point elsewhere make the 2M entry stale.
//
// Incremental: while the host has no flush pending, the IOTLB entries overlapping the GFNs the
// step touched (S2 changes, DMA fills and invalidations all touch them); every entry when the host
// has just reached its flush point, and at every host_sync even if the host left invalidations
// pending (a host_sync that does not flush is the bug). The full sweep sees no op, so it judges
// by flushPending alone: only a host whose host_sync leaves invalidations pending can make the two
// disagree.
//
// Cost: a device none of whose IOTLB entries overlaps a touched GFN range (IotlbView.overlaps) is
// skipped without listing its entries; of a listing (by address) only the stretches that can hold
// an entry of a touched range are visited; an entry the S2 still backs, which is almost every entry,
// is confirmed with one leaf lookup into a reused Leaf; the walk over S2 leaves and the message are
// for a stale one. The touched GFNs are tested as runs, without building Sets.

import { FRAMES_PER_2M, SZ_2M, SZ_4K, defineOracle, formatSize, hex, type DeviceView, type Finding, type IotlbEntry, type Leaf, type Step, type View } from 'cocofuzz/api';
import { Findings } from './lib/findings.ts';
import { overlaps, touchesRegion } from './lib/runs.ts';

interface State {
  flushPending: boolean;
}

const states = new WeakMap<View, State>();
const found = new Findings();

const entryBytes = (entry: IotlbEntry): number => (entry.size === '2M' ? SZ_2M : SZ_4K);

/** Scratch for PageTableView.leafInto. */
const leaf: Leaf = { iova: 0, pa: 0, size: 0 };

/** Whether the S2 still maps the whole of `entry` onto its cached frames (no allocation). */
function stillBacked(device: DeviceView, entry: IotlbEntry): boolean {
  if (!device.s2.leafInto(entry.addr, leaf) || leaf.pa + (entry.addr - leaf.iova) !== entry.hpa) return false;
  // A 2M entry is 2M-aligned: one leaf of 2M or more holding its first byte holds all of it.
  return entry.size === '4K' || leaf.size >= SZ_2M;
}

/** Whether some IOTLB entry of `device` overlaps a GFN range the step touched (allocation-free). */
function cachesTouched(device: DeviceView, ranges: Step['gfnRanges']): boolean {
  if (device.iotlb.size === 0) return false;
  for (let r = 0; r < ranges.length; r++) {
    const range = ranges[r]!;
    if (device.iotlb.overlaps(range.start * SZ_4K, (range.end - range.start) * SZ_4K)) return true;
  }
  return false;
}

/** Whether `entry` caches a translation of a GFN the step touched (a 2M entry: any GFN of its region). */
function touches(ranges: Step['gfnRanges'], entry: IotlbEntry): boolean {
  const gfn = entry.addr / SZ_4K;
  return entry.size === '2M' ? touchesRegion(ranges, entry.addr / SZ_2M) : overlaps(ranges, gfn, gfn + 1);
}

/** The index of the first of `entries` (sorted by address) at or above `addr` (binary search). */
function firstAtOrAbove(entries: readonly IotlbEntry[], addr: number): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (entries[mid]!.addr < addr) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * checkEntry() for each of `entries` (as entries() lists them, by address) that touches() the
 * ranges, in that order: an entry that does has its address between the start of the 2M region
 * of a range's first GFN and the range's end, so only those stretches of the list are visited
 * (a device caching hundreds of 4K entries, a DMA touching a few of them).
 */
function checkTouchedEntries(device: DeviceView, entries: readonly IotlbEntry[], ranges: Step['gfnRanges'], out: Findings): void {
  let k = 0;
  for (const range of ranges) {
    k = Math.max(k, firstAtOrAbove(entries, Math.floor(range.start / FRAMES_PER_2M) * SZ_2M));
    for (; k < entries.length && entries[k]!.addr < range.end * SZ_4K; k++) if (touches(ranges, entries[k]!)) checkEntry(device, entries[k]!, out);
  }
}

function checkEntry(device: DeviceView, entry: IotlbEntry, out: Findings): void {
  if (stillBacked(device, entry)) return;
  const end = entry.addr + entryBytes(entry);
  let cursor = entry.addr;
  let problem = '';
  let s2 = '';
  let at = entry.addr;
  for (const leaf of device.s2.leaves(entry.addr, end)) {
    const start = Math.max(leaf.iova, cursor);
    if (start > cursor) {
      problem = 'S2 no longer maps it';
      s2 = 'S2[none]';
      at = cursor;
      break;
    }
    const hpa = leaf.pa + (start - leaf.iova);
    if (hpa !== entry.hpa + (start - entry.addr)) {
      problem = `S2 now leads to hpa ${hex(hpa)}`;
      s2 = `S2[${formatSize(leaf.size)}]`;
      at = start;
      break;
    }
    cursor = Math.min(end, leaf.iova + leaf.size);
    if (cursor >= end) break;
  }
  if (problem === '' && cursor < end) {
    problem = 'S2 no longer maps it';
    s2 = 'S2[none]';
    at = cursor;
  }
  if (problem === '') return;
  const cached = entry.hpa + (at - entry.addr);
  out.push({
    message:
      `dev ${device.id} IOTLB[${entry.size}] ${hex(entry.addr)} --> hpa ${hex(entry.hpa)} after the flush point, ` +
      `but at ${hex(at)} ${s2}: ${problem} ==> FAIL (stale IOTLB entry leads to hpa ${hex(cached)})`,
    details: { dev: device.id, iova: at, gpa: at, hpa: cached, sizes: { checked: entry.size }, iotlb: { addr: entry.addr, hpa: entry.hpa, size: entry.size } },
  });
}

function sweep(view: View, hostSync: boolean): Finding[] | undefined {
  if (view.host.flushPending && !hostSync) return undefined;
  for (const device of view.devices) for (const entry of device.iotlb.entries()) checkEntry(device, entry, found);
  return found.take();
}

export default defineOracle({
  name: 'iotlb-stale',
  description: "after the host's flush point, no IOTLB entry leads to a frame the S2 no longer maps",
  severity: 'security',

  check(view: View, step: Step) {
    const state = states.get(view);
    /** Whether the host had invalidations pending after the previous step (undefined: first step). */
    const before = state?.flushPending;
    const pending = view.host.flushPending;
    if (state === undefined) states.set(view, { flushPending: pending });
    else state.flushPending = pending;
    // host_sync is the flush point whatever the host left pending: every entry must be right.
    if (step.op.op === 'host_sync') return sweep(view, true);
    // First step, or the host just reached its flush point: every entry.
    if (before !== false) return sweep(view, false);
    if (pending || step.gfnRanges.length === 0) return undefined;
    for (const device of view.devices) {
      // Most steps touch no cached translation: then the entries are not listed at all.
      if (!cachesTouched(device, step.gfnRanges)) continue;
      const entries = device.iotlb.entries();
      if (Array.isArray(entries)) checkTouchedEntries(device, entries as readonly IotlbEntry[], step.gfnRanges, found);
      else for (const entry of entries) if (touches(step.gfnRanges, entry)) checkEntry(device, entry, found);
    }
    return found.take();
  },

  final(view: View) {
    const state = states.get(view);
    if (state === undefined) states.set(view, { flushPending: view.host.flushPending });
    else state.flushPending = view.host.flushPending;
    return sweep(view, false);
  },
});
