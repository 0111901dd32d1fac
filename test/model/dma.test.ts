// The IOMMU DMA path: the four cases of the seed discussion, untrusted devices, vTOM, the IOTLB.
import { describe, expect, it } from 'vitest';
import { SZ_2M, SZ_4K } from '../../src/model/size.ts';
import { ASID, hpaOf, makePrivate2M, makePrivate4K, newMachine } from './machine-fixtures.ts';
import { bareEnv } from '../helpers/world.ts';

const G = 0x40_0000; // 2M-aligned guest address (4M-aligned too)
const SZ_4M = 2 * SZ_2M;

describe('trusted DMA (SEV-TIO, TDI in RUN): the seed discussion', () => {
  const trustedRun = (iommu: 's2' | 'nested', ioPageSizes?: number[]) => {
    const machine = newMachine([{ id: 0, trusted: true, iommu, ...(ioPageSizes ? { ioPageSizes } : {}) }]);
    expect(machine.tdiSetState(0, 'locked')).toBe('ok');
    expect(machine.tdiSetState(0, 'run')).toBe('ok');
    return machine;
  };

  it('S1[4K] -> S2[2M] -- [2M] --> RMP[2M] ==> OK (nested device)', () => {
    const machine = trustedRun('nested');
    makePrivate2M(machine, G);
    expect(machine.ioMap(0, G, hpaOf(G), SZ_2M).mapped).toBe(SZ_2M);
    const iova = 0x7000_0000;
    expect(machine.s1Map(0, iova, G + 5 * SZ_4K, SZ_4K).mapped).toBe(SZ_4K);
    const result = machine.dma(0, iova, SZ_4K, true);
    expect(result.ok).toBe(true);
    expect(result.pieces).toEqual([
      { iova, gpa: G + 5 * SZ_4K, hpa: hpaOf(G + 5 * SZ_4K), len: SZ_4K, s1Size: SZ_4K, s2Size: SZ_2M, checkedSize: '2M', rmpSize: '2M', fromIotlb: false },
    ]);
    // The IOTLB caches the S2 translation at the checked size (UNCONFIRMED; Alexey's account).
    expect([...machine.devices[0]!.iotlb.entries()]).toEqual([{ dev: 0, addr: G, hpa: hpaOf(G), size: '2M' }]);
  });

  it('S2[4K] -- [4K] --> RMP[2M] ==> FAIL (size mismatch, never retried at 4K)', () => {
    const machine = trustedRun('s2', [SZ_4K]);
    makePrivate2M(machine, G);
    expect(machine.ioMap(0, G, hpaOf(G), SZ_2M).mapped).toBe(SZ_2M);
    expect(machine.devices[0]!.s2.leafAt(G)?.size).toBe(SZ_4K);
    const result = machine.dma(0, G + SZ_4K, SZ_4K, false);
    expect(result.ok).toBe(false);
    expect(result.pieces).toEqual([]);
    expect(result.faults).toEqual([
      expect.objectContaining({ kind: 'rmp_page_fault', reason: 'size mismatch', s2Size: SZ_4K, checkedSize: '4K', rmpSize: '2M', dev: 0, addr: G + SZ_4K }),
    ]);
    expect(machine.devices[0]!.iotlb.lookup(G + SZ_4K)).toBeUndefined();
  });

  it('S2[2M] -- [2M] --> RMP[4K] ==> FAIL', () => {
    const machine = trustedRun('s2');
    makePrivate4K(machine, G, SZ_2M);
    expect(machine.ioMap(0, G, hpaOf(G), SZ_2M).mapped).toBe(SZ_2M);
    const result = machine.dma(0, G, SZ_4K, true);
    expect(result.ok).toBe(false);
    expect(result.faults[0]).toMatchObject({ kind: 'rmp_page_fault', reason: 'size mismatch', s2Size: SZ_2M, checkedSize: '2M', rmpSize: '4K' });
    // Nothing was written.
    expect(machine.memory.token(hpaOf(G))).toBe(0);
  });

  it('S2[4M] -- [2M] --> RMP[2M] ==> OK (leaves of 2M or more are checked as 2M)', () => {
    const machine = trustedRun('s2');
    makePrivate2M(machine, G);
    makePrivate2M(machine, G + SZ_2M);
    expect(machine.ioMap(0, G, hpaOf(G), SZ_4M).mapped).toBe(SZ_4M);
    expect(machine.devices[0]!.s2.leafAt(G)?.size).toBe(SZ_4M);
    // One DMA across the 2M boundary: two pieces, each checked at 2M.
    const result = machine.dma(0, G + SZ_2M - SZ_4K, 2 * SZ_4K, true);
    expect(result.ok).toBe(true);
    expect(result.pieces.map((p) => [p.gpa, p.len, p.s2Size, p.checkedSize, p.rmpSize])).toEqual([
      [G + SZ_2M - SZ_4K, SZ_4K, SZ_4M, '2M', '2M'],
      [G + SZ_2M, SZ_4K, SZ_4M, '2M', '2M'],
    ]);
    expect(result.tokens).toHaveLength(4);
  });

  it('S2[4K] -> RMP[4K] ==> OK, and a wrong RMP gpa, asid or assignment fails with its reason', () => {
    const machine = trustedRun('s2', [SZ_4K]);
    makePrivate4K(machine, G, 4 * SZ_4K);
    expect(machine.ioMap(0, G, hpaOf(G), 4 * SZ_4K).mapped).toBe(4 * SZ_4K);
    expect(machine.dma(0, G, 4 * SZ_4K, true).ok).toBe(true);

    // IO leaf pointing at a frame assigned at another GPA (not 1:1).
    expect(machine.ioMap(0, G + 0x10_0000, hpaOf(G), SZ_4K).mapped).toBe(SZ_4K);
    expect(machine.dma(0, G + 0x10_0000, 8, false).faults[0]?.reason).toBe('gpa mismatch');
    // Another guest's frame.
    const other = G + 0x20_0000;
    machine.rmpUpdate(hpaOf(other), { assigned: true, asid: ASID + 1, gpa: other, size: '4K' });
    machine.ioMap(0, other, hpaOf(other), SZ_4K);
    expect(machine.dma(0, other, 8, false).faults[0]?.reason).toBe('asid mismatch');
    // A Hypervisor-owned frame below vTOM.
    const shared = G + 0x30_0000;
    machine.ioMap(0, shared, hpaOf(shared), SZ_4K);
    expect(machine.dma(0, shared, 8, false).faults[0]?.reason).toBe('not assigned');
  });

  it('does not require Validated (UNCONFIRMED)', () => {
    const machine = trustedRun('s2');
    makePrivate2M(machine, G, { validate: false });
    machine.ioMap(0, G, hpaOf(G), SZ_2M);
    expect(machine.dma(0, G, SZ_4K, true).ok).toBe(true);
  });

  it('above vTOM a trusted device in RUN does shared DMA', () => {
    const vtom = 0x4000_0000;
    const machine = newMachine([{ id: 0, trusted: true, iommu: 's2' }], vtom);
    machine.tdiSetState(0, 'locked');
    machine.tdiSetState(0, 'run');
    const high = vtom + SZ_2M;
    machine.ioMap(0, high, hpaOf(high), SZ_2M);
    expect(machine.dma(0, high, SZ_4K, true).ok).toBe(true);
    makePrivate2M(machine, vtom);
    machine.ioMap(0, vtom, hpaOf(vtom), SZ_2M);
    expect(machine.dma(0, vtom, SZ_4K, true).faults[0]?.reason).toBe('private memory');
  });
});

