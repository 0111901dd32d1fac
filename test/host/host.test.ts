// The host actor: KVM's private faults (2M RMP only over a 2M folio with a wholly unassigned
// range; NPT at min(fault level, folio, RMP)), SIZEM handling, PSC handling with new shared
// frames, host_split, the flush point, the IO S2 views, and the world's policy-error and
// determinism guarantees.

import { describe, expect, it } from 'vitest';
import type { Op } from '../../src/ops/types.ts';
import { GMEM_BASE, VMM_RAM_BASE } from '../../src/host/backing.ts';
import { STEP_BUDGET } from '../../src/engine/call-budget.ts';
import { PolicyError } from '../../src/engine/world.ts';
import { defineHostPolicy } from '../../src/policies/types.ts';
import { SZ_2M, SZ_4K, countPrims, frameOf, makeWorld, prims, run } from '../helpers/world.ts';

const REGION = 4 * SZ_2M;

describe('private faults', () => {
  it('builds a 2M RMP entry and a 2M NPT leaf over a 2M folio', () => {
    const world = makeWorld({ hugeBacking: true });
    world.apply({ op: 'accept', gpa: REGION, size: '2M' }, 0);
    expect(world.host.backing(REGION)).toEqual({ hpa: GMEM_BASE + REGION, shared: false, folioSize: '2M' });
    expect(world.rmp.entry((GMEM_BASE + REGION) / SZ_4K).size).toBe('2M');
    expect(world.npt.leafAt(REGION)).toEqual({ iova: REGION, pa: GMEM_BASE + REGION, size: SZ_2M });
  });

  it('builds 4K entries without huge backing', () => {
    const world = makeWorld({ hugeBacking: false });
    world.apply({ op: 'accept', gpa: REGION, size: '2M' }, 0);
    expect(world.host.backing(REGION)?.folioSize).toBe('4K');
    expect(world.rmp.entry((GMEM_BASE + REGION) / SZ_4K).size).toBe('4K');
    expect(world.npt.leafAt(REGION)?.size).toBe(SZ_4K);
  });

  it('maps the NPT at 4K once the 2M range holds a shared page (mixed attributes)', () => {
    const world = makeWorld();
    run(world, [
      { op: 'share', gpa: REGION, pages: 1 },
      { op: 'touch', gpa: REGION + 8 * SZ_4K, write: false },
    ]);
    expect(world.npt.leafAt(REGION + 8 * SZ_4K)?.size).toBe(SZ_4K);
    expect(world.rmp.entry((GMEM_BASE + REGION + 8 * SZ_4K) / SZ_4K).size).toBe('4K');
  });
});

describe('page-state changes', () => {
  it('converts to shared with a new VMM frame, mapped in the shared view, and back', () => {
    const world = makeWorld();
    const step = world.apply({ op: 'share', gpa: REGION, pages: 1 }, 0);
    const shared = frameOf(world, REGION);
    expect(shared).toBeGreaterThan(VMM_RAM_BASE);
    // The untrusted device sees the new frame at once; the NPT gets it on the first access.
    expect(world.devices[1]!.s2.iovaToPhys(REGION)).toBe(shared);
    expect(prims(step)).toContain('io_map');
    world.apply({ op: 'touch', gpa: REGION, write: true }, 1);
    expect(world.npt.iovaToPhys(REGION)).toBe(shared);
    const back = world.apply({ op: 'unshare', gpa: REGION, pages: 1 }, 2);
    expect(world.devices[1]!.s2.iovaToPhys(REGION)).toBeUndefined();
    expect(prims(back)).toEqual(expect.arrayContaining(['io_unmap', 'iommu_flush']));
    expect(world.npt.iovaToPhys(REGION)).toBe(GMEM_BASE + REGION);
  });

  it('host_split splits the folio, PSMASHes (Validated kept) and splits the NPT leaf', () => {
    const world = makeWorld();
    world.apply({ op: 'accept', gpa: REGION, size: '2M' }, 0);
    const step = world.apply({ op: 'host_split', gpa: REGION + 5 * SZ_4K }, 1);
    expect(prims(step)).toEqual(['psmash', 'npt_split']);
    expect(world.host.backing(REGION)?.folioSize).toBe('4K');
    expect(world.rmp.entry((GMEM_BASE + REGION + 7 * SZ_4K) / SZ_4K)).toMatchObject({ size: '4K', validated: true });
    expect(world.npt.leafAt(REGION)?.size).toBe(SZ_4K);
    expect(world.apply({ op: 'touch', gpa: REGION + 7 * SZ_4K, write: true }, 2).guestErrors).toBeUndefined();
    expect(world.apply({ op: 'host_split', gpa: 2 ** 40 }, 3).skipped).toMatch(/beyond/);
  });

  it('host_sync flushes every device', () => {
    const lazy = defineHostPolicy({
      name: 'lazy-flush',
      description: 'unmaps without flushing',
      io(ctx, event) {
        if (event.kind !== 'unmap') return ctx.iommu.defaultIo(event);
        for (const dev of event.devices) ctx.machine.ioUnmap(dev, event.gpa, event.len);
      },
    });
    const world = makeWorld({}, { host: lazy });
    run(world, [{ op: 'share', gpa: REGION, pages: 1 }, { op: 'unshare', gpa: REGION, pages: 1 }]);
    expect(world.host.flushPending).toBe(true);
    const sync = world.apply({ op: 'host_sync' }, 2);
    expect(countPrims(sync, 'iommu_flush')).toBe(world.devices.length);
    expect(world.host.flushPending).toBe(false);
  });
});

