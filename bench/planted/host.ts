// A copy of the quiesce-dma host policy (src/policies/quiesce-dma.ts: cut-on-convert's IO side,
// page-size changes with DMA stalled) with the host-side planted bugs, each behind its own flag.
// With no flag it behaves exactly like quiesce-dma
// (test/bench-planted.test.ts compares the two): every hook it defines does what the default or
// the original does. Per-VM bookkeeping some bugs need lives in a WeakMap keyed by the hook
// context, which is one object per world, so nothing leaks from one case into the next.

import { SZ_1G, SZ_2M, SZ_4K, alignDown } from '../../src/model/size.ts';
import type { ConvertRequest, HostContext, HostPolicy, IoEvent, PrivateFault } from '../../src/policies/types.ts';
import { followRmpIo } from '../../src/policies/follow-rmp.ts';
import { quiescedSmash } from '../../src/policies/quiesce-dma.ts';
import type { BugFlag } from './types.ts';

interface HostState {
  /** The host reached its flush point (host_sync) at least once. */
  synced: boolean;
  /** Conversions to shared of less than 2M (kernel users' set_memory_decrypted, not the boot pool). */
  smallShares: number;
  /** 2M regions converted (partly) to shared since their last conversion back to private. */
  sharedRegions: Set<number>;
  /** Completed private -> shared -> private round trips per 2M region. */
  roundTrips: Map<number, number>;
  /** How many times each GFN was mapped in the shared view, and the frame of the first time. */
  shareCounts: Map<number, number>;
  firstFrame: Map<number, number>;
}

const states = new WeakMap<HostContext, HostState>();

function stateOf(ctx: HostContext): HostState {
  let state = states.get(ctx);
  if (state === undefined) {
    state = { synced: false, smallShares: 0, sharedRegions: new Set(), roundTrips: new Map(), shareCounts: new Map(), firstFrame: new Map() };
    states.set(ctx, state);
  }
  return state;
}

function regionsOf(gpa: number, len: number): number[] {
  const out: number[] = [];
  for (let region = alignDown(gpa, SZ_2M); region < gpa + len; region += SZ_2M) out.push(region / SZ_2M);
  return out;
}

/** The PSC bookkeeping the deep bugs key on. */
function track(state: HostState, request: ConvertRequest): void {
  if (request.to === 'shared') {
    if (request.len < SZ_2M) state.smallShares++;
    for (const region of regionsOf(request.gpa, request.len)) state.sharedRegions.add(region);
    return;
  }
  for (const region of regionsOf(request.gpa, request.len)) {
    if (!state.sharedRegions.delete(region)) continue;
    state.roundTrips.set(region, (state.roundTrips.get(region) ?? 0) + 1);
  }
}

/**
 * Bug sizem-rmpupdate-rebuild: KVM answers a 4K PVALIDATE on a 2M RMP entry by rebuilding the
 * region as 512 fresh 4K entries (RMPUPDATE) instead of PSMASH, which keeps Validated. Every
 * RMPUPDATE clears Validated, so the 511 other pages the guest validated lose it behind its back:
 * the host's RMPUPDATE racing the guest's PVALIDATE.
 */
function rebuildAs4K(ctx: HostContext, fault: PrivateFault): boolean {
  const region = alignDown(fault.gpa, SZ_2M);
  const base = ctx.gmemFrame(region);
  const entry = ctx.machine.rmp.entry(base / SZ_4K);
  if (!entry.assigned || entry.size !== '2M') return false;
  ctx.kvm.zapNpt(region, SZ_2M);
  ctx.machine.rmpUpdate(base, { assigned: false, asid: 0, gpa: 0, size: '2M' });
  for (let offset = 0; offset < SZ_2M; offset += SZ_4K) {
    ctx.machine.rmpUpdate(base + offset, { assigned: true, asid: entry.asid, gpa: region + offset, size: '4K' });
  }
  // The IO side is cut as for a PSMASH, so that only the lost Validated bits show.
  for (const device of ctx.iommu.devices()) {
    const leaf = ctx.machine.device(device.id).s2.leafAt(region);
    if (leaf === undefined || leaf.size < SZ_2M) continue;
    ctx.machine.ioSplit(device.id, leaf.iova, SZ_4K);
    ctx.iommu.flush(device.id);
  }
  return true;
}