describe('untrusted DMA: shared memory only, IO sizes must match RMP sizes', () => {
  const untrusted = (ioPageSizes?: number[]) =>
    newMachine([{ id: 1, trusted: false, iommu: 's2', ...(ioPageSizes ? { ioPageSizes } : {}) }]);

  it('shared memory: OK', () => {
    const machine = untrusted();
    machine.ioMap(1, G, hpaOf(G), SZ_2M);
    const result = machine.dma(1, G + 0x100, 0x2000, true);
    expect(result.ok).toBe(true);
    expect(result.pieces).toHaveLength(1);
    expect(result.pieces[0]).toMatchObject({ checkedSize: '2M', rmpSize: '4K' });
  });

  it('private memory: FAIL', () => {
    const machine = untrusted();
    makePrivate2M(machine, G);
    machine.ioMap(1, G, hpaOf(G), SZ_2M);
    const result = machine.dma(1, G, SZ_4K, false);
    expect(result.ok).toBe(false);
    expect(result.faults[0]).toMatchObject({ kind: 'rmp_page_fault', reason: 'private memory' });
  });

  it('a trusted device not in RUN is untrusted', () => {
    const machine = newMachine([{ id: 0, trusted: true, iommu: 's2' }]);
    makePrivate2M(machine, G);
    machine.ioMap(0, G, hpaOf(G), SZ_2M);
    expect(machine.dma(0, G, SZ_4K, false).faults[0]?.reason).toBe('private memory');
    machine.tdiSetState(0, 'locked');
    expect(machine.dma(0, G, SZ_4K, false).faults[0]?.reason).toBe('private memory');
    machine.tdiSetState(0, 'run');
    expect(machine.dma(0, G, SZ_4K, false).ok).toBe(true);
  });

  it('a 2M IO leaf over a 2M region holding one private 4K: FAIL, even on a shared frame; 4K IO leaves: OK', () => {
    for (const [sizes, ok] of [[undefined, false], [[SZ_4K], true]] as const) {
      const machine = untrusted(sizes ? [...sizes] : undefined);
      makePrivate4K(machine, G + 100 * SZ_4K);
      machine.ioMap(1, G, hpaOf(G), SZ_2M);
      const result = machine.dma(1, G, SZ_4K, true);
      expect(result.ok).toBe(ok);
      if (!ok) expect(result.faults[0]).toMatchObject({ reason: 'io 2M over assigned 4K', checkedSize: '2M', rmpSize: '4K' });
    }
  });

  it('a DMA stops at its first failing piece; the pieces before it happened', () => {
    const machine = untrusted([SZ_4K]);
    makePrivate4K(machine, G + SZ_4K);
    machine.ioMap(1, G, hpaOf(G), 3 * SZ_4K);
    const result = machine.dma(1, G, 3 * SZ_4K, true);
    expect(result.ok).toBe(false);
    expect(result.pieces.map((p) => p.gpa)).toEqual([G]);
    expect(result.tokens).toHaveLength(2);
    expect(machine.memory.token(hpaOf(G))).toBe(result.tokens[0]);
    expect(machine.memory.token(hpaOf(G + 2 * SZ_4K))).toBe(0);
  });

  it('no translation: io_page_fault (S2, and S1 for nested devices)', () => {
    const machine = newMachine([
      { id: 0, trusted: false, iommu: 's2' },
      { id: 1, trusted: false, iommu: 'nested' },
    ]);
    expect(machine.dma(0, G, 8, false).faults[0]).toMatchObject({ kind: 'io_page_fault', reason: 's2 not present' });
    expect(machine.dma(1, G, 8, false).faults[0]).toMatchObject({ kind: 'io_page_fault', reason: 's1 not present' });
    machine.s1Map(1, G, 0x1000, SZ_4K);
    expect(machine.dma(1, G, 8, false).faults[0]).toMatchObject({ kind: 'io_page_fault', reason: 's2 not present', gpa: 0x1000 });
  });
});

