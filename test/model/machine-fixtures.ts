// Small builders for machine tests: a guest with one ASID and host frames far from its GPAs.
import { expect } from 'vitest';
import { Machine, type MachineOptions } from '../../src/model/machine.ts';
import { SZ_2M, SZ_4K } from '../../src/model/size.ts';
import { PVALIDATE_OK, RMPUPDATE_OK } from '../../src/model/types.ts';

export const ASID = 7;
/** Host frames live at HPA = GPA + HOST_OFFSET (2M-aligned, so 2M leaves stay possible). */
export const HOST_OFFSET = 0x10_0000_0000;
export const hpaOf = (gpa: number): number => gpa + HOST_OFFSET;

export type DeviceSpec = MachineOptions['devices'][number];

export function newMachine(devices: DeviceSpec[] = [], vtom = 2 ** 30): Machine {
  return new Machine({ asid: ASID, vtom, devices });
}

/** KVM-style private 2M: RMP 2M assigned, NPT 2M, then the guest validates at 2M. */
export function makePrivate2M(machine: Machine, gpa: number, options: { validate?: boolean; npt?: boolean } = {}): void {
  expect(machine.rmpUpdate(hpaOf(gpa), { assigned: true, asid: ASID, gpa, size: '2M' })).toBe(RMPUPDATE_OK);
  if (options.npt ?? true) expect(machine.nptMap(gpa, hpaOf(gpa), SZ_2M).error).toBeUndefined();
  if (options.validate ?? true) expect(machine.pvalidate(gpa, '2M', true)).toEqual({ status: PVALIDATE_OK });
}

/** Private 4K entries over [gpa, gpa + len), NPT at 4K, validated at 4K. */
export function makePrivate4K(machine: Machine, gpa: number, len = SZ_4K, options: { validate?: boolean } = {}): void {
  for (let offset = 0; offset < len; offset += SZ_4K) {
    const g = gpa + offset;
    expect(machine.rmpUpdate(hpaOf(g), { assigned: true, asid: ASID, gpa: g, size: '4K' })).toBe(RMPUPDATE_OK);
    expect(machine.nptMap(g, hpaOf(g), SZ_4K).error).toBeUndefined();
    if (options.validate ?? true) expect(machine.pvalidate(g, '4K', true)).toEqual({ status: PVALIDATE_OK });
  }
}

/** Shared memory: NPT only (frames stay Hypervisor-owned). */
export function makeShared(machine: Machine, gpa: number, len: number): void {
  expect(machine.nptMap(gpa, hpaOf(gpa), len).error).toBeUndefined();
}
