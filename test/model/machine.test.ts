// The machine as the engine sees it: recording, counters, usage errors, splits, scale.
import { describe, expect, it } from 'vitest';
import { HardwareUsageError, Machine } from '../../src/model/machine.ts';
import { SZ_1G, SZ_2M, SZ_4K } from '../../src/model/size.ts';
import { RMPUPDATE_OK } from '../../src/model/types.ts';
import { ASID, hpaOf, makePrivate2M, newMachine } from './machine-fixtures.ts';

const G = 0x20_0000;

describe('recording', () => {
  it('records every primitive call with its result and the frames and gfns it touched', () => {
    const machine = newMachine([{ id: 0, trusted: false, iommu: 's2' }]);
    machine.recorder.beginStep();
    makePrivate2M(machine, G);
    machine.psmash(hpaOf(G));
    const step = machine.recorder.endStep();
    expect(step.calls.map((c) => [c.prim, c.result])).toEqual([
      ['rmpupdate', RMPUPDATE_OK],
      ['npt_map', SZ_2M],
      ['pvalidate', 0],
      ['psmash', 0],
    ]);
    expect(step.calls[0]?.args).toEqual({ hpa: hpaOf(G), assigned: true, asid: ASID, gpa: G, size: '2M', immutable: false });
    expect(step.frames).toHaveLength(512);
    expect(step.frames[0]).toBe(hpaOf(G) / SZ_4K);
    expect(step.gfns).toHaveLength(512);
    expect(step.gfns[0]).toBe(G / SZ_4K);
    expect(machine.counters).toMatchObject({ rmpUpdate: 1, psmash: 1, faults: 0 });

    machine.recorder.beginStep();
    const dma = machine.dma(0, G, 8, true);
    const after = machine.recorder.endStep();
    expect(after.calls).toEqual([{ prim: 'dma', args: { dev: 0, iova: G, len: 8, write: true }, result: 'io_page_fault' }]);
    expect(after.faults).toEqual(dma.faults);
    expect(machine.counters).toMatchObject({ dmas: 1, faults: 1 });
  });

  it('a buffer fill stops where the access check changes inside one NPT leaf (guestWriteRun: an RMP run ends)', () => {
    // Shared memory under one 2M NPT leaf; the frame of the third page assigned behind the guest.
    const machine = newMachine();
    expect(machine.nptMap(G, hpaOf(G), SZ_2M).error).toBeUndefined();
    expect(machine.rmpUpdate(hpaOf(G + 2 * SZ_4K), { assigned: true, asid: ASID, gpa: G + 2 * SZ_4K, size: '4K' })).toBe(RMPUPDATE_OK);
    machine.recorder.beginStep();
    // 8 chunks of 2K: the first four (pages 0 and 1) pass, the fifth is a shared access to an assigned page.
    expect(machine.guestWriteRun(G, 8, false)).toBe(4);
    const step = machine.recorder.endStep();
    expect(step.gfnRanges).toEqual([{ start: G / SZ_4K, end: G / SZ_4K + 2 }]);
  });

  it('an unmap touches the whole leaves it removed', () => {
    const machine = newMachine();
    machine.nptMap(G, hpaOf(G), SZ_2M);
    machine.recorder.beginStep();
    expect(machine.nptUnmap(G, SZ_4K).unmapped).toBe(SZ_2M);
    const step = machine.recorder.endStep();
    expect(step.gfns).toHaveLength(512);
    expect(step.frames).toHaveLength(512);
  });
});

