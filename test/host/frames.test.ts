// The host frame lifecycle (src/host/frames.ts) in QEMU's default world: VMM RAM frames back their
// GPA until the first conversion to private, shares fault in new frames, VFIO pins what it maps
// and releases the pins after the IOTLB flush, and a frame nothing backs or pins is free (and is
// handed out again, oldest first).

import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { VMM_RAM_BASE } from '../../src/host/backing.ts';
import { HostFrames } from '../../src/host/frames.ts';
import { Machine } from '../../src/model/machine.ts';
import { defineHostPolicy } from '../../src/policies/types.ts';
import brokenLazyFlush from '../../corpus/policies/broken-lazy-flush.ts';
import brokenUnpinBeforeFlush from '../../corpus/policies/broken-unpin-before-flush.ts';
import { runCase } from '../../src/engine/run.ts';
import { GMEM_BASE } from '../../src/model/layout.ts';
import { FRAMES_PER_2M } from '../../src/model/size.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import { generateCase } from '../../src/ops/generate.ts';
import { guestPolicies, hostPolicies } from '../../src/policies/index.ts';
import { frameOf, makeWorld, run } from '../helpers/world.ts';

const GPA = 0x401000;
const M = 1024 * 1024;

/** A machine with one device of 4K IO pages, its host frames following its calls, and the RAM block's frame of GPA 4M. */
function oneDevice(): { machine: Machine; frames: HostFrames; ram: number } {
  const machine = new Machine({ asid: 1, vtom: 64 * M, devices: [{ id: 0, trusted: false, iommu: 's2', ioPageSizes: [4096] }] });
  const frames = new HostFrames(machine, 64 * M);
  machine.recorder.observer = frames;
  return { machine, frames, ram: VMM_RAM_BASE + 4 * M };
}
const share = { op: 'share', gpa: GPA, pages: 1 } as const;
const unshare = { op: 'unshare', gpa: GPA, pages: 1 } as const;