/**
 * Bug repromote-after-round-trips: after a region's third private -> shared -> private round trip,
 * the fault handler maps it with a 2M NPT leaf because the memory attributes are uniform again,
 * forgetting that the folio was split and the RMP entries are 4K now (Michael Roth's re-promotion
 * scenario, research/amd-snp.md section 7 item 6).
 */
function repromote(ctx: HostContext, state: HostState, fault: PrivateFault): void {
  const region = alignDown(fault.gpa, SZ_2M);
  if ((state.roundTrips.get(region / SZ_2M) ?? 0) < 3) return;
  const leaf = ctx.machine.npt.leafAt(fault.gpa);
  if (leaf !== undefined && leaf.size >= SZ_2M) return;
  ctx.kvm.zapNpt(region, SZ_2M);
  ctx.machine.nptMap(region, ctx.gmemFrame(region), SZ_2M);
}

/**
 * Bug stale-pin-after-reshare: from the third time a page is made shared, the VMM maps the IO S2
 * to the frame it pinned the first time (a stale pin cache) instead of the new backing frame.
 */
function mapShared(ctx: HostContext, state: HostState, dev: number, event: Extract<IoEvent, { kind: 'map' }>, stalePins: boolean): void {
  if (!stalePins) {
    ctx.iommu.map(dev, event.gpa, event.hpa, event.len);
    return;
  }
  for (let offset = 0; offset < event.len; offset += SZ_4K) {
    const gfn = (event.gpa + offset) / SZ_4K;
    const hpa = (state.shareCounts.get(gfn) ?? 0) >= 3 ? (state.firstFrame.get(gfn) ?? event.hpa + offset) : event.hpa + offset;
    ctx.iommu.map(dev, event.gpa + offset, hpa, SZ_4K);
  }
}

function countShares(state: HostState, event: Extract<IoEvent, { kind: 'map' }>): void {
  for (let offset = 0; offset < event.len; offset += SZ_4K) {
    const gfn = (event.gpa + offset) / SZ_4K;
    state.shareCounts.set(gfn, (state.shareCounts.get(gfn) ?? 0) + 1);
    if (!state.firstFrame.has(gfn)) state.firstFrame.set(gfn, event.hpa + offset);
  }
}

/**
 * iotlb_sync without the invalidation: the gathered ranges are dropped (the public flush with no
 * ranges: the gather is emptied, the table pages freed and the pins released all the same).
 */
function drainWithoutInvalidation(ctx: HostContext, dev: number): void {
  ctx.iommu.flush(dev, { ranges: [] });
}