describe('splits', () => {
  it('nptSplit and ioSplit replace one leaf by smaller ones in one step and count it', () => {
    const machine = newMachine([{ id: 0, trusted: false, iommu: 's2' }]);
    machine.nptMap(G, hpaOf(G), SZ_2M);
    machine.ioMap(0, G, hpaOf(G), SZ_2M);
    expect(machine.nptSplit(G + SZ_4K, SZ_4K)).toBe('ok');
    expect(machine.npt.leafAt(G + 5 * SZ_4K)).toEqual({ iova: G + 5 * SZ_4K, pa: hpaOf(G + 5 * SZ_4K), size: SZ_4K });
    expect(machine.ioSplit(0, G, SZ_4K)).toBe('ok');
    expect(machine.devices[0]!.s2.leafAt(G + SZ_2M - 1)?.size).toBe(SZ_4K);
    expect(machine.counters).toMatchObject({ nptSplits: 1, ioSplits: 1 });
    expect(machine.nptSplit(G, SZ_4K)).toBe('EINVAL');
    expect(machine.nptSplit(G + 10 * SZ_2M, SZ_4K)).toBe('ENXIO');
  });

  it('a split maps the old leaf again as leaves of exactly the new size, and gathers the old range', () => {
    const machine = newMachine([{ id: 0, trusted: false, iommu: 's2' }]);
    // A 1G leaf (the output 1G-aligned too) becomes 512 2M leaves.
    machine.nptMap(SZ_1G, 8 * SZ_1G, SZ_1G);
    expect(machine.npt.leafAt(SZ_1G)?.size).toBe(SZ_1G);
    expect(machine.nptSplit(SZ_1G + 3 * SZ_2M, SZ_2M)).toBe('ok');
    const leaves = [...machine.npt.leaves(SZ_1G, 2 * SZ_1G)];
    expect(leaves).toHaveLength(512);
    expect(leaves.every((leaf, i) => leaf.size === SZ_2M && leaf.iova === SZ_1G + i * SZ_2M && leaf.pa === 8 * SZ_1G + i * SZ_2M)).toBe(true);
    machine.ioMap(0, G, hpaOf(G), SZ_2M);
    machine.ioSplit(0, G, SZ_4K);
    const io = [...machine.devices[0]!.s2.leaves(G, G + SZ_2M)];
    expect(io.map((leaf) => leaf.size)).toEqual(Array.from({ length: 512 }, () => SZ_4K));
    expect(io.at(-1)).toEqual({ iova: G + SZ_2M - SZ_4K, pa: hpaOf(G + SZ_2M - SZ_4K), size: SZ_4K });
    expect(machine.ioGathered(0)).toEqual([{ iova: G, len: SZ_2M }]);
  });
});

describe('usage errors', () => {
  const machine = newMachine([{ id: 0, trusted: false, iommu: 's2' }]);
  const misuse: [string, () => unknown, RegExp][] = [
    ['negative hpa', () => machine.rmpUpdate(-4096, { assigned: false, asid: 0, gpa: 0, size: '4K' }), /rmpupdate: invalid hpa/],
    ['unaligned hpa', () => machine.rmpUpdate(0x1001, { assigned: false, asid: 0, gpa: 0, size: '4K' }), /rmpupdate: invalid hpa 0x1001/],
    ['bad size', () => machine.rmpUpdate(0, { assigned: false, asid: 0, gpa: 0, size: '1G' as '2M' }), /rmpupdate: invalid size "1G"/],
    ['fractional gpa', () => machine.nptMap(0.5, 0, SZ_4K), /npt_map: invalid gpa/],
    ['zero length', () => machine.ioMap(0, 0, 0, 0), /io_map: invalid len/],
    ['unknown device', () => machine.dma(9, 0, 8, false), /dma: invalid dev 0x9: no such device/],
    ['S1 on an s2 device', () => machine.s1Map(0, 0, 0, SZ_4K), /s1_map: invalid dev/],
    ['unaligned pvalidate', () => machine.pvalidate(0x10, '4K', true), /pvalidate: invalid gpa 0x10/],
    ['access crossing a page', () => machine.guestAccess(SZ_4K - 1, { write: true, private: false, len: 2 }), /guest_access: invalid len/],
    ['unknown TDI state', () => machine.tdiSetState(0, 'bound' as 'run'), /tdi_set_state: invalid state/],
  ];
  it.each(misuse)('%s throws HardwareUsageError naming primitive and argument', (_name, call, message) => {
    expect(call).toThrow(HardwareUsageError);
    expect(call).toThrow(message);
  });

  it('status codes are not usage errors', () => {
    expect(machine.rmpUpdate(SZ_4K, { assigned: true, asid: ASID, gpa: 0, size: '2M' })).toBe(1);
    expect(machine.psmash(SZ_4K)).toBe(1);
    expect(machine.nptMap(0x1000, 0x2000, 0x800).error).toBe('EINVAL');
  });

  it('the TDI state machine', () => {
    const m = newMachine([
      { id: 0, trusted: true, iommu: 's2' },
      { id: 1, trusted: false, iommu: 's2' },
    ]);
    expect(m.tdiSetState(1, 'locked')).toBe('ENODEV');
    expect(m.tdiSetState(0, 'run')).toBe('EINVAL');
    expect(m.tdiSetState(0, 'locked')).toBe('ok');
    expect(m.tdiSetState(0, 'run')).toBe('ok');
    expect(m.devices[0]!.tdi).toBe('run');
    expect(m.tdiSetState(0, 'unlocked')).toBe('ok');
  });

  it('rejects a machine config the hardware cannot have', () => {
    expect(() => new Machine({ asid: 0, vtom: SZ_2M, devices: [] })).toThrow(/asid/);
    expect(() => new Machine({ asid: 1, vtom: SZ_4K, devices: [] })).toThrow(/vtom/);
    expect(
      () =>
        new Machine({
          asid: 1,
          vtom: SZ_2M,
          devices: [
            { id: 0, trusted: false, iommu: 's2' },
            { id: 0, trusted: false, iommu: 's2' },
          ],
        }),
    ).toThrow(/device id/);
  });
});

