// The state-coverage signal (issue 16): what a campaign keeps a case for. Computed by the engine
// from the step and the read-only view after it, never by user oracles, and never feeding back
// into the run: a case's verdict does not depend on whether coverage is on.
//
// A feature is an *abstract situation*, free of addresses: an old situation at a new address is
// not new. Like syzkaller's signal (edges, not PCs) and TLC's per-action coverage, three kinds:
//   op:<kind>:<outcome>            the op kind and how it ended (ok, skipped, its result, a guest
//                                  error, the fault kinds it met), and interleaved inner ops;
//   call:<kind>:<prim>=<status>    each primitive call of the op with its status code;
//   <table>=<value>                each component of the region tuple below, alone (per table);
//   region:<tuple>                 the abstract tuple of a 2M guest region the step touched;
//   move:<tuple>><tuple>           a region's tuple before and after the step, when it changed.
// The region tuple: RMP size and assigned mix, validated mix, NPT leaf size, per device its S2
// leaf size and view (s2/nested, TDI state), the IOTLB's cached size, the guest's shared mix, and
// whether the region holds swiotlb slots or an atomic-pool buffer. A "mix" is none/some/all of
// the region's 512 frames.

import { GUEST_PAGE_SHARED, GUEST_PAGE_VALIDATED, type Step, type View } from '../api.ts';
import { defaultRmpEntry } from '../model/rmp.ts';
import { FRAMES_PER_2M, SZ_2M, SZ_4K } from '../model/size.ts';

/** The tables of the region tuple and the values each can take (what `cocofuzz coverage` lists). */
export const TABLE_VALUES: Readonly<Record<string, readonly string[]>> = {
  'rmp.size': ['none', '4K', '2M', 'mixed'],
  'rmp.assigned': ['none', 'some', 'all'],
  'rmp.validated': ['none', 'some', 'all'],
  'npt.leaf': ['none', '4K', '2M', '1G', 'mixed'],
  's2.leaf': ['none', '4K', '2M', '1G', 'mixed'],
  's2.view': ['s2/unlocked', 's2/locked', 's2/run', 'nested/unlocked', 'nested/locked', 'nested/run'],
  'iotlb.cached': ['none', '4K', '2M', 'mixed'],
  'guest.shared': ['none', 'some', 'all'],
  'guest.validated': ['none', 'some', 'all'],
  'pool': ['none', 'swiotlb', 'atomic-pool', 'both'],
};

/** The RMP entry regionTuple reads into (reused). */
const scratch = defaultRmpEntry();

/** Regions looked at per step: a conversion of 512 pages touches one; a 1G sweep is capped. */
const MAX_REGIONS_PER_STEP = 4;

const mix = (count: number, total: number): string => (count === 0 ? 'none' : count === total ? 'all' : 'some');

const sizeName = (size: number): string => (size >= 1024 * SZ_2M ? '1G' : size >= SZ_2M ? '2M' : '4K');

/** The leaf sizes covering [from, to): one size, "mixed", or "none" (nothing mapped). */
function leafMix(leaves: Iterable<{ size: number }>): string {
  let seen: string | undefined;
  for (const leaf of leaves) {
    const name = sizeName(leaf.size);
    if (seen !== undefined && seen !== name) return 'mixed';
    seen = name;
  }
  return seen ?? 'none';
}

