// Linux's memory layout as the guest model lays it out: the low 1 MiB kept from the page allocator
// (reserve_real_mode()), and the three atomic pools of kernel/dma/pool.c, picked by the device's
// coherent DMA mask (dma_direct_optimal_gfp_mask(), dma_guess_pool()) and grown once an
// allocation leaves one with less than atomic_pool_size free (atomic_pool_work_fn()).

import { describe, expect, it } from 'vitest';
import type { Guest } from '../../src/guest/guest.ts';
import { zoneForMask } from '../../src/guest/guest.ts';
import { LOW_RESERVED } from '../../src/model/layout.ts';
import { SZ_4K, makeWorld } from '../helpers/world.ts';

const K128 = 128 * 1024;
const guestOf = (world: ReturnType<typeof makeWorld>): Guest => world.guest as Guest;

describe('memory layout', () => {
  it('keeps the low 1 MiB out of the page allocator and refuses to convert it', () => {
    const world = makeWorld();
    const step = world.apply({ op: 'share', gpa: 0x8000, pages: 2 }, 0);
    expect(step.skipped).toMatch(/low 1 MiB.*reserve_real_mode/);
    expect(step.calls).toEqual([]);
    for (let i = 0; i < 20; i++) world.apply({ op: 'alloc_coherent', dev: 1, bytes: SZ_4K }, 1 + i);
    expect(Math.min(...world.guest.buffers.map((b) => b.gpa))).toBeGreaterThanOrEqual(LOW_RESERVED);
  });

  it('creates the kernel, DMA and DMA32 atomic pools at boot, shared, above the low 1 MiB', () => {
    const world = makeWorld();
    const pools = guestOf(world).atomicPoolRanges;
    expect(pools).toEqual([
      { zone: 'kernel', base: 0x100000, bytes: K128 },
      { zone: 'dma', base: 0x100000 + K128, bytes: K128 },
      { zone: 'dma32', base: 0x100000 + 2 * K128, bytes: K128 },
    ]);
    for (const pool of pools) {
      for (let gpa = pool.base; gpa < pool.base + pool.bytes; gpa += SZ_4K) expect(world.guest.page(gpa / SZ_4K)?.shared).toBe(true);
    }
    expect(world.apply({ op: 'share', gpa: 0x100000 + K128, pages: 1 }, 0).skipped).toMatch(/atomic DMA pool/);
  });

  it('picks the pool by the coherent DMA mask', () => {
    expect([24, 30, 32, 33, 64].map(zoneForMask)).toEqual(['dma', 'dma32', 'dma32', 'kernel', 'kernel']);
    const world = makeWorld({
      devices: [
        { id: 0, trusted: false, iommu: 's2', dmaMask: 24 },
        { id: 1, trusted: false, iommu: 's2', dmaMask: 32 },
        { id: 2, trusted: false, iommu: 's2' },
      ],
    });
    const pools = guestOf(world).atomicPoolRanges;
    const zoneOf = (gpa: number): string | undefined => pools.find((p) => gpa >= p.base && gpa < p.base + p.bytes)?.zone;
    for (const dev of [0, 1, 2]) world.apply({ op: 'alloc_coherent', dev, bytes: SZ_4K, atomic: true }, dev);
    expect(world.guest.buffers.map((b) => zoneOf(b.gpa))).toEqual(['dma', 'dma32', 'kernel']);
  });

  it('grows a pool by its size once an allocation leaves less than atomic_pool_size free', () => {
    const world = makeWorld();
    const step = world.apply({ op: 'alloc_coherent', dev: 1, bytes: SZ_4K, atomic: true }, 0);
    const kernel = guestOf(world).atomicPoolRanges.filter((p) => p.zone === 'kernel');
    expect(kernel).toHaveLength(2);
    const grown = kernel[1]!;
    expect(grown.bytes).toBe(K128);
    // The new chunk was made shared in the same step (set_memory_decrypted() in atomic_pool_expand()).
    expect(step.guestEvents.some((e) => e.kind === 'psc' && e.to === 'shared' && e.gpa === grown.base)).toBe(true);
    expect(world.guest.page(grown.base / SZ_4K)?.shared).toBe(true);
    // Another allocation leaves 252K of 256K free: no growth.
    world.apply({ op: 'alloc_coherent', dev: 1, bytes: SZ_4K, atomic: true }, 1);
    expect(guestOf(world).atomicPoolRanges.filter((p) => p.zone === 'kernel')).toHaveLength(2);
  });

  it('rejects a coherent mask outside 24..64 bits as a config error naming the field', () => {
    expect(() => makeWorld({ devices: [{ id: 0, trusted: false, iommu: 's2', dmaMask: 16 }] })).toThrow(/config\.devices\[0\]\.dmaMask/);
  });
});