export function plantedHostPolicy(flag?: BugFlag): HostPolicy {
  const on = (candidate: BugFlag): boolean => flag === candidate;
  return {
    name: flag === undefined ? 'quiesce-dma (planted copy)' : `quiesce-dma+${flag}`,
    description: flag === undefined ? 'copy of quiesce-dma with no planted bug (the control)' : `copy of quiesce-dma with planted bug ${flag}`,
    ioPageSizes: [SZ_4K, SZ_2M],
    smash: quiescedSmash,

    privateFault(ctx, fault) {
      // Bug sizem-ignored: a SIZEM fault (a 4K PVALIDATE on a 2M RMP entry) is answered without
      // PSMASH; the guest's PVALIDATE faults again and again.
      if (on('sizem-ignored') && fault.kind === 'sizem') return;
      if (on('sizem-rmpupdate-rebuild') && fault.kind === 'sizem' && rebuildAs4K(ctx, fault)) return;
      ctx.kvm.defaultPrivateFault(fault);
      if (on('repromote-after-round-trips') && fault.maxLevel === '2M') repromote(ctx, stateOf(ctx), fault);
    },

    convert(ctx, request) {
      track(stateOf(ctx), request);
      // Bug pool-tail-left-private: a conversion to shared longer than 2M is walked in a loop that
      // stops one page short, and reported complete: the last page stays private while the guest
      // believes it shared. Under linux-2m-pool only the boot swiotlb pool is converted in one
      // request that long, so only a buffer at the very end of the pool shows it.
      if (on('pool-tail-left-private') && request.to === 'shared' && request.len > SZ_2M) {
        ctx.kvm.defaultConvert({ ...request, len: request.len - SZ_4K });
        return request.len;
      }
      ctx.kvm.defaultConvert(request);
    },

    flush(ctx) {
      stateOf(ctx).synced = true;
      for (const device of ctx.iommu.devices()) ctx.iommu.flush(device.id);
      if (on('sync-repairs-missing-private-map')) {
        // The periodic resync that hides the bug below: rebuild every private view from scratch.
        for (const device of ctx.iommu.devices()) if (device.view === 'private') ctx.iommu.mirror(device.id, { followRmp: true });
      }
    },

    io(ctx, event) {
      const state = stateOf(ctx);
      switch (event.kind) {
        case 'map':
          if (event.shared) countShares(state, event);
          for (const dev of event.devices) {
            if (event.shared) mapShared(ctx, state, dev, event, on('stale-pin-after-reshare'));
            // Bug sync-repairs-missing-private-map: private memory faulted in while a device
            // shows the private view is not mapped for it until the next host_sync resync.
            else if (!on('sync-repairs-missing-private-map')) ctx.iommu.mapFollowingRmp(dev, event.gpa, event.hpa, event.len);
          }
          return;
        case 'unmap':
          // Bug share-2m-keeps-private-s2: a whole-2M conversion to shared (a 2M PSC entry) skips
          // the private view's unmap, so a trusted device keeps reaching the frames being shared.
          if (on('share-2m-keeps-private-s2') && !event.shared && event.len >= SZ_2M) return;
          for (const dev of event.devices) {
            ctx.iommu.cut(dev, event.gpa, event.len, SZ_4K);
            ctx.iommu.unmap(dev, event.gpa, event.len);
            // Bug skip-invalidate-on-private: on a conversion to private the driver's iotlb_sync
            // frees what the unmap detached without INVALIDATE_IOMMU_PAGES; VFIO, believing the
            // flush done, unpins the discarded shared frames, which go back to the host.
            if (on('skip-invalidate-on-private') && event.shared) drainWithoutInvalidation(ctx, dev);
            // Bug unpin-before-flush: the unmap path releases the pins at once and leaves the
            // IOTLB flush to the host's flush point (host_sync), as a gathering driver does.
            else if (on('unpin-before-flush')) ctx.iommu.releasePins(dev);
            else ctx.iommu.flush(dev);
          }
          return;
        case 'smash':
          // Bug smash-keeps-s2-2m: the IO leaf is never cut to follow a PSMASH.
          if (on('smash-keeps-s2-2m')) return;
          // Bug smash-no-cut-above-1g: the cut is skipped above 1G (a 32-bit GFN-range bug).
          if (on('smash-no-cut-above-1g') && event.gpa >= SZ_1G) return;
          // Bug no-cut-before-first-sync: the cut path is only armed by the first flush.
          if (on('no-cut-before-first-sync') && !state.synced) return;
          followRmpIo(ctx, event);
          return;
        case 'attach':
          // Bug greedy-mirror-after-conversions: once the VM has made four small conversions to
          // shared, the rebuild on attach maps private memory greedily (2M wherever aligned)
          // instead of following the RMP.
          ctx.iommu.mirror(event.dev, { followRmp: !(on('greedy-mirror-after-conversions') && state.smallShares >= 4) });
          return;
      }
    },
  };
}
