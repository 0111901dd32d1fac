// The three discard worlds of config.discard (src/host/frames.ts, DOMAIN.md "QEMU's memory"):
// which frame backs a GPA after share, unshare and share again, and what that does to a static
// VFIO map (npt-iommu-coherence) and to a host that unpins before the flush (dma-after-free).

import { describe, expect, it } from 'vitest';
import { GMEM_BASE, VMM_RAM_BASE } from '../../src/host/backing.ts';
import { HostFrames } from '../../src/host/frames.ts';
import { Machine } from '../../src/model/machine.ts';
import type { Op } from '../../src/ops/types.ts';
import brokenUnpinBeforeFlush from '../../corpus/policies/broken-unpin-before-flush.ts';
import { frameOf, makeWorld, run, SZ_2M } from '../helpers/world.ts';
import { oracleNamed, runSpec, verdictOf } from '../oracles/cases.ts';

/** Not accepted at boot by the linux guest, which accepts it (a PSC to private) before it shares it. */
const GPA = 0x401000;
const ACCEPTED = 0x3000000;
const share = (gpa: number, pages = 1): Op => ({ op: 'share', gpa, pages });
const unshare = (gpa: number, pages = 1): Op => ({ op: 'unshare', gpa, pages });

/** A fresh frame lifecycle of a 64M guest, outside any world (the frame choice alone). */
const framesOf = (discard: 'on-private' | 'none' | 'in-place') =>
  new HostFrames(new Machine({ asid: 1, vtom: 64 * 1024 * 1024, devices: [] }), 64 * 1024 * 1024, discard);

/** The frames backing `gpa` after share, unshare, share again; and the first frame's state after the unshare. */
function roundTrip(discard: string, gpa: number, before: Op[] = []) {
  const world = makeWorld({ hostPolicy: 'kvm-iommu-4k', guestPolicy: 'linux', discard });
  run(world, [...before, share(gpa)]);
  const first = frameOf(world, gpa);
  run(world, [unshare(gpa), { op: 'host_sync' }], before.length + 1);
  const afterUnshare = world.host.frame(first);
  run(world, [share(gpa)], before.length + 3);
  return { first, afterUnshare, second: frameOf(world, gpa), world };
}

