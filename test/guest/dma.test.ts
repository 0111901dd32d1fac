// The guest's DMA API: dma_alloc_coherent() from converted pages, the atomic pool or a for_alloc
// swiotlb pool; dma_map_single() bouncing through swiotlb, with the contents copied both ways;
// mapping errors when swiotlb is full; accepted TIO devices that neither bounce nor decrypt;
// vIOMMU S1 mappings.

import { describe, expect, it } from 'vitest';
import { expandTokenRuns, tokenRunsOf } from '../../src/model/token-runs.ts';
import type { GuestEvent } from '../../src/api.ts';
import { PolicyError } from '../../src/engine/world.ts';
import { IOVA_BASE } from '../../src/guest/allocator.ts';
import { SZ_2M, SZ_4K, countPrims, frameOf, makeWorld, run } from '../helpers/world.ts';

const SZ_2K = 2048;
const sharing = (events: readonly GuestEvent[]) => events.filter((e) => e.kind === 'psc' || e.kind === 'pvalidate');

describe('dma_alloc_coherent', () => {
  it('converts fresh pages to shared at 4K (linux)', () => {
    const world = makeWorld();
    const step = world.apply({ op: 'alloc_coherent', dev: 1, bytes: 8192 }, 0);
    const buffer = world.guest.buffers[0]!;
    expect(buffer).toMatchObject({ id: 0, dev: 1, bytes: 8192, source: 'pages', shared: true });
    expect(buffer.iova).toBe(buffer.gpa);
    expect(sharing(step.guestEvents)).toEqual([
      { kind: 'pvalidate', gpa: buffer.gpa, size: '4K', validate: false, status: 0 },
      { kind: 'pvalidate', gpa: buffer.gpa + SZ_4K, size: '4K', validate: false, status: 0 },
      { kind: 'psc', gpa: buffer.gpa, size: '4K', to: 'shared', done: true },
      { kind: 'psc', gpa: buffer.gpa + SZ_4K, size: '4K', to: 'shared', done: true },
    ]);
    expect(world.guest.page(buffer.gpa / SZ_4K)?.shared).toBe(true);
    expect(world.host.backing(buffer.gpa)?.shared).toBe(true);
    const dma = world.apply({ op: 'dma', dev: 1, buf: 0, len: 8192, write: true }, 1).dmas[0]!;
    expect(dma).toMatchObject({ legit: true, target: { kind: 'buf', id: 0 } });
    expect(dma.result.ok).toBe(true);
  });

  it('converts an aligned 2M allocation with one 2M entry', () => {
    const world = makeWorld();
    const step = world.apply({ op: 'alloc_coherent', dev: 1, bytes: SZ_2M }, 0);
    const buffer = world.guest.buffers[0]!;
    expect(buffer.gpa % SZ_2M).toBe(0);
    // accept_memory() of the fresh block, then dma_set_decrypted().
    expect(step.guestEvents.filter((e) => e.kind === 'psc')).toEqual([
      { kind: 'psc', gpa: buffer.gpa, size: '2M', to: 'private', done: true },
      { kind: 'psc', gpa: buffer.gpa, size: '2M', to: 'shared', done: true },
    ]);
    expect(countPrims(step, 'psmash')).toBe(0);
  });

  it('serves atomic requests from the pre-shared atomic pool', () => {
    const world = makeWorld();
    // Boot made the kernel pool shared: 128K right above the reserved low 1 MiB.
    expect(world.guest.page(0x100000 / SZ_4K)?.shared).toBe(true);
    const step = world.apply({ op: 'alloc_coherent', dev: 1, bytes: 4096, atomic: true }, 0);
    expect(world.guest.buffers[0]).toMatchObject({ source: 'atomic-pool', gpa: 0x100000, shared: true });
    // The buffer itself needed no conversion; what the step shared is the pool growing
    // (test/guest/layout.test.ts), never the buffer's page.
    expect(sharing(step.guestEvents).some((e) => e.gpa <= 0x100000 && 0x100000 < e.gpa + (e.size === '2M' ? SZ_2M : SZ_4K))).toBe(false);
  });

  it('converts the pages back to private on free, and reuses them', () => {
    const world = makeWorld();
    world.apply({ op: 'alloc_coherent', dev: 1, bytes: 4096 }, 0);
    const gpa = world.guest.buffers[0]!.gpa;
    const step = world.apply({ op: 'free_coherent', buf: 0 }, 1);
    expect(sharing(step.guestEvents).map((e) => e.kind)).toEqual(['psc', 'pvalidate']);
    expect(world.guest.page(gpa / SZ_4K)).toMatchObject({ shared: false, validated: true, converting: false });
    expect(world.guest.buffers).toEqual([]);
    world.apply({ op: 'alloc_coherent', dev: 1, bytes: 4096 }, 2);
    expect(world.guest.buffers[0]).toMatchObject({ id: 1, gpa });
  });

  it('leaks the pages when they cannot be made private again', () => {
    let refuse = false;
    const world = makeWorld(
      {},
      { host: { name: 'refuses', description: 'refuses conversions to private when asked', convert: (ctx, r) => (refuse && r.to === 'private' ? 0 : ctx.kvm.defaultConvert(r)) } },
    );
    world.apply({ op: 'alloc_coherent', dev: 1, bytes: 4096 }, 0);
    const gpa = world.guest.buffers[0]!.gpa;
    refuse = true;
    const step = world.apply({ op: 'free_coherent', buf: 0 }, 1);
    expect(step.result).toMatch(/leaked/);
    expect(world.guest.leaked.has(gpa / SZ_4K)).toBe(true);
    refuse = false;
    world.apply({ op: 'alloc_coherent', dev: 1, bytes: 4096 }, 2);
    expect(world.guest.buffers[0]!.gpa).not.toBe(gpa);
  });

  it('reports a guest policy that picks a source it did not set up', () => {
    const world = makeWorld({}, { guest: { name: 'no-pool', description: 'swiotlb without for_alloc', coherentSource: () => 'swiotlb' } });
    expect(() => world.apply({ op: 'alloc_coherent', dev: 1, bytes: 4096 }, 0)).toThrow(PolicyError);
  });

  it('smashes the edges of the page-aligned boot pool (linux)', () => {
    const world = makeWorld();
    expect(world.guest.swiotlb.base % SZ_2M).not.toBe(0);
    expect(world.boot.calls.filter((c) => c.prim === 'psmash').length).toBeGreaterThanOrEqual(2);
  });

  it('serves coherent memory from a 2M-aligned swiotlb pool without smashing (linux-2m-pool)', () => {
    const world = makeWorld({ guestPolicy: 'linux-2m-pool' });
    const pool = world.guest.swiotlb;
    expect(pool.base % SZ_2M).toBe(0);
    expect((pool.end - pool.base) % SZ_2M).toBe(0);
    // Boot shared the pool in whole 2M entries and made no atomic pool.
    const pscs = world.boot.guestEvents.filter((e) => e.kind === 'psc');
    expect(pscs.length).toBeGreaterThan(0);
    expect(pscs.every((e) => e.kind === 'psc' && e.size === '2M')).toBe(true);
    expect(world.boot.calls.some((c) => c.prim === 'psmash')).toBe(false);
    const steps = run(world, [
      { op: 'alloc_coherent', dev: 1, bytes: 8192 },
      { op: 'alloc_coherent', dev: 1, bytes: 1024 * 1024 },
      { op: 'alloc_coherent', dev: 1, bytes: 4096, atomic: true },
    ]);
    for (const step of steps) expect(sharing(step.guestEvents)).toEqual([]);
    const [small, large, atomic] = world.guest.buffers;
    expect(small).toMatchObject({ source: 'swiotlb', shared: true });
    expect(small!.gpa % 8192).toBe(0);
    expect(large!.gpa % SZ_2M).toBe(0);
    expect(atomic!.source).toBe('swiotlb');
    for (const buffer of world.guest.buffers) expect(buffer.gpa >= pool.base && buffer.gpa < pool.end).toBe(true);
    expect(world.counters.psmash).toBe(0);
  });
});

