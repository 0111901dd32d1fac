// A small seeded generator of guest, device and host ops for long runs of the clean policies:
// addresses cluster in a few 2M regions (where the allocator also puts DMA buffers), so
// conversions, splits and DMA keep meeting in the same RMP entries.

import seedrandom from 'seedrandom';
import type { Config, DmaDirection, Op } from '../../src/ops/types.ts';

const SZ_4K = 4096;
const SZ_2M = 2 * 1024 * 1024;
const BYTES = [64, 512, 2048, 4096, 4096, 8192, 16384, 65536, 262144, SZ_2M];
const DIRS: DmaDirection[] = ['to_device', 'from_device', 'bidirectional'];

export function randomOps(config: Config, seed: string, count: number): Op[] {
  const rng = seedrandom(seed);
  const int = (n: number): number => Math.floor(rng() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;
  const regions = Math.floor(config.guestMemory / SZ_2M);
  // The first regions hold the atomic pool and the buffers; add a few random ones.
  const hot = [0, 1, 2, 3, int(regions), int(regions)];
  const page = (): number => {
    const base = pick(hot) * SZ_2M;
    const r = rng();
    const offset = r < 0.2 ? 0 : r < 0.3 ? SZ_2M - SZ_4K : int(512) * SZ_4K;
    return Math.min(base + offset, config.guestMemory - SZ_4K);
  };
  const dev = (): number => int(config.devices.length);
  const ops: Op[] = [];
  for (let i = 0; i < count; i++) {
    const r = rng() * 100;
    if (r < 7) ops.push(rng() < 0.5 ? { op: 'accept', gpa: pick(hot) * SZ_2M, size: '2M' } : { op: 'accept', gpa: page(), size: '4K' });
    else if (r < 14) ops.push({ op: 'share', gpa: page(), pages: rng() < 0.7 ? 1 : 1 + int(600) });
    else if (r < 19) ops.push({ op: 'unshare', gpa: page(), pages: rng() < 0.7 ? 1 : 1 + int(600) });
    else if (r < 25) ops.push({ op: 'touch', gpa: page(), write: rng() < 0.5 });
    else if (r < 33) ops.push({ op: 'alloc_coherent', dev: dev(), bytes: pick(BYTES), ...(rng() < 0.2 ? { atomic: true } : {}) });
    else if (r < 37) ops.push({ op: 'free_coherent', buf: int(8) });
    else if (r < 45) ops.push({ op: 'map_single', dev: dev(), bytes: pick(BYTES.slice(0, 9)), dir: pick(DIRS), ...(rng() < 0.3 ? { align: pick([8, 64, 512]) } : {}) });
    else if (r < 49) ops.push({ op: 'unmap_single', map: int(8) });
    else if (r < 52) ops.push({ op: 'sync', map: int(8) });
    else if (r < 55) ops.push({ op: 'tdi_accept', dev: dev() });
    else if (r < 56) ops.push({ op: 'tdi_unlock', dev: dev() });
    else if (r < 85) {
      const len = pick([64, 512, 4096, 8192]);
      const write = rng() < 0.5;
      if (rng() < 0.5) ops.push({ op: 'dma', dev: dev(), buf: int(8), len, write, ...(rng() < 0.3 ? { offset: int(4) * 1024 } : {}) });
      else ops.push({ op: 'dma', dev: dev(), map: int(8), len, write });
    } else if (r < 90) ops.push({ op: 'host_split', gpa: pick(hot) * SZ_2M });
    else ops.push({ op: 'host_sync' });
  }
  return ops;
}