describe('discard worlds: the frame that backs a shared GPA', () => {
  it('"on-private": the RAM frame until the first conversion to private, a new frame after', () => {
    // The frame choice itself: a GPA never converted to private keeps its RAM frame.
    const frames = framesOf('on-private');
    const gfn = ACCEPTED / 4096;
    expect(frames.sharedFrameFor(gfn)).toBe(VMM_RAM_BASE + ACCEPTED);
    frames.discardRam(0x2000000, 4096);
    frames.discardRam(ACCEPTED, 4096);
    expect(frames.frame(VMM_RAM_BASE + ACCEPTED).state).toBe('free');
    // A new frame, from the free pool oldest first.
    expect(frames.sharedFrameFor(gfn)).toBe(VMM_RAM_BASE + 0x2000000);
    // Hugetlb RAM is never discarded; in place, the guest_memfd frame is the shared frame.
    const hugetlb = framesOf('none');
    hugetlb.discardRam(ACCEPTED, 4096);
    expect(hugetlb.sharedFrameFor(gfn)).toBe(VMM_RAM_BASE + ACCEPTED);
    expect(framesOf('in-place').sharedFrameFor(gfn)).toBe(GMEM_BASE + ACCEPTED);
    // Linux accepts memory (a PSC to private, snp_accept_memory()) before it shares it, so even
    // its first share gets a new frame, and so does every later one.
    const trip = roundTrip('on-private', GPA);
    expect(trip.first).not.toBe(VMM_RAM_BASE + GPA);
    expect(trip.afterUnshare).toEqual({ state: 'free', kind: 'vmm' });
    expect(trip.second).not.toBe(trip.first);
    expect(trip.world.host.frame(VMM_RAM_BASE + GPA).state).not.toBe('backing');
  });

  it('"none" (hugetlb RAM, never discarded): always the RAM frame, which stays the VMM\'s while private', () => {
    for (const [gpa, before] of [
      [GPA, []],
      [ACCEPTED, [{ op: 'accept', gpa: ACCEPTED, size: '4K' } as Op]],
    ] as const) {
      const trip = roundTrip('none', gpa, [...before]);
      expect(trip.first).toBe(VMM_RAM_BASE + gpa);
      expect(trip.afterUnshare).toEqual({ state: 'backing', kind: 'vmm', gpa });
      expect(trip.second).toBe(trip.first);
    }
  });

  it('"in-place": always the guest_memfd frame, in both states; there is no RAM block', () => {
    const trip = roundTrip('in-place', GPA);
    expect(trip.first).toBe(GMEM_BASE + GPA);
    expect(trip.afterUnshare).toEqual({ state: 'backing', kind: 'gmem', gpa: GPA });
    expect(trip.second).toBe(trip.first);
    expect(trip.world.host.frame(VMM_RAM_BASE + GPA).state).toBe('free');
    // Only the RMP state of the frame changes.
    expect(trip.world.rmp.entry((GMEM_BASE + GPA) / 4096).assigned).toBe(false);
  });

  it('a whole 2M region is shared as one run of its world\'s frames; a partly discarded one page by page', () => {
    const region = 0x2400000;
    const chunkOf = (discard: string) => {
      const world = makeWorld({ hostPolicy: 'kvm-4k', guestPolicy: 'linux', discard });
      run(world, [share(region, 512)]);
      return { base: frameOf(world, region), last: frameOf(world, region + SZ_2M - 4096) };
    };
    // Linux accepted the region first: a new 2M run (a THP fault), contiguous.
    const onPrivate = chunkOf('on-private');
    expect(onPrivate.base).not.toBe(VMM_RAM_BASE + region);
    expect(onPrivate.base % SZ_2M).toBe(0);
    expect(onPrivate.last - onPrivate.base).toBe(SZ_2M - 4096);
    expect(chunkOf('none').base).toBe(VMM_RAM_BASE + region);
    expect(chunkOf('in-place').base).toBe(GMEM_BASE + region);
    // A region never converted is its RAM block range; one only partly discarded has no single run.
    const frames = framesOf('on-private');
    expect(frames.sharedChunkFor(region / SZ_2M)).toBe(VMM_RAM_BASE + region);
    frames.discardRam(region, 4096);
    expect(frames.sharedChunkFor(region / SZ_2M)).toBeUndefined();
  });
});

describe('discard worlds: what a host policy sees', () => {
  const stale: Op[] = [
    { op: 'alloc_coherent', dev: 1, bytes: 4096 },
    { op: 'touch', gpa: 0x160000, write: true },
    { op: 'dma', dev: 1, buf: 0, len: 4096, write: false },
  ];
  const oracles = ['npt-iommu-coherence', 'dma-after-free', 'dma-liveness'].map(oracleNamed);
  const vfioStatic = (discard: string) => runSpec({ host: 'vfio-static', guest: 'linux', ops: stale, config: { discard } }, oracles, { allViolations: true });

  it('vfio-static goes stale only where QEMU discards: "on-private"; the discarded frames stay pinned, never freed', () => {
    const result = vfioStatic('on-private');
    const fired = new Set(result.violations.map((v) => v.oracle));
    expect(fired.has('npt-iommu-coherence')).toBe(true);
    expect(fired.has('dma-after-free')).toBe(false);
  });

  it('vfio-static stays coherent with hugetlb RAM ("none")', () => {
    expect(verdictOf(vfioStatic('none'))).toBe('clean');
  });

  it('vfio-static over guest_memfd ("in-place"): coherent, but its 2M IO leaf over private 4K pages fails the RMP check', () => {
    const result = vfioStatic('in-place');
    expect(result.violations.map((v) => v.oracle)).toEqual(['dma-liveness']);
    expect(result.violations[0]?.message).toContain('io 2M over assigned 4K');
  });

  it('unpinning before the flush is a DMA use-after-free only where the unshare frees the frame ("on-private")', () => {
    const ops: Op[] = [share(GPA), { op: 'dma', dev: 1, iova: GPA, len: 4096, write: true }, unshare(GPA), { op: 'dma', dev: 1, iova: GPA, len: 4096, write: true }];
    const verdict = (discard: string) =>
      verdictOf(runSpec({ host: brokenUnpinBeforeFlush, guest: 'linux', ops, config: { discard } }, [oracleNamed('dma-after-free')]));
    expect(verdict('on-private')).toBe('violation at step 3: dma-after-free');
    expect(verdict('none')).toBe('clean');
    expect(verdict('in-place')).toBe('clean');
  });
});