describe('IOTLB', () => {
  it('a stale entry is used until invalidated (iommuFlush after ioUnmap), and not after', () => {
    const machine = newMachine([{ id: 0, trusted: false, iommu: 's2' }]);
    const oldHpa = hpaOf(G);
    const newHpa = hpaOf(G + 0x100_0000);
    machine.ioMap(0, G, oldHpa, SZ_2M);
    expect(machine.dma(0, G, SZ_4K, true).pieces[0]).toMatchObject({ hpa: oldHpa, fromIotlb: false });

    // The host moves the GPA to another frame but does not flush.
    expect(machine.ioUnmap(0, G, SZ_2M).unmapped).toBe(SZ_2M);
    expect(machine.ioMap(0, G, newHpa, SZ_2M).mapped).toBe(SZ_2M);
    const stale = machine.dma(0, G + SZ_4K, SZ_4K, true);
    expect(stale.pieces[0]).toMatchObject({ hpa: oldHpa + SZ_4K, fromIotlb: true, checkedSize: '2M' });
    expect(machine.memory.token(oldHpa + SZ_4K)).toBe(stale.tokens[0]);

    // The flush invalidates the gathered range: the next DMA walks the new S2.
    expect(machine.iommuFlush(0)).toBe(1);
    expect(machine.counters.iotlbInvalidations).toBe(1);
    const fresh = machine.dma(0, G + SZ_4K, SZ_4K, true);
    expect(fresh.pieces[0]).toMatchObject({ hpa: newHpa + SZ_4K, fromIotlb: false });
  });

  it('after an unmap without a remap, DMA still succeeds through the stale entry until the flush', () => {
    const machine = newMachine([{ id: 0, trusted: false, iommu: 's2' }]);
    machine.ioMap(0, G, hpaOf(G), SZ_4K);
    expect(machine.dma(0, G, 8, false).ok).toBe(true);
    machine.ioUnmap(0, G, SZ_4K);
    expect(machine.dma(0, G, 8, false).ok).toBe(true);
    machine.iommuFlush(0);
    expect(machine.dma(0, G, 8, false).faults[0]?.kind).toBe('io_page_fault');
  });

  it('iotlbInvalidate drops a range or everything', () => {
    const machine = newMachine([{ id: 0, trusted: false, iommu: 's2', ioPageSizes: [SZ_4K] }]);
    machine.ioMap(0, G, hpaOf(G), 4 * SZ_4K);
    machine.dma(0, G, 4 * SZ_4K, false);
    expect([...machine.devices[0]!.iotlb.entries()]).toHaveLength(4);
    expect(machine.iotlbInvalidate(0, G + SZ_4K, SZ_4K)).toBe(1);
    expect(machine.iotlbInvalidate(0)).toBe(3);
  });

  it('a stale entry still faces the RMP check: it cannot reach memory that became private', () => {
    const machine = newMachine([{ id: 0, trusted: false, iommu: 's2' }]);
    machine.ioMap(0, G, hpaOf(G), SZ_2M);
    expect(machine.dma(0, G, 8, true).ok).toBe(true);
    makePrivate2M(machine, G);
    expect(machine.dma(0, G, 8, true).faults[0]).toMatchObject({ reason: 'private memory' });
  });

  it('a TDI state change flushes the device IOTLB', () => {
    const machine = newMachine([{ id: 0, trusted: true, iommu: 's2' }]);
    machine.ioMap(0, G, hpaOf(G), SZ_2M);
    machine.dma(0, G, 8, false);
    expect([...machine.devices[0]!.iotlb.entries()]).toHaveLength(1);
    machine.tdiSetState(0, 'locked');
    expect([...machine.devices[0]!.iotlb.entries()]).toHaveLength(0);
  });
});

