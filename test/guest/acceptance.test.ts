// Memory acceptance as Linux does it (snp_accept_memory(): a PSC to private, then PVALIDATE at
// 2M where the GPA is 2M-aligned and 2M remain, else 4K; FAIL_SIZEMISMATCH -> 512 x 4K), and the
// #NPF exits that the host resolves in between.

import { describe, expect, it } from 'vitest';
import type { GuestEvent } from '../../src/api.ts';
import { defineHostPolicy } from '../../src/policies/types.ts';
import { SZ_2M, SZ_4K, countPrims, frameOf, makeWorld } from '../helpers/world.ts';

const REGION = 4 * SZ_2M;

const pvalidates = (events: readonly GuestEvent[]) =>
  events.filter((e): e is Extract<GuestEvent, { kind: 'pvalidate' }> => e.kind === 'pvalidate');

describe('accept', () => {
  it('validates a 2M-aligned 2M range with one PSC entry and one 2M PVALIDATE', () => {
    const world = makeWorld({ hostPolicy: 'kvm-iommu-4k' });
    const step = world.apply({ op: 'accept', gpa: REGION, size: '2M' }, 0);
    expect(step.guestEvents).toEqual([
      { kind: 'psc', gpa: REGION, size: '2M', to: 'private', done: true },
      { kind: 'pvalidate', gpa: REGION, size: '2M', validate: true, status: 0 },
    ]);
    // First PVALIDATE: not present -> KVM faults in a 2M RMP entry and a 2M NPT leaf -> retry.
    expect(step.faults[0]).toMatchObject({ kind: 'npf', reason: 'not present' });
    expect(step.calls.find((c) => c.prim === 'rmpupdate')?.args).toMatchObject({ size: '2M', assigned: true, gpa: REGION });
    expect(world.npt.leafAt(REGION)?.size).toBe(SZ_2M);
    expect(world.rmp.entry(frameOf(world, REGION) / SZ_4K)).toMatchObject({ assigned: true, size: '2M', validated: true, asid: world.asid });
    for (const gfn of [REGION / SZ_4K, REGION / SZ_4K + 511]) {
      expect(world.guest.page(gfn)).toEqual({ accepted: true, shared: false, validated: true, converting: false });
    }
  });

  it('falls back to 512 4K PVALIDATEs on FAIL_SIZEMISMATCH (pval_pages())', () => {
    // kvm-4k only builds 4K RMP entries.
    const world = makeWorld({ hostPolicy: 'kvm-4k' });
    const step = world.apply({ op: 'accept', gpa: REGION, size: '2M' }, 0);
    const events = pvalidates(step.guestEvents);
    expect(events[0]).toMatchObject({ gpa: REGION, size: '2M', status: 6 });
    expect(events.slice(1)).toHaveLength(512);
    expect(events.slice(1).every((e, i) => e.size === '4K' && e.gpa === REGION + i * SZ_4K && e.status === 0)).toBe(true);
    expect(world.rmp.entry(frameOf(world, REGION + 5 * SZ_4K) / SZ_4K)).toMatchObject({ size: '4K', validated: true });
    expect(world.npt.leafAt(REGION)?.size).toBe(SZ_4K);
  });

  it('validates a 4K page at 4K: KVM answers the SIZEM exit with PSMASH and a zap', () => {
    const world = makeWorld({ hostPolicy: 'kvm-iommu-4k' });
    const gpa = REGION + 7 * SZ_4K;
    const step = world.apply({ op: 'accept', gpa, size: '4K' }, 0);
    expect(pvalidates(step.guestEvents)).toEqual([{ kind: 'pvalidate', gpa, size: '4K', validate: true, status: 0 }]);
    expect(step.faults.some((f) => f.sizem === true)).toBe(true);
    expect(countPrims(step, 'psmash')).toBe(1);
    expect(world.rmp.entry(frameOf(world, gpa) / SZ_4K)).toMatchObject({ size: '4K', validated: true });
    expect(world.npt.leafAt(gpa)?.size).toBe(SZ_4K);
    // The neighbours were assigned by the 2M fault but not accepted by the guest.
    expect(world.guest.page(gpa / SZ_4K + 1)).toBeUndefined();
  });

  it('uses 4K entries for the parts of an unaligned range', () => {
    const world = makeWorld({ hostPolicy: 'kvm-4k' });
    const gpa = REGION + SZ_4K;
    const step = world.apply({ op: 'accept', gpa, size: '2M' }, 0);
    const pscs = step.guestEvents.filter((e) => e.kind === 'psc');
    expect(pscs).toHaveLength(512);
    expect(pscs.every((e) => e.kind === 'psc' && e.size === '4K')).toBe(true);
    expect(world.guest.page((gpa + SZ_2M - SZ_4K) / SZ_4K)?.accepted).toBe(true);
    expect(world.guest.page((gpa + SZ_2M) / SZ_4K)).toBeUndefined();
  });

  it('accepts only what is still unaccepted', () => {
    const world = makeWorld();
    world.apply({ op: 'accept', gpa: REGION, size: '2M' }, 0);
    const again = world.apply({ op: 'accept', gpa: REGION + SZ_4K, size: '4K' }, 1);
    expect(again.calls).toEqual([]);
    expect(again.guestEvents).toEqual([]);
  });

  it('accepts the 2M unit of an unaccepted page on first touch (accept_memory())', () => {
    const world = makeWorld();
    const gpa = REGION + 9 * SZ_4K;
    const step = world.apply({ op: 'touch', gpa, write: true }, 0);
    expect(step.guestEvents.map((e) => e.kind)).toEqual(['psc', 'pvalidate', 'access']);
    expect(step.guestEvents[2]).toEqual({ kind: 'access', gpa, write: true, private: true, ok: true });
    expect(world.guest.page(REGION / SZ_4K)?.accepted).toBe(true);
    expect(world.memory.token(frameOf(world, gpa))).toBeGreaterThan(0);
  });

  it('reports a host that never resolves the #NPF as a livelock instead of hanging', () => {
    const lazy = defineHostPolicy({ name: 'never-faults', description: 'ignores private faults', privateFault() {} });
    const world = makeWorld({}, { host: lazy });
    const step = world.apply({ op: 'accept', gpa: REGION, size: '2M' }, 0);
    expect(step.guestErrors?.[0]).toMatch(/livelock/);
    expect(world.guest.page(REGION / SZ_4K)?.accepted ?? false).toBe(false);
    expect(world.guest.page(REGION / SZ_4K)?.converting).toBe(true);
  });

  it('skips an accept beyond guest memory', () => {
    const world = makeWorld({ guestMemory: '64M' });
    expect(world.apply({ op: 'accept', gpa: 64 * 1024 * 1024, size: '4K' }, 0).skipped).toMatch(/beyond/);
  });
});