describe('dma_map_single through swiotlb', () => {
  it('bounces what the guest wrote to the slot, and what the device wrote back on sync and unmap', () => {
    const world = makeWorld();
    const map = world.apply({ op: 'map_single', dev: 1, bytes: 4096, dir: 'bidirectional' }, 0);
    const mapping = world.guest.mappings[0]!;
    expect(mapping.tlbAddr).toBeDefined();
    expect(mapping.iova).toBe(mapping.tlbAddr);
    const tlb = mapping.tlbAddr!;
    expect(tlb >= world.guest.swiotlb.base && tlb < world.guest.swiotlb.end).toBe(true);
    expect(map.guestEvents.find((e) => e.kind === 'bounce')).toEqual({ kind: 'bounce', map: 0, from: mapping.orig, to: tlb, len: 4096 });
    const origToken = (off: number) => world.memory.token(frameOf(world, mapping.orig + off));
    const slotToken = (off: number) => world.memory.token(frameOf(world, tlb + off));
    expect(origToken(0)).toBeGreaterThan(0);
    expect([slotToken(0), slotToken(SZ_2K)]).toEqual([origToken(0), origToken(SZ_2K)]);

    // The device reads what the guest wrote, then writes the buffer.
    const read = world.apply({ op: 'dma', dev: 1, map: 0, len: 4096, write: false }, 1).dmas[0]!;
    expect(read.tokens).toEqual([origToken(0), origToken(SZ_2K)]);
    const write = world.apply({ op: 'dma', dev: 1, map: 0, len: 4096, write: true }, 2).dmas[0]!;
    expect(write.result.ok).toBe(true);
    expect(origToken(0)).not.toBe(write.tokens[0]);
    const sync = world.apply({ op: 'sync', map: 0 }, 3);
    expect(sync.guestEvents.find((e) => e.kind === 'bounce')).toEqual({ kind: 'bounce', map: 0, from: tlb, to: mapping.orig, len: 4096 });
    expect([origToken(0), origToken(SZ_2K)]).toEqual(write.tokens);

    const again = world.apply({ op: 'dma', dev: 1, map: 0, len: 2048, offset: 2048, write: true }, 4).dmas[0]!;
    world.apply({ op: 'unmap_single', map: 0 }, 5);
    expect(origToken(SZ_2K)).toBe(again.tokens[0]);
    expect(world.guest.mappings).toEqual([]);
    expect([...world.guest.swiotlb.liveMappings()]).toEqual([]);
  });

  it('records a DMA\'s tokens as runs: a write is one pair, tokens and JSON give them chunk by chunk (API 4)', () => {
    const world = makeWorld();
    world.apply({ op: 'map_single', dev: 1, bytes: 16384, dir: 'bidirectional' }, 0);
    const write = world.apply({ op: 'dma', dev: 1, map: 0, len: 16384, write: true }, 1).dmas[0]!;
    const first = write.tokenRuns![0]!;
    expect(write.tokenRuns).toEqual([first, 8]);
    expect(write.tokens).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((i) => first + i));
    // The device writes the fifth chunk again: a read through the mapping is three runs.
    world.apply({ op: 'dma', dev: 1, map: 0, offset: 8192, len: 2048, write: true }, 2);
    const read = world.apply({ op: 'dma', dev: 1, map: 0, len: 16384, write: false }, 3).dmas[0]!;
    const touched = read.tokens[4]!;
    expect(touched).toBeGreaterThan(first + 7);
    expect(read.tokenRuns).toEqual([first, 4, touched, 1, first + 5, 3]);
    expect(read.tokens).toEqual(expandTokenRuns(read.tokenRuns!));
    // As API 3's plain record: `tokens` an own enumerable property, after `legit`, in JSON, a
    // spread and a structured clone (an oracle may put the record in a finding's details).
    expect(Object.keys(write)).toEqual(['dev', 'iova', 'len', 'write', 'legit', 'tokens', 'tokenRuns', 'result', 'target']);
    expect(Object.getPrototypeOf(write)).toBe(Object.prototype);
    const json = JSON.parse(JSON.stringify(write)) as { tokens: number[]; tokenRuns: number[] };
    expect(json.tokens).toEqual(write.tokens);
    expect(json.tokenRuns).toEqual(write.tokenRuns);
    expect({ ...write }.tokens).toEqual(write.tokens);
    expect(structuredClone(write).tokens).toEqual(write.tokens);
    expect(tokenRunsOf(read.tokens)).toEqual(read.tokenRuns);
  });

  it('does not copy back a to_device mapping', () => {
    const world = makeWorld();
    world.apply({ op: 'map_single', dev: 1, bytes: 4096, dir: 'to_device' }, 0);
    const step = world.apply({ op: 'unmap_single', map: 0 }, 1);
    expect(step.guestEvents.filter((e) => e.kind === 'bounce')).toEqual([]);
  });

  it('keeps the low bits of an aligned original buffer under min_align_mask', () => {
    const world = makeWorld({}, { guest: { name: 'nvme', description: 'NVMe-like devices', dmaAttrs: () => ({ minAlignMask: 0xfff }) } });
    world.apply({ op: 'map_single', dev: 1, bytes: 512, align: 64, dir: 'to_device' }, 0);
    const mapping = world.guest.mappings[0]!;
    expect(mapping.orig % SZ_4K).toBe(64);
    expect(mapping.tlbAddr! % SZ_4K).toBe(64);
  });

  it('returns a DMA mapping error when swiotlb is full, without corrupting anything', () => {
    const world = makeWorld({ swiotlb: '256K', cpus: 1 });
    const steps = run(world, [
      { op: 'map_single', dev: 1, bytes: 256 * 1024, dir: 'to_device' },
      { op: 'map_single', dev: 1, bytes: 4096, dir: 'from_device' },
    ]);
    expect(steps[0]!.result).toBeUndefined();
    expect(steps[1]!.result).toMatch(/DMA mapping error/);
    expect(world.guest.mappings).toHaveLength(1);
    expect([...world.guest.swiotlb.liveMappings()]).toHaveLength(1);
    const pool = world.guest.swiotlb as unknown as { checkInvariants(): string[] };
    expect(pool.checkInvariants()).toEqual([]);
    run(world, [{ op: 'unmap_single', map: 0 }, { op: 'map_single', dev: 1, bytes: 4096, dir: 'from_device' }], 2);
    expect(world.guest.mappings).toHaveLength(1);
    expect(world.guest.mappings[0]!.id).toBe(1);
  });

  it('maps the bounce slot in the guest S1 of a vIOMMU device', () => {
    const world = makeWorld({ devices: [{ id: 0, trusted: false, iommu: 'nested' }] });
    world.apply({ op: 'map_single', dev: 0, bytes: 4096, dir: 'bidirectional' }, 0);
    const mapping = world.guest.mappings[0]!;
    expect(mapping.iova).toBeGreaterThanOrEqual(IOVA_BASE);
    expect(world.devices[0]!.s1!.iovaToPhys(mapping.iova)).toBe(mapping.tlbAddr);
    const dma = world.apply({ op: 'dma', dev: 0, map: 0, len: 4096, write: true }, 1).dmas[0]!;
    expect(dma.result.ok).toBe(true);
    expect(dma.result.pieces[0]!.s1Size).toBe(SZ_4K);
    world.apply({ op: 'unmap_single', map: 0 }, 2);
    expect(world.devices[0]!.s1!.leafAt(mapping.iova)).toBeUndefined();
  });
});

