// Guest CPU (PVALIDATE, private and shared accesses) and host CPU writes.
import { describe, expect, it } from 'vitest';
import type { Machine } from '../../src/model/machine.ts';
import type { Fault } from '../../src/model/types.ts';
import { SZ_2M, SZ_4K } from '../../src/model/size.ts';
import {
  PSMASH_OK,
  PVALIDATE_FAIL_INPUT,
  PVALIDATE_FAIL_NOUPDATE,
  PVALIDATE_FAIL_SIZEMISMATCH,
  PVALIDATE_OK,
  RMPUPDATE_OK,
} from '../../src/model/types.ts';
import { ASID, hpaOf, makePrivate2M, makePrivate4K, makeShared, newMachine } from './machine-fixtures.ts';

const G = 0x60_0000;

describe('PVALIDATE through the NPT', () => {
  const cases: { name: string; setup: (m: Machine) => void; gpa: number; size: '4K' | '2M'; validate?: boolean; expected: { status: number } | { npf: Partial<Fault> } }[] = [
    { name: '2M on a 2M entry', setup: (m) => makePrivate2M(m, G, { validate: false }), gpa: G, size: '2M', expected: { status: PVALIDATE_OK } },
    { name: '2M at an unaligned gpa', setup: (m) => makePrivate2M(m, G, { validate: false }), gpa: G + SZ_4K, size: '2M', expected: { status: PVALIDATE_FAIL_INPUT } },
    { name: '2M on 4K entries', setup: (m) => makePrivate4K(m, G, SZ_2M, { validate: false }), gpa: G, size: '2M', expected: { status: PVALIDATE_FAIL_SIZEMISMATCH } },
    { name: 'already validated', setup: (m) => makePrivate2M(m, G), gpa: G, size: '2M', expected: { status: PVALIDATE_FAIL_NOUPDATE } },
    { name: 'rescind', setup: (m) => makePrivate2M(m, G), gpa: G, size: '2M', validate: false, expected: { status: PVALIDATE_OK } },
    {
      name: '4K on a 2M entry',
      setup: (m) => makePrivate2M(m, G, { validate: false }),
      gpa: G + 3 * SZ_4K,
      size: '4K',
      expected: { npf: { kind: 'npf', rmp: true, sizem: true, rmpSize: '2M', addr: G + 3 * SZ_4K } },
    },
    {
      name: 'no NPT translation',
      setup: () => {},
      gpa: G,
      size: '4K',
      expected: { npf: { kind: 'npf', reason: 'not present' } },
    },
    {
      name: 'another guest’s frame',
      setup: (m) => {
        m.rmpUpdate(hpaOf(G), { assigned: true, asid: ASID + 1, gpa: G, size: '4K' });
        m.nptMap(G, hpaOf(G), SZ_4K);
      },
      gpa: G,
      size: '4K',
      expected: { npf: { reason: 'asid mismatch', rmp: true, sizem: false } },
    },
    {
      name: 'a frame assigned at another gpa (remapped by the host)',
      setup: (m) => {
        m.rmpUpdate(hpaOf(G), { assigned: true, asid: ASID, gpa: G + SZ_4K, size: '4K' });
        m.nptMap(G, hpaOf(G), SZ_4K);
      },
      gpa: G,
      size: '4K',
      expected: { npf: { reason: 'gpa mismatch' } },
    },
    {
      name: 'a shared frame',
      setup: (m) => makeShared(m, G, SZ_4K),
      gpa: G,
      size: '4K',
      expected: { npf: { reason: 'not assigned' } },
    },
  ];
  it.each(cases)('$name', ({ setup, gpa, size, validate, expected }) => {
    const machine = newMachine();
    setup(machine);
    expect(machine.pvalidate(gpa, size, validate ?? true)).toMatchObject(expected);
  });

  it('the SIZEM fault is resolved as KVM does: PSMASH, zap the 2M NPT range, map 4K', () => {
    const machine = newMachine();
    makePrivate2M(machine, G, { validate: false });
    expect('npf' in machine.pvalidate(G + SZ_4K, '4K', true)).toBe(true);
    expect(machine.psmash(hpaOf(G))).toBe(PSMASH_OK);
    expect(machine.nptUnmap(G, SZ_2M).unmapped).toBe(SZ_2M);
    machine.nptMap(G + SZ_4K, hpaOf(G + SZ_4K), SZ_4K);
    expect(machine.pvalidate(G + SZ_4K, '4K', true)).toEqual({ status: PVALIDATE_OK });
    expect(machine.rmp.entry(hpaOf(G + SZ_4K) / SZ_4K)).toMatchObject({ size: '4K', validated: true });
    expect(machine.rmp.entry(hpaOf(G) / SZ_4K).validated).toBe(false);
    expect(machine.counters.psmash).toBe(1);
  });

  it('a 2M PVALIDATE over a 4K NPT leaf checks the RMP at the 2M frame of the translated base', () => {
    const machine = newMachine();
    machine.rmpUpdate(hpaOf(G), { assigned: true, asid: ASID, gpa: G, size: '2M' });
    machine.nptMap(G, hpaOf(G), SZ_4K); // only the first 4K is mapped, at 4K
    expect(machine.pvalidate(G, '2M', true)).toEqual({ status: PVALIDATE_OK });
    expect(machine.rmp.entry(hpaOf(G) / SZ_4K + 511).validated).toBe(true);
  });
});

