// Page state changes as Linux __set_pages_state() does them: to shared, rescind then PSC; to
// private, PSC then validate; 2M entries only where aligned; the host may complete part of a
// request and the guest asks again, but never accepts progress going backwards.

import { describe, expect, it } from 'vitest';
import type { GuestEvent } from '../../src/api.ts';
import { GMEM_BASE, VMM_RAM_BASE } from '../../src/host/backing.ts';
import { Host } from '../../src/host/host.ts';
import { Guest } from '../../src/guest/guest.ts';
import type { Hypervisor, PscEntry } from '../../src/guest/ghcb.ts';
import { Machine } from '../../src/model/machine.ts';
import { guestPolicies, hostPolicies } from '../../src/policies/index.ts';
import { type ConvertRequest, defineHostPolicy } from '../../src/policies/types.ts';
import { SZ_2M, SZ_4K, bareEnv, countPrims, frameOf, makeConfig, makeWorld } from '../helpers/world.ts';

const REGION = 4 * SZ_2M;

const kinds = (events: readonly GuestEvent[], gpa: number) =>
  events
    .filter((e) => (e.kind === 'psc' || e.kind === 'pvalidate') && e.gpa === gpa)
    .map((e) => (e.kind === 'psc' ? `psc:${e.to}` : e.kind === 'pvalidate' ? `pvalidate:${e.validate ? 'validate' : 'rescind'}` : e.kind));

describe('share and unshare', () => {
  it('shares a page: rescind, then PSC; the host smashes the 2M entry and backs the page with a new frame', () => {
    const world = makeWorld({ hostPolicy: 'kvm-iommu-4k' });
    world.apply({ op: 'accept', gpa: REGION, size: '2M' }, 0);
    const gpa = REGION + 3 * SZ_4K;
    const step = world.apply({ op: 'share', gpa, pages: 1 }, 1);
    expect(kinds(step.guestEvents, gpa)).toEqual(['pvalidate:rescind', 'psc:shared']);
    expect(countPrims(step, 'psmash')).toBe(1);
    expect(world.guest.page(gpa / SZ_4K)).toEqual({ accepted: true, shared: true, validated: false, converting: false });
    const backing = world.host.backing(gpa)!;
    expect(backing.shared).toBe(true);
    expect(backing.hpa).toBeGreaterThanOrEqual(VMM_RAM_BASE);
    // The guest_memfd frame went back to the hypervisor; its neighbours stay private at 4K.
    expect(world.rmp.entry((GMEM_BASE + gpa) / SZ_4K).assigned).toBe(false);
    expect(world.rmp.entry((GMEM_BASE + gpa + SZ_4K) / SZ_4K)).toMatchObject({ assigned: true, size: '4K', validated: true });
    expect(world.host.backing(gpa)?.folioSize).toBe('4K');
  });

  it('unshares a page: PSC, then validate; a round trip gives the page a new shared frame each time', () => {
    const world = makeWorld();
    const gpa = REGION;
    world.apply({ op: 'share', gpa, pages: 1 }, 0);
    const first = frameOf(world, gpa);
    const back = world.apply({ op: 'unshare', gpa, pages: 1 }, 1);
    expect(kinds(back.guestEvents, gpa)).toEqual(['psc:private', 'pvalidate:validate']);
    expect(world.guest.page(gpa / SZ_4K)).toEqual({ accepted: true, shared: false, validated: true, converting: false });
    expect(world.host.backing(gpa)).toMatchObject({ shared: false, hpa: GMEM_BASE + gpa });
    expect(world.rmp.entry((GMEM_BASE + gpa) / SZ_4K)).toMatchObject({ assigned: true, size: '4K', validated: true });
    world.apply({ op: 'share', gpa, pages: 1 }, 2);
    expect(frameOf(world, gpa)).not.toBe(first);
  });

  it('uses one 2M entry for an aligned 2M range: no PSMASH, rmp_make_shared at 2M', () => {
    const world = makeWorld();
    world.apply({ op: 'accept', gpa: REGION, size: '2M' }, 0);
    const step = world.apply({ op: 'share', gpa: REGION, pages: 512 }, 1);
    expect(step.guestEvents.filter((e) => e.kind === 'psc' || e.kind === 'pvalidate')).toEqual([
      { kind: 'pvalidate', gpa: REGION, size: '2M', validate: false, status: 0 },
      { kind: 'psc', gpa: REGION, size: '2M', to: 'shared', done: true },
    ]);
    expect(countPrims(step, 'psmash')).toBe(0);
    expect(step.calls.find((c) => c.prim === 'rmpupdate')?.args).toMatchObject({ assigned: false, size: '2M' });
    expect(frameOf(world, REGION) % SZ_2M).toBe(0);
  });

  it('leaves pages of the DMA layer alone and skips when nothing is left', () => {
    const world = makeWorld();
    const pool = world.guest.swiotlb;
    expect(world.apply({ op: 'share', gpa: pool.base, pages: 4 }, 0).skipped).toMatch(/DMA layer/);
    expect(world.apply({ op: 'unshare', gpa: pool.base, pages: 4 }, 1).skipped).toMatch(/shared by share/);
    expect(world.guest.page(pool.base / SZ_4K)?.shared).toBe(true);
  });

  it('keeps shared pages out of the allocator until they are private again', () => {
    const world = makeWorld();
    // The first free page after the low 1 MiB and the three 128K atomic pools.
    world.apply({ op: 'share', gpa: 0x160000, pages: 1 }, 0);
    world.apply({ op: 'alloc_coherent', dev: 1, bytes: 4096, atomic: false }, 1);
    expect(world.guest.buffers[0]!.gpa).toBe(0x161000);
  });
});