describe('accepted TIO devices', () => {
  it('neither bounce nor decrypt: DMA goes straight to private memory', () => {
    const world = makeWorld({ hostPolicy: 'cut-on-convert' });
    const steps = run(world, [
      { op: 'tdi_accept', dev: 0 },
      { op: 'map_single', dev: 0, bytes: 8192, dir: 'bidirectional' },
      { op: 'alloc_coherent', dev: 0, bytes: 4096 },
      { op: 'dma', dev: 0, map: 0, len: 8192, write: true },
      { op: 'dma', dev: 0, buf: 0, len: 4096, write: true },
    ]);
    expect(world.guest.tdiAccepted(0)).toBe(true);
    expect(world.devices[0]!.tdi).toBe('run');
    const mapping = world.guest.mappings[0]!;
    expect(mapping.tlbAddr).toBeUndefined();
    expect(mapping.iova).toBe(mapping.orig);
    expect(steps[1]!.guestEvents.some((e) => e.kind === 'bounce')).toBe(false);
    expect(world.guest.buffers[0]).toMatchObject({ source: 'private', shared: false });
    expect(sharing(steps[2]!.guestEvents).filter((e) => e.kind === 'psc' && e.to === 'shared')).toEqual([]);
    for (const step of steps.slice(3)) expect(step.dmas[0]!.result.ok).toBe(true);
    expect(world.host.backing(mapping.orig)?.shared).toBe(false);
  });

  it('skips untrusted devices and releases the driver\'s DMA objects around the state change', () => {
    const world = makeWorld();
    expect(world.apply({ op: 'tdi_accept', dev: 1 }, 0).skipped).toMatch(/not a TDISP device/);
    run(world, [{ op: 'alloc_coherent', dev: 0, bytes: 4096 }, { op: 'map_single', dev: 0, bytes: 4096, dir: 'to_device' }, { op: 'alloc_coherent', dev: 1, bytes: 4096 }], 1);
    world.apply({ op: 'tdi_accept', dev: 0 }, 4);
    expect(world.guest.buffers.map((b) => b.dev)).toEqual([1]);
    expect(world.guest.mappings).toEqual([]);
    expect(world.apply({ op: 'tdi_accept', dev: 0 }, 5).skipped).toMatch(/already/);
    world.apply({ op: 'tdi_unlock', dev: 0 }, 6);
    expect(world.devices[0]!.tdi).toBe('unlocked');
    expect(world.guest.tdiAccepted(0)).toBe(false);
  });
});