describe('IOTLB: a map over an empty leftover table syncs itself (iommu_pt.h map_range())', () => {
  it('drops the replaced range from the IOTLB at the map, leaving what the unmaps gathered for the next flush', () => {
    const machine = newMachine([{ id: 0, trusted: false, iommu: 's2' }]);
    const oldHpa = hpaOf(G);
    const newHpa = hpaOf(G + 0x100_0000);
    machine.ioMap(0, G, oldHpa, SZ_4K);
    expect(machine.dma(0, G, 64, false).pieces[0]).toMatchObject({ hpa: oldHpa, fromIotlb: false });
    // Unmapped without a flush: the 4K leaf's table stays, empty; the IOTLB keeps the 4K entry.
    machine.ioUnmap(0, G, SZ_4K);
    expect(machine.ioGathered(0)).toEqual([{ iova: G, len: SZ_4K }]);
    // A 2M map replaces the empty table with a leaf, and map_range() syncs its own gather:
    // the kernel's DMA goes to the new frame, not through the stale 4K entry.
    expect(machine.ioMap(0, G, newHpa, SZ_2M).mapped).toBe(SZ_2M);
    expect(machine.dma(0, G, 64, false).pieces[0]).toMatchObject({ hpa: newHpa, fromIotlb: false });
    expect(machine.counters.iotlbInvalidations).toBe(1);
    // The unmap's own range still waits for the driver's flush; the detached table was freed.
    expect(machine.ioGathered(0)).toEqual([{ iova: G, len: SZ_4K }]);
  });

  it("a failed map's rollback is iommu_unmap(): it syncs its own range, not the driver's gather", async () => {
    const { Iommu } = await import('../../src/host/iommu.ts');
    const machine = newMachine([{ id: 0, trusted: false, iommu: 's2' }]);
    const iommu = new Iommu(machine, undefined as never, undefined as never, bareEnv(machine));
    // A translation of G cached, then unmapped without a flush (the IOTLB keeps it).
    machine.ioMap(0, G, hpaOf(G), SZ_4K);
    machine.dma(0, G, 64, false);
    machine.ioUnmap(0, G, SZ_4K);
    expect(machine.device(0).iotlb.lookup(G)).toBeDefined();
    // A map of [G, G + 8K) installs G, collides at G + 4K and is undone.
    machine.ioMap(0, G + SZ_4K, hpaOf(G + 0x200_0000), SZ_4K);
    // (A frame 4K- but not 8K-aligned: the greedy map installs a 4K leaf at G first.)
    expect(iommu.map(0, G, hpaOf(G + 0x100_1000), 2 * SZ_4K)).toBe(false);
    expect(machine.device(0).s2.leafAt(G)).toBeUndefined();
    // iommu_unmap() synced the rolled-back range: the stale entry went with it.
    expect(machine.device(0).iotlb.lookup(G)).toBeUndefined();
    expect(machine.ioGathered(0)).toEqual([{ iova: G, len: SZ_4K }]);
  });
});