describe('partial PSC completion', () => {
  it('asks again until the host has done everything, one 4K page per exit', () => {
    let exits = 0;
    const slow = defineHostPolicy({
      name: 'slow-psc',
      description: 'completes one 4K page per VMGEXIT',
      convert(ctx, request) {
        exits++;
        ctx.kvm.defaultConvert({ ...request, len: SZ_4K, pageSize: '4K' });
        return SZ_4K;
      },
    });
    const world = makeWorld({}, { host: slow });
    world.apply({ op: 'accept', gpa: REGION, size: '2M' }, 0);
    exits = 0;
    const step = world.apply({ op: 'share', gpa: REGION + SZ_4K, pages: 3 }, 1);
    expect(exits).toBe(3);
    expect(step.guestErrors).toBeUndefined();
    expect(step.guestEvents.filter((e) => e.kind === 'psc')).toHaveLength(3);
    for (let i = 1; i <= 3; i++) expect(world.host.backing(REGION + i * SZ_4K)?.shared).toBe(true);

    // A 2M entry done piecewise continues as 4K pages (KVM treats a partial 2M entry as 4K).
    world.apply({ op: 'accept', gpa: 6 * SZ_2M, size: '2M' }, 2);
    exits = 0;
    const big = world.apply({ op: 'share', gpa: 6 * SZ_2M, pages: 512 }, 3);
    expect(exits).toBe(512);
    expect(big.guestEvents.filter((e) => e.kind === 'psc')).toEqual([{ kind: 'psc', gpa: 6 * SZ_2M, size: '2M', to: 'shared', done: true }]);
    expect(world.guest.page(6 * SZ_2M / SZ_4K + 511)?.shared).toBe(true);
  });

  it('gives up on a host that never makes progress, leaving the pages converting', () => {
    const stuck = defineHostPolicy({ name: 'stuck', description: 'never converts', convert: () => 0 });
    const world = makeWorld({}, { host: stuck });
    const step = world.apply({ op: 'share', gpa: REGION, pages: 1 }, 0);
    expect(step.guestErrors?.join()).toMatch(/no progress/);
    expect(step.guestEvents.find((e) => e.kind === 'psc')).toMatchObject({ done: false });
    expect(world.guest.page(REGION / SZ_4K)).toMatchObject({ shared: false, converting: true });
  });

  it('catches a host that moves cur_entry backwards (vmgexit_psc())', () => {
    const config = makeConfig();
    const machine = new Machine({ asid: 1, vtom: config.vtom, devices: config.devices });
    const env = bareEnv(machine);
    const host = new Host(machine, config, hostPolicies['kvm-iommu-4k']!, env);
    let exits = 0;
    let armed = false;
    const tricky: Hypervisor = {
      npf: (fault, access) => host.npf(fault, access),
      tdiRun: (dev) => host.tdiRun(dev),
      tdiStop: (dev) => host.tdiStop(dev),
      psc(desc) {
        if (!armed || desc.entries.length < 2) return host.psc(desc);
        exits++;
        // First exit: claim one entry done; second: go back to the start.
        desc.curEntry = exits === 1 ? 1 : 0;
        return undefined;
      },
    };
    const guest = new Guest(machine, config, guestPolicies.linux!, env, tricky);
    guest.boot();
    guest.takeLog();
    armed = true;
    guest.share(REGION, 2);
    const log = guest.takeLog();
    expect(exits).toBe(2);
    expect(log.errors.join()).toMatch(/going backward, end_entry 1 \(got 1\) cur_entry 1 \(got 0\)/);
    const shares = log.events.filter((e) => e.kind === 'psc' && e.to === 'shared');
    expect(shares.map((e) => (e.kind === 'psc' ? e.done : undefined))).toEqual([true, false]);
  });
});