describe('guest CPU accesses', () => {
  it('private access to validated private memory: OK, writes give fresh tokens', () => {
    const machine = newMachine();
    makePrivate2M(machine, G);
    const write = machine.guestAccess(G + 0x1234, { write: true, private: true });
    expect(write).toEqual({ ok: true, tokens: [1] });
    expect(machine.guestAccess(G + 0x1000, { write: false, private: true })).toEqual({ ok: true, tokens: [1] });
    expect(machine.memory.token(hpaOf(G + 0x1234))).toBe(1);
  });

  const faults: { name: string; setup: (m: Machine) => void; gpa: number; priv: boolean; fault: Record<string, unknown> }[] = [
    { name: 'not validated -> #VC', setup: (m) => makePrivate2M(m, G, { validate: false }), gpa: G, priv: true, fault: { kind: 'vc', reason: 'not validated' } },
    {
      name: 'NPT 4K over RMP 2M -> #NPF(RMP)',
      setup: (m) => {
        // Validated at 2M, then the host splits the NPT without PSMASH.
        makePrivate2M(m, G);
        expect(m.nptSplit(G, SZ_4K)).toBe('ok');
      },
      gpa: G + SZ_4K,
      priv: true,
      fault: { kind: 'npf', rmp: true, reason: 'npt 4K over rmp 2M', nptSize: SZ_4K, rmpSize: '2M' },
    },
    {
      name: 'NPT 2M over RMP 4K -> fault the npt-rmp-size oracle flags',
      setup: (m) => {
        for (let i = 0; i < 512; i++) {
          m.rmpUpdate(hpaOf(G + i * SZ_4K), { assigned: true, asid: ASID, gpa: G + i * SZ_4K, size: '4K' });
        }
        m.nptMap(G, hpaOf(G), SZ_2M);
      },
      gpa: G + 8 * SZ_4K,
      priv: true,
      fault: { kind: 'npf', reason: 'npt 2M over rmp 4K', nptSize: SZ_2M, rmpSize: '4K' },
    },
    {
      name: 'shared access to an assigned frame -> #NPF(RMP)',
      setup: (m) => makePrivate2M(m, G),
      gpa: G,
      priv: false,
      fault: { kind: 'npf', rmp: true, reason: 'shared access to assigned page' },
    },
    { name: 'private access to a shared frame -> #NPF(RMP)', setup: (m) => makeShared(m, G, SZ_4K), gpa: G, priv: true, fault: { kind: 'npf', rmp: true, reason: 'not assigned' } },
    { name: 'no translation -> #NPF', setup: () => {}, gpa: G, priv: false, fault: { kind: 'npf', reason: 'not present' } },
  ];
  it.each(faults)('$name', ({ setup, gpa, priv, fault }) => {
    const machine = newMachine();
    setup(machine);
    const result = machine.guestAccess(gpa, { write: true, private: priv });
    expect(result).toMatchObject({ ok: false, fault: { ...fault, addr: gpa } });
    expect(machine.memory.token(hpaOf(gpa))).toBe(0);
  });

  it('shared access to shared memory: OK', () => {
    const machine = newMachine();
    makeShared(machine, G, SZ_2M);
    expect(machine.guestAccess(G + 5, { write: true, private: false }).ok).toBe(true);
  });
});

describe('host CPU writes and the direct map', () => {
  it('a write to an assigned frame faults; to a shared one it succeeds', () => {
    const machine = newMachine();
    makePrivate2M(machine, G);
    expect(machine.hostWrite(hpaOf(G) + 0x10)).toMatchObject({ ok: false, fault: { kind: 'host_rmp_pf', reason: 'assigned' } });
    const ok = machine.hostWrite(hpaOf(G + SZ_2M));
    expect(ok).toEqual({ ok: true, tokens: [1, 2] });
  });

  it('Linux splits the direct map before a 4K RMPUPDATE, so neighbours stay writable', () => {
    const machine = newMachine();
    expect(machine.directMapSize(hpaOf(G))).toBe('2M');
    makePrivate4K(machine, G + 9 * SZ_4K);
    expect(machine.directMapSize(hpaOf(G))).toBe('4K');
    expect(machine.hostWrite(hpaOf(G)).ok).toBe(true);
    expect(machine.hostWrite(hpaOf(G + 9 * SZ_4K)).ok).toBe(false);
  });

  it('a write through a 2M direct map covering an assigned 4K faults (host merged it back)', () => {
    const machine = newMachine();
    makePrivate4K(machine, G + 9 * SZ_4K);
    machine.hostDirectMapMerge(hpaOf(G));
    expect(machine.hostWrite(hpaOf(G))).toMatchObject({ ok: false, fault: { kind: 'host_rmp_pf', reason: 'direct map 2M over assigned 4K' } });
    machine.hostDirectMapSplit(hpaOf(G) + 0x1234);
    expect(machine.hostWrite(hpaOf(G)).ok).toBe(true);
  });

  it('a 2M RMPUPDATE leaves the direct map at 2M (whole-2M transitions are safe: adjust_direct_map())', () => {
    const machine = newMachine();
    expect(machine.rmpUpdate(hpaOf(G), { assigned: true, asid: ASID, gpa: G, size: '2M' })).toBe(RMPUPDATE_OK);
    expect(machine.directMapSize(hpaOf(G))).toBe('2M');
    expect(machine.hostWrite(hpaOf(G + SZ_2M)).ok).toBe(true);
  });
});