describe('scale: cost follows what is touched, not the configured memory', () => {
  /** The same ops on a guest of `memory` bytes, at `gpas` (GPA -> HPA at a fixed offset). */
  function workload(memory: number, gpas: readonly number[]): Machine {
    const machine = new Machine({
      asid: ASID,
      vtom: memory,
      devices: [
        { id: 0, trusted: true, iommu: 's2' },
        { id: 1, trusted: false, iommu: 'nested' },
      ],
    });
    machine.tdiSetState(0, 'locked');
    machine.tdiSetState(0, 'run');
    for (const gpa of gpas) {
      makePrivate2M(machine, gpa);
      machine.guestAccess(gpa + 0x800, { write: true, private: true });
    }
    // Smash one 2M and share a 4K of it, as a conversion would.
    const [, second = 0] = gpas;
    machine.psmash(hpaOf(second));
    machine.pvalidate(second + SZ_4K, '4K', false);
    machine.rmpUpdate(hpaOf(second + SZ_4K), { assigned: false, asid: 0, gpa: 0, size: '4K' });
    machine.hostWrite(hpaOf(second + SZ_4K));
    // IO at the same low GPAs: the amdv1 top level grows with the highest mapped IOVA.
    machine.ioMap(0, 0, hpaOf(0), SZ_2M);
    machine.dma(0, 0x1000, 3 * SZ_4K, true);
    machine.s1Map(1, 0x10_0000, 0x4000, SZ_4K);
    return machine;
  }

  const MiB64 = 64 * 1024 * 1024;
  const TiB = 1024 * SZ_1G;

  it('a 1 TiB guest allocates exactly what a 64 MiB guest does for the same ops at the same GPAs', () => {
    const gpas = [0, SZ_2M, 8 * SZ_2M, MiB64 - SZ_2M];
    const small = workload(MiB64, gpas).stats();
    expect(workload(TiB, gpas).stats()).toEqual(small);
    expect(small).toMatchObject({ rmpRegions: 4, memoryChunks: 4 + 6 + 2, iotlbEntries: 1, directMapSplits: 1 });
  });

  it('at the same offsets from the top of memory, only the page-table geometry differs', () => {
    const top = (memory: number) => [0, SZ_2M, memory - 2 * SZ_2M, memory - SZ_2M];
    const small = workload(MiB64, top(MiB64)).stats();
    const large = workload(TiB, top(TiB)).stats();
    expect({ ...large, nptTables: 0 }).toEqual({ ...small, nptTables: 0 });
    // A GPA near 1 TiB needs its own PDPT and PD in the 4-level NPT: two table pages, not more.
    expect(large.nptTables - small.nptTables).toBe(2);
  });
});