describe('the host coalesces PSC entries as snp_begin_psc() does', () => {
  const hostWith = (requests: ConvertRequest[]): Host => {
    const config = makeConfig();
    const machine = new Machine({ asid: 1, vtom: config.vtom, devices: config.devices });
    const env = bareEnv(machine);
    const recording = defineHostPolicy({ name: 'recording', description: 'records the convert requests, does nothing', convert: (_ctx, request) => void requests.push({ ...request }) });
    return new Host(machine, config, recording, env);
  };
  const gfn = REGION / SZ_4K;

  it('sends a partly done 2M entry alone, at 4K, as KVM compares gfns (sev.c: entry_start.gfn + npages)', () => {
    const requests: ConvertRequest[] = [];
    const entries: PscEntry[] = [
      { gfn, size: '2M', op: 'shared', curPage: 100 },
      { gfn: gfn + 512, size: '4K', op: 'shared', curPage: 0 },
      { gfn: gfn + 513, size: '4K', op: 'shared', curPage: 0 },
      // Unaligned: refused when it comes first.
      { gfn: gfn + 515, size: '2M', op: 'shared', curPage: 0 },
    ];
    expect(hostWith(requests).psc({ curEntry: 0, endEntry: 3, entries })).toBe('PSC_INVALID_ENTRY');
    expect(requests).toEqual([
      { gpa: (gfn + 100) * SZ_4K, len: 412 * SZ_4K, to: 'shared', pageSize: '4K' },
      { gpa: (gfn + 512) * SZ_4K, len: 2 * SZ_4K, to: 'shared', pageSize: '4K' },
    ]);
  });

  it('keeps a partly done 2M entry apart from the 2M entries after it', () => {
    const requests: ConvertRequest[] = [];
    const entries: PscEntry[] = [
      { gfn, size: '2M', op: 'private', curPage: 1 },
      { gfn: gfn + 512, size: '2M', op: 'private', curPage: 0 },
    ];
    hostWith(requests).psc({ curEntry: 0, endEntry: 1, entries });
    expect(requests).toEqual([
      { gpa: (gfn + 1) * SZ_4K, len: 511 * SZ_4K, to: 'private', pageSize: '4K' },
      { gpa: (gfn + 512) * SZ_4K, len: SZ_2M, to: 'private', pageSize: '2M' },
    ]);
  });

  it('steps over an entry already done without asking the policy', () => {
    const requests: ConvertRequest[] = [];
    const entries: PscEntry[] = [
      { gfn, size: '4K', op: 'shared', curPage: 1 },
      { gfn: gfn + 7, size: '4K', op: 'shared', curPage: 0 },
    ];
    const desc = { curEntry: 0, endEntry: 1, entries };
    hostWith(requests).psc(desc);
    expect(requests).toEqual([{ gpa: (gfn + 7) * SZ_4K, len: SZ_4K, to: 'shared', pageSize: '4K' }]);
    expect(desc.curEntry).toBe(2);
  });
});