describe('IO S2 views', () => {
  it('shows shared memory to untrusted devices and private memory to a trusted device in RUN', () => {
    const world = makeWorld({ hostPolicy: 'cut-on-convert' });
    const pool = world.guest.swiotlb.base;
    for (const device of world.devices) expect(device.s2.iovaToPhys(pool)).toBe(frameOf(world, pool));
    world.apply({ op: 'accept', gpa: REGION, size: '2M' }, 0);
    expect(world.devices[0]!.s2.iovaToPhys(REGION)).toBeUndefined();
    world.apply({ op: 'tdi_accept', dev: 0 }, 1);
    expect(world.devices[0]!.s2.leafAt(REGION)).toEqual({ iova: REGION, pa: GMEM_BASE + REGION, size: SZ_2M });
    expect(world.devices[0]!.s2.iovaToPhys(pool)).toBeUndefined();
    expect(world.devices[1]!.s2.iovaToPhys(pool)).toBe(frameOf(world, pool));
  });

  it('cut-on-convert cuts the IO leaf to 4K when a page of the 2M range is shared', () => {
    const world = makeWorld({ hostPolicy: 'cut-on-convert' });
    run(world, [{ op: 'tdi_accept', dev: 0 }, { op: 'accept', gpa: REGION, size: '2M' }, { op: 'dma', dev: 0, iova: REGION + SZ_4K, len: 64, write: true }]);
    expect(world.devices[0]!.iotlb.lookup(REGION)?.size).toBe('2M');
    const share = world.apply({ op: 'share', gpa: REGION, pages: 1 }, 3);
    const order = prims(share).filter((p) => ['psmash', 'io_split', 'iommu_flush', 'rmpupdate'].includes(p));
    expect(order.slice(0, 3)).toEqual(['psmash', 'io_split', 'iommu_flush']);
    expect(world.devices[0]!.s2.leafAt(REGION + SZ_4K)?.size).toBe(SZ_4K);
    expect(world.devices[0]!.s2.iovaToPhys(REGION)).toBeUndefined();
    expect(world.devices[0]!.iotlb.lookup(REGION + SZ_4K)).toBeUndefined();
    expect(world.apply({ op: 'dma', dev: 0, iova: REGION + SZ_4K, len: 64, write: true }, 4).dmas[0]!.result.ok).toBe(true);
  });

  it('vfio-static maps all of guest memory once, at the largest size', () => {
    const world = makeWorld({ hostPolicy: 'vfio-static', guestMemory: '64M' });
    const leaves = [...world.devices[1]!.s2.leaves()];
    expect(leaves).toEqual([{ iova: 0, pa: VMM_RAM_BASE, size: 64 * 1024 * 1024 }]);
  });
});

