// Edge-biased sizes, counts and addresses for the generator: bugs live at the boundaries (a
// buffer that is one byte over a page, the last page of the swiotlb pool, a DMA that crosses a 2M
// region, an address just under vTOM), so about half of the draws take a boundary value of the
// case's config and the rest spread log-uniformly over the whole range, as fast-check's bias
// does for integers (biasNumericRange: small ranges around the edges, then the full range).
// Everything is precomputed once per config: a draw is two or three rng() calls.

import { linuxAtomicPoolBytes, linuxSwiotlbPlacement } from '../guest/guest.ts';
import { IO_TLB_MAX_BYTES, swiotlbGeometry } from '../guest/swiotlb.ts';
import { SZ_2M, SZ_4K, alignDown } from '../model/size.ts';
import type { Config } from './types.ts';

type Rng = () => number;

/** The share of draws that take a boundary value. */
const EDGE_BIAS = 0.5;

/** 1 byte, a page and its neighbours, a 2M region and its neighbours. */
const PAGE_EDGES = [1, SZ_4K - 1, SZ_4K, SZ_4K + 1, SZ_2M - SZ_4K, SZ_2M, SZ_2M + SZ_4K];

export interface Edges {
  /** dma_alloc_coherent sizes: up to the swiotlb pool (which a coherent allocation may take whole). */
  allocBytes: (rng: Rng) => number;
  /** dma_map_single sizes: at most dma_max_mapping_size() (swiotlb's 256 KiB segment). */
  mapBytes: (rng: Rng) => number;
  /** DMA lengths and offsets into a buffer or mapping. */
  dmaLen: (rng: Rng) => number;
  dmaOffset: (rng: Rng) => number;
  /** Pages for share / unshare. */
  pages: (rng: Rng) => number;
  /** Addresses at the ends of things: guest memory, vTOM, the two usual ends of the swiotlb pool. */
  addresses: readonly number[];
}

/** A value from `edges` with probability EDGE_BIAS, else log-uniform in [1, max]. */
function biased(edges: readonly number[], max: number): (rng: Rng) => number {
  const inRange = [...new Set(edges.filter((e) => e >= 1 && e <= max))];
  const logMax = Math.log(max);
  return (rng) => {
    if (inRange.length > 0 && rng() < EDGE_BIAS) return inRange[Math.floor(rng() * inRange.length)] as number;
    return Math.max(1, Math.min(max, Math.round(Math.exp(rng() * logMax))));
  };
}

/** A campaign generates every case from one config object: compute its edges once. */
const cache = new WeakMap<Config, Edges>();

export function edgesOf(config: Config): Edges {
  let edges = cache.get(config);
  if (edges === undefined) {
    edges = computeEdges(config);
    cache.set(config, edges);
  }
  return edges;
}

function computeEdges(config: Config): Edges {
  // The pool as Linux sizes it (whole segments, a power of two); a 2M-pool policy rounds to 2M.
  const pool = swiotlbGeometry({ bytes: config.swiotlb, cpus: config.cpus }).bytes;
  const atomic = linuxAtomicPoolBytes(config.guestMemory);
  const poolEdges = [pool - SZ_4K, pool, pool + SZ_4K, atomic - SZ_4K, atomic, atomic + SZ_4K];
  const mapMax = IO_TLB_MAX_BYTES;
  const dmaMax = Math.max(pool, SZ_2M + SZ_4K);
  const top = alignDown(Math.min(config.guestMemory, 4 * 1024 ** 3), SZ_2M);
  const lastPage = (end: number): number => Math.max(0, alignDown(end, SZ_4K) - SZ_4K);
  return {
    allocBytes: biased([...PAGE_EDGES, ...poolEdges, mapMax], pool + SZ_4K),
    mapBytes: biased([...PAGE_EDGES, mapMax - SZ_4K, mapMax - 2048, mapMax], mapMax),
    dmaLen: biased([...PAGE_EDGES, 64, 512, 2048, mapMax, ...poolEdges], dmaMax),
    dmaOffset: biased([SZ_4K - 1, SZ_4K, SZ_2M - SZ_4K, SZ_2M, mapMax - SZ_4K, pool - SZ_4K, atomic - SZ_4K], pool),
    pages: biased([1, 2, 511, 512, 513, pool / SZ_4K, 253], pool / SZ_4K + 1),
    addresses: [
      lastPage(config.guestMemory),
      lastPage(config.vtom),
      config.vtom,
      // Linux places the pool just under the top of low memory (20K of boot allocations above
      // it); a 2M-aligned pool ends at the 2M boundary below that. Its start comes from the
      // placement itself: a pool larger than low memory starts at 0, never below it.
      lastPage(top - 5 * SZ_4K),
      lastPage(top - SZ_2M),
      linuxSwiotlbPlacement(config.guestMemory, pool).base,
    ],
  };
}