describe('host frames', () => {
  it('a VMM RAM frame backs its GPA until the first conversion to private discards it', () => {
    const world = makeWorld({ hostPolicy: 'kvm-4k', guestPolicy: 'linux' });
    const ram = VMM_RAM_BASE + 0x3000000;
    expect(world.host.frame(ram)).toEqual({ state: 'backing', kind: 'vmm', gpa: 0x3000000 });
    run(world, [{ op: 'accept', gpa: 0x3000000, size: '4K' }]);
    expect(world.host.frame(ram)).toEqual({ state: 'free', kind: 'vmm' });
    // guest_memfd frames stay the guest's; host memory outside both never was.
    expect(world.host.frame(2 ** 46 + 0x3000000)).toEqual({ state: 'backing', kind: 'gmem', gpa: 0x3000000 });
    expect(world.host.frame(0x1000)).toEqual({ state: 'free', kind: 'host' });
  });

  it('a static IO map pins the RAM block: a discarded frame stays pinned, not free (QEMU 852f0048f3)', () => {
    const world = makeWorld({ hostPolicy: 'vfio-static', guestPolicy: 'linux' });
    run(world, [{ op: 'accept', gpa: 0x3000000, size: '4K' }]);
    expect(world.host.frame(VMM_RAM_BASE + 0x3000000)).toEqual({ state: 'pinned', kind: 'vmm' });
  });

  it('a shared frame is freed after the unmap and its flush, and handed out again oldest first', () => {
    const world = makeWorld({ hostPolicy: 'kvm-4k', guestPolicy: 'linux' });
    run(world, [share]);
    const first = frameOf(world, GPA);
    expect(world.host.frame(first)).toEqual({ state: 'backing', kind: 'vmm', gpa: GPA });
    // Reused: a RAM block frame that acceptance discarded (fresh frames come from above the block).
    expect(first).toBeLessThan(VMM_RAM_BASE + 2 ** 30);
    run(world, [unshare], 1);
    expect(world.host.frame(first)).toEqual({ state: 'free', kind: 'vmm' });
    run(world, [share], 2);
    // The pool already held older frames (the RAM frames acceptance discarded): not the same one.
    expect(frameOf(world, GPA)).not.toBe(first);
    expect(world.host.frame(frameOf(world, GPA)).state).toBe('backing');
  });

  it('VFIO releases the pins only at the flush; a host that releases them earlier frees the frame at once', () => {
    const lazy = makeWorld({ guestPolicy: 'linux' }, { host: brokenLazyFlush });
    run(lazy, [share]);
    const frame = frameOf(lazy, GPA);
    run(lazy, [unshare], 1);
    expect(lazy.host.frame(frame)).toEqual({ state: 'pinned', kind: 'vmm' });
    const flushing = defineHostPolicy({ ...brokenLazyFlush, name: 'lazy-then-flush', flush: undefined });
    const world = makeWorld({ guestPolicy: 'linux' }, { host: flushing });
    run(world, [share]);
    const pinned = frameOf(world, GPA);
    run(world, [unshare], 1);
    expect(world.host.frame(pinned).state).toBe('pinned');
    run(world, [{ op: 'host_sync' }], 2);
    expect(world.host.frame(pinned).state).toBe('free');
    const early = makeWorld({ guestPolicy: 'linux' }, { host: brokenUnpinBeforeFlush });
    run(early, [share]);
    const freed = frameOf(early, GPA);
    run(early, [unshare], 1);
    expect(early.host.frame(freed).state).toBe('free');
  });

  it('a 2M range is pinned, discarded and released as a range, and returns to the pool in order', () => {
    const { machine, frames, ram } = oneDevice();
    // 512 4K leaves over the RAM block's frames: each frame is pinned once.
    expect(machine.ioMap(0, 4 * M, ram, 2 * M)).toEqual({ mapped: 2 * M });
    frames.discardRam(4 * M, 2 * M);
    expect(frames.frame(ram + 5 * 4096)).toEqual({ state: 'pinned', kind: 'vmm' });
    // The second half is unmapped: its pins wait for the flush, then its frames are free.
    machine.ioUnmap(0, 5 * M, M);
    expect(frames.frame(ram + M).state).toBe('pinned');
    machine.iommuFlush(0);
    expect(frames.frame(ram + M)).toEqual({ state: 'free', kind: 'vmm' });
    expect(frames.frame(ram + 2 * M - 4096).state).toBe('free');
    expect(frames.frame(ram + M - 4096).state).toBe('pinned');
    // Oldest first: the frames freed by the flush, then one discarded later.
    frames.discardRam(0, 4096);
    frames.discardRam(8 * M, 2 * 4096);
    expect(frames.sharedFrameFor(8 * M / 4096)).toBe(ram + M);
    expect(frames.sharedFrameFor(8 * M / 4096 + 1)).toBe(ram + M + 4096);
    expect(frames.frame(ram + M)).toEqual({ state: 'backing', kind: 'vmm', gpa: 8 * M });
    // Mapping an already free frame does not pin it (it is not the guest's any more).
    expect(machine.ioMap(0, 5 * M, ram + M, M)).toEqual({ mapped: M });
    expect(frames.frame(ram + M + 2 * 4096).state).toBe('free');
    expect(frames.frame(ram + M).state).toBe('backing');
  });

  // A run of 4K unmaps (Iommu.unmapLeaves()) queues its unpins as one stretch: in address order,
  // as leaf by leaf, even where the pins were taken in another order. The flush frees them in
  // that order, and the pool hands them out so.
  it('a run of 4K unmaps over pins taken high then low frees its frames low first, as leaf by leaf', () => {
    const { machine, frames, ram } = oneDevice();
    expect(machine.ioMap(0, 4 * M + 2 * 4096, ram + 2 * 4096, 2 * 4096)).toEqual({ mapped: 2 * 4096 });
    expect(machine.ioMap(0, 4 * M, ram, 2 * 4096)).toEqual({ mapped: 2 * 4096 });
    frames.discardRam(4 * M, 4 * 4096);
    // The four leaves unmapped as the host's run of calls reports them (the S2 itself unmapped
    // with the observer away, so that the frames hear the run, not four single calls).
    machine.recorder.observer = undefined;
    machine.ioUnmap(0, 4 * M, 4 * 4096);
    machine.recorder.observer = frames;
    frames.observeRun({ prim: 'io_unmap', args: { dev: 0, gpa: 4 * M, len: 4096 }, result: 4096, count: 4, strided: ['gpa'], stride: 4096 });
    expect(frames.frame(ram).state).toBe('pinned');
    machine.iommuFlush(0);
    // Shares at 8M whose own RAM frames are gone take frames from the pool, oldest first.
    frames.discardRam(8 * M, 4 * 4096);
    const handedOut = [0, 1, 2, 3].map((i) => frames.sharedFrameFor(8 * M / 4096 + i));
    expect(handedOut).toEqual([ram, ram + 4096, ram + 2 * 4096, ram + 3 * 4096]);
  });

  // VFIO pins an IOVA twice when a map finds the same output already there: two pin runs over one
  // leaf. Released leaf by leaf, the pins of a frame go together; a run of unmaps must free the
  // frames in that order too (found by a review: one stretch per pin run freed 0, 3, 1, 2).
  it('a run of 4K unmaps over pins taken twice frees its frames as leaf by leaf does', () => {
    const handOut = (asRun: boolean): number[] => {
      const { machine, frames, ram } = oneDevice();
      expect(machine.ioMap(0, 4 * M, ram, 4 * 4096)).toEqual({ mapped: 4 * 4096 });
      // The same output again over the middle two pages: the map fails, its leaves are pinned again.
      expect(machine.ioMap(0, 4 * M + 4096, ram + 4096, 2 * 4096).mapped).toBe(0);
      frames.discardRam(4 * M, 4 * 4096);
      machine.recorder.observer = undefined;
      machine.ioUnmap(0, 4 * M, 4 * 4096);
      machine.recorder.observer = frames;
      if (asRun) frames.observeRun({ prim: 'io_unmap', args: { dev: 0, gpa: 4 * M, len: 4096 }, result: 4096, count: 4, strided: ['gpa'], stride: 4096 });
      else for (let i = 0; i < 4; i++) frames.observe({ prim: 'io_unmap', args: { dev: 0, gpa: 4 * M + i * 4096, len: 4096 }, result: 4096 });
      machine.iommuFlush(0);
      frames.discardRam(8 * M, 4 * 4096);
      return [0, 1, 2, 3].map((i) => (frames.sharedFrameFor(8 * M / 4096 + i) - ram) / 4096);
    };
    expect(handOut(false)).toEqual([0, 1, 2, 3]);
    expect(handOut(true)).toEqual([0, 1, 2, 3]);
  });

  // The pin counts are runs of frames with one count (HostFrames.pinCount): checked against a
  // count per frame through maps that overlap in their frames (each frame pinned up to three
  // times, the runs cut at odd places), unmaps of random IOVA stretches and flushes. The RAM is
  // discarded after the maps, so a frame is pinned while any count is left, else free, and back
  // in the host's pool.
  it('counts the pins of each frame as a per-frame count would, through overlapping maps, partial unmaps and flushes', () => {
    for (let seed = 0; seed < 30; seed++) {
      const random = seedrandom(`pin-runs/${seed}`);
      const { machine, frames, ram } = oneDevice();
      const span = 1536; // frames over three 2M chunks
      const count = new Array<number>(span).fill(0);
      /** IOVA page -> the frame it maps (-1: none); unmapped pages wait in `pending` for the flush. */
      const mapped = new Map<number, number>();
      let pending: number[] = [];
      for (let m = 0, iova = 0; m < 6; m++) {
        const first = Math.floor(random() * span);
        const pages = 1 + Math.floor(random() * Math.min(700, span - first));
        expect(machine.ioMap(0, 64 * M + iova * 4096, ram + first * 4096, pages * 4096)).toEqual({ mapped: pages * 4096 });
        for (let i = 0; i < pages; i++) {
          mapped.set(iova + i, first + i);
          count[first + i]!++;
        }
        iova += pages + 1 + Math.floor(random() * 3);
      }
      frames.discardRam(4 * M, span * 4096);
      const iovas = [...mapped.keys()];
      const expectStates = (): void => {
        const states = count.map((_, i) => frames.frame(ram + i * 4096).state);
        expect(states).toEqual(count.map((c) => (c > 0 ? 'pinned' : 'free')));
      };
      expectStates();
      for (let round = 0; round < 8; round++) {
        const from = iovas[Math.floor(random() * iovas.length)]!;
        const pages = 1 + Math.floor(random() * 400);
        machine.ioUnmap(0, 64 * M + from * 4096, pages * 4096);
        for (let i = from; i < from + pages; i++) {
          const frame = mapped.get(i);
          if (frame === undefined) continue;
          mapped.delete(i);
          pending.push(frame);
        }
        if (random() < 0.6) {
          machine.iommuFlush(0);
          for (const frame of pending) count[frame]!--;
          pending = [];
        }
        expectStates();
      }
      // Every frame left free went back to the pool (releaseRange walks the counts chunk by
      // chunk): shares of as many pages take exactly those frames before any other.
      const free = new Set(count.flatMap((c, i) => (c === 0 ? [ram + i * 4096] : [])));
      frames.discardRam(16 * M, free.size * 4096);
      const handedOut = new Set(Array.from({ length: free.size }, (_, i) => frames.sharedFrameFor(16 * M / 4096 + i)));
      expect(handedOut).toEqual(free);
    }
  });

  // The host's frames are kept as runs (handed-out frames, discarded RAM, pins), and the free pool
  // walks ownership run by run (sameOwnershipEnd(): which frames a release queues, which queued
  // frames a hand-out skips or takes together). Checked through random discards, hand-outs one by
  // one and a stretch at a time, discards of shared frames and pins: after every step each frame's
  // frame() against a model of what backs it, and the ownership walk from many frames against
  // frame() frame by frame.
  it('walks frame ownership as frame() answers it frame by frame, through discards, hand-outs and pins', () => {
    const VMM_PFN = VMM_RAM_BASE / 4096;
    const RAM_PAGES = (64 * M) / 4096;
    for (let seed = 0; seed < 15; seed++) {
      const random = seedrandom(`ownership/${seed}`);
      const pick = (n: number): number => Math.floor(random() * n);
      const { machine, frames } = oneDevice();
      const walk = frames as unknown as { sameOwnershipEnd(pfn: number, end: number, owned: boolean): number };
      /** RAM block gfns discarded; frames handed out since start -> the gfn each backs. */
      const discarded = new Set<number>();
      const handed = new Map<number, number>();
      const mapped: { iova: number; pfn: number; pages: number }[] = [];
      let nextIova = (256 * M) / 4096;
      /** What the model says of a frame: it backs a gfn (handed out, or a RAM frame not discarded). */
      const backs = (pfn: number): boolean => handed.has(pfn) || (pfn >= VMM_PFN && pfn < VMM_PFN + RAM_PAGES && !discarded.has(pfn - VMM_PFN));
      /** Frames the model knows of: the first 3 RAM regions and the first fresh frames handed out. */
      const known = (): number[] => [...Array.from({ length: 3 * FRAMES_PER_2M }, (_, i) => VMM_PFN + i), ...handed.keys()];
      const takeFrame = (pfn: number, gfn: number): void => {
        if (pfn !== VMM_PFN + gfn || discarded.has(gfn)) handed.set(pfn, gfn);
      };
      for (let step = 0; step < 40; step++) {
        const kind = pick(6);
        const gfn = pick(3 * FRAMES_PER_2M);
        const pages = 1 + pick(random() < 0.5 ? 8 : 600);
        if (kind === 0) {
          frames.discardRam(gfn * 4096, pages * 4096);
          for (let g = gfn; g < Math.min(RAM_PAGES, gfn + pages); g++) discarded.add(g);
        } else if (kind === 1) {
          // Pages of a region at 32M on: their own RAM frames, or frames of the pool once discarded.
          const g = (32 * M) / 4096 + pick(FRAMES_PER_2M);
          const count = Math.min(1 + pick(40), FRAMES_PER_2M - (g % FRAMES_PER_2M));
          const n = frames.sharedFrameRun(g, count);
          for (let i = 0; i < n; i++) takeFrame(frames.sharedRunHpa / 4096 + i, g + i);
        } else if (kind === 2) {
          const g = (40 * M) / 4096 + pick(FRAMES_PER_2M);
          takeFrame(frames.sharedFrameFor(g) / 4096, g);
        } else if (kind === 3) {
          // Discard shared frames: a stretch of handed-out frames, or of RAM frames.
          const from = handed.size > 0 && random() < 0.5 ? [...handed.keys()][pick(handed.size)]! : VMM_PFN + gfn;
          const n = 1 + pick(300);
          frames.discardSharedRange(from * 4096, n);
          for (let pfn = from; pfn < from + n; pfn++) {
            if (handed.has(pfn)) handed.delete(pfn);
            else if (pfn >= VMM_PFN && pfn < VMM_PFN + RAM_PAGES) discarded.add(pfn - VMM_PFN);
          }
        } else if (kind === 4) {
          const pfn = VMM_PFN + gfn;
          expect(machine.ioMap(0, nextIova * 4096, pfn * 4096, pages * 4096)).toEqual({ mapped: pages * 4096 });
          mapped.push({ iova: nextIova, pfn, pages });
          nextIova += pages + 1;
        } else if (mapped.length > 0) {
          const { iova, pages: n } = mapped.splice(pick(mapped.length), 1)[0]!;
          machine.ioUnmap(0, iova * 4096, n * 4096);
          machine.iommuFlush(0);
        }
        const frameList = known();
        for (const pfn of frameList) {
          const state = frames.frame(pfn * 4096).state;
          if (backs(pfn) !== (state === 'backing')) expect([step, kind, pfn, state]).toEqual([step, kind, pfn, backs(pfn) ? 'backing' : 'pinned or free']);
        }
        // The walk from frames across the RAM regions' boundaries, limits that cut runs short.
        for (let probe = 0; probe < 40; probe++) {
          const pfn = VMM_PFN + pick(3 * FRAMES_PER_2M - 1);
          const end = Math.min(VMM_PFN + 3 * FRAMES_PER_2M, pfn + 1 + pick(900));
          const owned = frames.frame(pfn * 4096).state !== 'free';
          let expected = pfn + 1;
          while (expected < end && (frames.frame(expected * 4096).state !== 'free') === owned) expected++;
          if (walk.sameOwnershipEnd(pfn, end, owned) !== expected) expect([step, pfn, end, owned, walk.sameOwnershipEnd(pfn, end, owned)]).toEqual([step, pfn, end, owned, expected]);
        }
      }
    }
  });

  // backsRun() answers for a stretch of frames what backsPage() answers frame by frame (the DMA
  // path's stray-frame check asks it of whole pieces). Probed after every step of generated cases
  // in every discard world, over the frames each DMA piece reached (with the GPA it reached them
  // through, and a GPA one page off) and stretches across the guest_memfd, RAM block and fresh
  // frames' boundaries.
  it('backsRun() agrees with backsPage() frame by frame', () => {
    const perFrame = (frames: HostFrames, pfn: number, gfn: number, count: number): number => {
      let n = 0;
      while (n < count && frames.backsPage((pfn + n) * 4096, (gfn + n) * 4096)) n++;
      return n;
    };
    let probes = 0;
    let partial = 0;
    for (const [host, guest] of [['kvm-iommu-4k', 'linux'], ['cut-on-convert', 'linux-2m-pool'], ['quiesce-dma', 'linux-2m-pool']] as const) {
      for (const discard of ['on-private', 'none', 'in-place'] as const) {
        const config = defaultConfig({ hostPolicy: host, guestPolicy: guest, discard, guestMemory: '16M', swiotlb: '4M' });
        for (let i = 0; i < 4; i++) {
          const testCase = generateCase(config, `backs-run/${host}/${discard}/${i}`, { steps: 40 });
          const probe = (frames: HostFrames, pfn: number, gfn: number, count: number): void => {
            const expected = perFrame(frames, pfn, gfn, count);
            expect(frames.backsRun(pfn, gfn, count), `pfn ${pfn} gfn ${gfn} count ${count}`).toBe(expected);
            probes++;
            if (expected > 0 && expected < count) partial++;
          };
          runCase(testCase, { host: hostPolicies[host]!, guest: guestPolicies[guest]! }, {
            oracles: [],
            onStep: (step, view) => {
              // The engine's own world: its host's frames (what world.ts strayFrames() asks).
              const frames = (view as unknown as { hostActor: { frames: HostFrames } }).hostActor.frames;
              for (const dma of step.dmas) {
                for (const piece of dma.result.pieces) {
                  const pfn = Math.floor(piece.hpa / 4096);
                  const pages = Math.ceil((piece.hpa + piece.len) / 4096) - pfn;
                  probe(frames, pfn, Math.floor(piece.gpa / 4096), pages + 3);
                  probe(frames, pfn, Math.floor(piece.gpa / 4096) + 1, pages);
                }
              }
              const gmem = GMEM_BASE / 4096;
              const vmm = VMM_RAM_BASE / 4096;
              const guestPages = (16 * M) / 4096;
              probe(frames, gmem + guestPages - 700, guestPages - 700, 1400);
              probe(frames, gmem - 5, -5, 20);
              probe(frames, vmm, 0, guestPages + 600);
              probe(frames, vmm + 3, 3, 1500);
              // Frames handed out past the RAM block, against the GPAs of the pages they back.
              for (let gfn = 0; gfn < guestPages; gfn += 37) {
                const backing = view.host.backing(gfn * 4096);
                if (backing !== undefined) probe(frames, Math.floor(backing.hpa / 4096), gfn, 700);
              }
            },
          });
        }
      }
    }
    // The probes reached stretches that stop part way, not only all-or-nothing ones.
    expect(partial).toBeGreaterThan(50);
    expect(probes).toBeGreaterThan(1000);
  });
});