/** The abstract tuple of the 2M guest region starting at `base`, as `table=value` parts. */
export function regionTuple(view: View, base: number): string[] {
  const firstGfn = Math.floor(base / SZ_4K);
  let assigned = 0;
  let validated = 0;
  let shared = 0;
  let guestValidated = 0;
  let size4K = false;
  let size2M = false;
  // Allocation-free reads (RmpView.load, HostView.backingHpa, GuestView.pageFlags): this runs for
  // up to four regions after every step of a guided campaign.
  for (let i = 0; i < FRAMES_PER_2M; i++) {
    const hpa = view.host.backingHpa(base + i * SZ_4K);
    if (hpa >= 0) {
      const entry = view.rmp.load(Math.floor(hpa / SZ_4K), scratch);
      if (entry.assigned && entry.asid === view.asid) {
        assigned++;
        if (entry.size === '2M') size2M = true;
        else size4K = true;
        if (entry.validated) validated++;
      }
    }
    const flags = view.guest.pageFlags(firstGfn + i);
    if ((flags & GUEST_PAGE_SHARED) !== 0) shared++;
    if ((flags & GUEST_PAGE_VALIDATED) !== 0) guestValidated++;
  }
  const end = base + SZ_2M;
  const parts = [
    `rmp.size=${size4K && size2M ? 'mixed' : size2M ? '2M' : size4K ? '4K' : 'none'}`,
    `rmp.assigned=${mix(assigned, FRAMES_PER_2M)}`,
    `rmp.validated=${mix(validated, FRAMES_PER_2M)}`,
    `npt.leaf=${leafMix(view.npt.leaves(base, end))}`,
  ];
  for (const device of view.devices) {
    parts.push(`s2.leaf=${leafMix(device.s2.leaves(base, end))}`, `s2.view=${device.iommu}/${device.tdi}`);
    const cached: { size: number }[] = [];
    for (const entry of device.iotlb.entries()) {
      if (entry.addr < end && entry.addr + (entry.size === '2M' ? SZ_2M : SZ_4K) > base) cached.push({ size: entry.size === '2M' ? SZ_2M : SZ_4K });
    }
    parts.push(`iotlb.cached=${leafMix(cached)}`);
  }
  parts.push(`guest.shared=${mix(shared, FRAMES_PER_2M)}`, `guest.validated=${mix(guestValidated, FRAMES_PER_2M)}`);
  const swiotlb = view.guest.swiotlb.base < end && view.guest.swiotlb.end > base;
  const pool = view.guest.buffers.some((b) => b.source === 'atomic-pool' && b.gpa < end && b.gpa + b.bytes > base);
  parts.push(`pool=${swiotlb && pool ? 'both' : swiotlb ? 'swiotlb' : pool ? 'atomic-pool' : 'none'}`);
  return parts;
}

/**
 * A call's result as a status: status codes (0..255) stay; a byte count (io_map and io_unmap
 * return how much they mapped) becomes its size class, or every length would be a feature.
 */
function status(result: number | string): string {
  if (typeof result !== 'number' || result <= 255) return String(result);
  return result === SZ_4K ? '4K' : result < SZ_2M ? '4K..2M' : result === SZ_2M ? '2M' : '>2M';
}

/** Digits and hex numbers out of free text (results, guest errors): a value is not a situation. */
const abstract = (text: string): string => text.replace(/0x[0-9a-f]+|\d+/gi, '#').slice(0, 80);

/** How a step ended, as few words: what `op:` features are made of. */
function outcomes(step: Step): string[] {
  if (step.skipped !== undefined) return ['skipped'];
  const out = new Set<string>();
  if (step.result !== undefined) out.add(`result ${abstract(step.result)}`);
  for (const error of step.guestErrors ?? []) out.add(`guest-error ${abstract(error)}`);
  for (const fault of step.faults) out.add(`fault ${fault.kind}`);
  for (const dma of step.dmas) out.add(dma.result.ok ? `dma ok${dma.legit ? '' : ' wild'}` : `dma failed${dma.legit ? ' legit' : ''}`);
  if (out.size === 0) out.add('ok');
  return [...out];
}

/**
 * Follows one case step by step and collects its features. Regions remember their last tuple
 * (per case) so that a change of tuple is a `move:` feature.
 */
export class CoverageTracker {
  readonly features = new Set<string>();
  private readonly last = new Map<number, string>();

  observe(step: Step, view: View): void {
    const kind = step.op.op;
    for (const outcome of outcomes(step)) this.features.add(`op:${kind}:${outcome}`);
    for (const call of step.calls) this.features.add(`call:${kind}:${call.during === undefined ? '' : 'during '}${call.prim}=${status(call.result)}`);
    for (const record of step.interleaved ?? []) {
      this.features.add(`op:${kind}:during ${record.op.op}${record.skipped !== undefined ? ' skipped' : record.waited ? ' waited' : record.deferred ? ' deferred' : ''}`);
    }
    const regions = new Set<number>();
    for (const range of step.gfnRanges) {
      for (let region = Math.floor(range.start / FRAMES_PER_2M); region * FRAMES_PER_2M < range.end && regions.size < MAX_REGIONS_PER_STEP; region++) regions.add(region * SZ_2M);
    }
    for (const base of [...regions].sort((a, b) => a - b)) {
      const parts = regionTuple(view, base);
      for (const part of parts) this.features.add(part);
      const tuple = parts.join(' ');
      this.features.add(`region:${tuple}`);
      const before = this.last.get(base);
      if (before !== undefined && before !== tuple) this.features.add(`move:${before}>${tuple}`);
      this.last.set(base, tuple);
    }
  }
}

/** The kind of a feature, for reports: op, call, region, move or the table of a tuple component. */
export function featureTable(feature: string): string {
  const colon = feature.indexOf(':');
  if (colon > 0 && !feature.slice(0, colon).includes('=')) return feature.slice(0, colon);
  return feature.slice(0, feature.indexOf('='));
}