describe('policy errors and the step budget', () => {
  it('wraps a hook that throws, naming the policy', () => {
    const broken = defineHostPolicy({
      name: 'broken',
      description: 'throws',
      privateFault() {
        throw new Error('boom');
      },
    });
    const world = makeWorld({}, { host: broken });
    expect(() => world.apply({ op: 'accept', gpa: REGION, size: '2M' }, 0)).toThrow(PolicyError);
    try {
      world.apply({ op: 'accept', gpa: REGION, size: '2M' }, 1);
    } catch (error) {
      expect(error).toBeInstanceOf(PolicyError);
      expect((error as PolicyError).policy).toBe('broken');
      expect((error as PolicyError).message).toMatch(/boom/);
    }
  });

  it('wraps invalid hardware arguments', () => {
    const sloppy = defineHostPolicy({
      name: 'sloppy',
      description: 'RMPUPDATE at an unaligned address',
      privateFault(ctx, fault) {
        ctx.machine.rmpUpdate(ctx.gmemFrame(fault.gpa) + 1, { assigned: true, asid: 1, gpa: fault.gpa, size: '4K' });
      },
    });
    const world = makeWorld({}, { host: sloppy });
    expect(() => world.apply({ op: 'touch', gpa: REGION, write: false }, 0)).toThrow(/policy sloppy: in hook host privateFault: rmpupdate: invalid hpa/);
  });

  it('ends a runaway hook with "step budget exceeded"', () => {
    const spinning = defineHostPolicy({
      name: 'spinning',
      description: 'never stops reading the RMP',
      privateFault(ctx, fault) {
        if (fault.gpa !== REGION) return ctx.kvm.defaultPrivateFault(fault);
        for (;;) ctx.machine.rmpRead(ctx.gmemFrame(fault.gpa));
      },
    });
    const world = makeWorld({}, { host: spinning });
    expect(() => world.apply({ op: 'touch', gpa: REGION, write: false }, 0)).toThrow(/step budget exceeded/);
    expect(STEP_BUDGET).toBeGreaterThan(10_000);
  });

  it('reports a failure at boot on the first op', () => {
    const world = makeWorld({}, { host: { name: 'bad-start', description: '', start: () => { throw new Error('no VFIO'); } } });
    expect(() => world.apply({ op: 'host_sync' }, 0)).toThrow(/policy bad-start: in hook host start: no VFIO/);
    expect(world.apply({ op: 'host_sync' }, 1).skipped).toBeUndefined();
  });

  it('reports IO page sizes the IOMMU cannot hold', () => {
    const world = makeWorld({}, { host: { name: 'odd-sizes', description: '', ioPageSizes: [12345] } });
    expect(() => world.apply({ op: 'host_sync' }, 0)).toThrow(/policy odd-sizes: ioPageSizes/);
  });
});

describe('the world', () => {
  const ops: Op[] = [
    { op: 'accept', gpa: REGION, size: '2M' },
    { op: 'alloc_coherent', dev: 1, bytes: 8192 },
    { op: 'map_single', dev: 1, bytes: 4096, dir: 'bidirectional' },
    { op: 'dma', dev: 1, map: 0, len: 4096, write: true },
    { op: 'share', gpa: REGION + SZ_4K, pages: 3 },
    { op: 'host_split', gpa: REGION },
    { op: 'unmap_single', map: 0 },
    { op: 'host_sync' },
  ];

  it('is deterministic: same config, seed and ops give the same steps', () => {
    const a = run(makeWorld({ hostPolicy: 'cut-on-convert' }, {}, 's'), ops);
    const b = run(makeWorld({ hostPolicy: 'cut-on-convert' }, {}, 's'), ops);
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
  });

  it('skips adversary ops unless the config enables them, and runs them raw when it does', () => {
    const op: Op = { op: 'hw_psmash', hpa: GMEM_BASE + REGION };
    const tame = makeWorld();
    tame.apply({ op: 'accept', gpa: REGION, size: '2M' }, 0);
    expect(tame.apply(op, 1).skipped).toMatch(/adversary/);
    const hostile = makeWorld({ adversary: 'host' });
    hostile.apply({ op: 'accept', gpa: REGION, size: '2M' }, 0);
    const step = hostile.apply(op, 1);
    expect(step.calls).toEqual([{ prim: 'psmash', args: { hpa: GMEM_BASE + REGION }, result: 0 }]);
    expect(hostile.apply({ op: 'hw_rmpupdate', hpa: 1, assigned: true, asid: 1, gpa: 0, size: '4K' }, 2).skipped).toMatch(/refused/);
  });

  it('resolves buf and map references modulo the live objects and marks legitimate DMAs', () => {
    const world = makeWorld();
    expect(world.apply({ op: 'dma', dev: 1, buf: 0, len: 64, write: true }, 0).skipped).toMatch(/no live coherent buffer/);
    run(world, [{ op: 'alloc_coherent', dev: 1, bytes: 4096 }, { op: 'alloc_coherent', dev: 0, bytes: 4096 }], 1);
    const [first, second] = world.guest.buffers;
    const dma = (op: Op) => world.apply(op, 9).dmas[0]!;
    expect(dma({ op: 'dma', dev: 1, buf: 2, len: 64, write: true })).toMatchObject({ legit: true, iova: first!.iova, target: { kind: 'buf', id: 0 } });
    expect(dma({ op: 'dma', dev: 1, buf: 1, len: 64, write: true })).toMatchObject({ legit: false, target: { kind: 'buf', id: second!.id } });
    expect(dma({ op: 'dma', dev: 1, buf: 0, offset: 4090, len: 64, write: true }).legit).toBe(false);
    expect(dma({ op: 'dma', dev: 1, iova: first!.iova, len: 64, write: true })).toMatchObject({ legit: false });
    expect(dma({ op: 'dma', dev: 1, iova: first!.iova, len: 64, write: true }).target).toBeUndefined();
  });
});