describe('contents', () => {
  it('a device write to a swiotlb slot, bounced by guestCopy, lands the same tokens in the private buffer', () => {
    const machine = newMachine([{ id: 0, trusted: false, iommu: 's2' }]);
    const slot = 0x100_0000 + 0x800; // a shared swiotlb slot (2K-aligned)
    const buffer = G + 0x800; // same offset within the 2K chunk, as swiotlb keeps it
    machine.nptMap(0x100_0000, hpaOf(0x100_0000), SZ_2M);
    machine.ioMap(0, 0x100_0000, hpaOf(0x100_0000), SZ_2M);
    makePrivate2M(machine, G);

    const dma = machine.dma(0, slot, 3 * 2048, true);
    expect(dma.ok).toBe(true);
    expect(dma.tokens).toHaveLength(3);
    const copy = machine.guestCopy(slot, false, buffer, true, 3 * 2048);
    expect(copy).toEqual({ ok: true, tokens: dma.tokens });
    for (const [i, token] of dma.tokens.entries()) expect(machine.memory.token(hpaOf(buffer) + i * 2048)).toBe(token);
    // And back: a guest write to the buffer, copied to the slot, is what the device reads.
    const written = machine.guestAccess(buffer, { write: true, private: true, len: 2048 });
    expect(written.ok).toBe(true);
    machine.guestCopy(buffer, true, slot, false, 2048);
    expect(machine.dma(0, slot, 2048, false).tokens).toEqual(written.ok ? written.tokens : []);
  });

  it('guestCopy stops at the first page that fails its check', () => {
    const machine = newMachine();
    makePrivate2M(machine, G);
    machine.nptMap(0x100_0000, hpaOf(0x100_0000), SZ_4K); // only one shared page mapped
    const result = machine.guestCopy(G, true, 0x100_0000, false, 2 * SZ_4K);
    expect(result).toMatchObject({ ok: false, copied: SZ_4K, fault: { kind: 'npf', reason: 'not present', addr: 0x100_0000 + SZ_4K } });
  });
});
