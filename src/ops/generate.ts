// The campaign generator: seedrandom-driven, writing plain op records. DESIGN.md measured
// fast-check arrays of op records at ~0.94M ops/s against ~7M ops/s for a seeded generator over
// the same vocabulary, so campaigns generate here and fast-check arbitraries (arbitrary.ts) serve
// property tests. Swarm testing (Groce et al.; Hypothesis FeatureFlags): each case enables a
// random subset of op kinds with random weights, so a common op cannot keep hiding a bug.

import seedrandom from 'seedrandom';
import { GMEM_BASE, LOW_RESERVED } from '../model/layout.ts';
import { SZ_1G, SZ_2M, SZ_4K } from '../model/size.ts';
import { edgesOf, type Edges } from './edges.ts';
import { OP_SPECS } from './schema.ts';
import type { Case, Config, DmaDirection, During, InnerOp, Op, OpName } from './types.ts';

export const DEFAULT_WEIGHTS: Readonly<Record<OpName, number>> = {
  accept: 10,
  share: 8,
  unshare: 6,
  touch: 8,
  alloc_coherent: 8,
  free_coherent: 4,
  map_single: 8,
  unmap_single: 4,
  sync: 3,
  tdi_accept: 5,
  tdi_unlock: 1,
  dma: 22,
  host_split: 3,
  host_sync: 6,
  hw_rmpupdate: 2,
  hw_psmash: 2,
  hw_map: 2,
  hw_unmap: 2,
  hw_host_write: 2,
};

/**
 * The `during` weight: the percentage of ops (those that make primitive calls: every kind but
 * `dma`) that get interleaved DMAs or touches. A `--weights` key like the op kinds, not an op;
 * `during=0` switches interleaving off.
 */
export const DEFAULT_DURING_WEIGHT = 25;

/** What `--weights` may pin: every op kind, and `during`. */
export type WeightKey = OpName | 'during';
export const WEIGHT_KEYS: readonly WeightKey[] = [...(Object.keys(DEFAULT_WEIGHTS) as OpName[]), 'during'];

export interface GenerateOptions {
  /** Maximum ops per case: most cases are short, a fraction reaches it (caseLength()). */
  steps: number;
  /** Every case runs all `steps` ops (tests that need state to build up in every case). */
  fullLength?: boolean;
  /** Swarm testing on (default) or every kind with its default weight. */
  swarm?: boolean;
  /** Kinds pinned by the user: always enabled with this weight (0 disables a kind); `during` too. */
  weights?: Partial<Record<WeightKey, number>>;
}

/** The seed of case `index` of a campaign: stable whatever the worker count or shard. */
export const caseSeed = (campaignSeed: string, index: number): string => `${campaignSeed}/${index}`;

type Rng = () => number;

/** The probability that swarm testing switches an unpinned op kind off for a case. */
const SWARM_OFF = 0.25;

/** The default of --steps: long enough for state to build up (conversions, splits, reused frames). */
export const DEFAULT_STEPS = 256;

/**
 * The most --steps (and fuzzProperty's steps) take: 10,000 ops per case is far past where
 * shrinking and explaining stay useful, a limit where more is meaningless rather than expensive.
 */
export const MAX_STEPS = 10_000;
/** The share of cases that run the full --steps; the others are short. */
const LONG_CASES = 0.1;

/**
 * Most cases are short (cheap, and a short failing case shrinks fast), with a mean of steps/8;
 * a tenth run all `steps` ops, so that state builds up (Hypothesis and syzkaller also favour short
 * programs while letting some grow long).
 */
export function caseLength(rng: Rng, steps: number): number {
  if (steps <= 1) return 1;
  if (rng() < LONG_CASES) return steps;
  return 1 + Math.floor(Math.min(steps - 1, -Math.log(1 - rng()) * (steps / 8)));
}

const DIRECTIONS: DmaDirection[] = ['to_device', 'from_device', 'bidirectional'];

function chooseWeights(rng: Rng, config: Config, options: GenerateOptions): { kinds: OpName[]; cumulative: number[] } {
  const kinds: OpName[] = [];
  const cumulative: number[] = [];
  let total = 0;
  for (const name of Object.keys(DEFAULT_WEIGHTS) as OpName[]) {
    if (OP_SPECS[name].actor === 'adversary' && config.adversary !== 'host') continue;
    const pinned = options.weights?.[name];
    let weight = pinned ?? DEFAULT_WEIGHTS[name];
    if (pinned === undefined && options.swarm !== false) {
      // Each unpinned kind is on with probability 3/4, at a weight scaled by 1/4..4. Groce et
      // al. switch features off with probability 1/2, but our bugs need several op kinds at
      // once (a bug needing k kinds survives only 2^-k of cases): bench/ measured plain
      // generation beating p = 1/2 on 10 of 13 planted bugs.
      weight = rng() < SWARM_OFF ? 0 : weight * 4 ** (rng() * 2 - 1);
    }
    if (weight <= 0) continue;
    total += weight;
    kinds.push(name);
    cumulative.push(total);
  }
  if (kinds.length === 0) {
    kinds.push('dma');
    cumulative.push(1);
  }
  return { kinds, cumulative };
}

/**
 * Addresses cluster where bugs live: a few "hot" 2M regions per case (so conversions, splits and
 * DMA meet in the same 2M RMP entry), their first and last pages, 1G boundaries, and addresses
 * the case already used.
 */
class AddressPicker {
  private readonly hot: number[] = [];
  private readonly used: number[] = [];
  /** Pages the case shared: where unshares and wild DMAs look first (a device that keeps using a
   *  buffer the driver gave back is the classic DMA use-after-free). */
  private readonly shared: number[] = [];
  constructor(
    private readonly rng: Rng,
    private readonly memory: number,
    private readonly edges: readonly number[],
    /** Also make the bottom 2M region hot: the guest's page allocator takes DMA buffers from there. */
    private readonly allocatorRegion = false,
  ) {
    const regions = Math.max(1, Math.floor(memory / SZ_2M));
    const count = 1 + Math.floor(rng() * 3);
    for (let i = 0; i < count; i++) this.hot.push(Math.floor(rng() * regions) * SZ_2M);
    if (allocatorRegion) this.hot.push(0);
  }

  page(): number {
    const r = this.rng();
    let gpa: number;
    if (r < 0.25 && this.used.length > 0) {
      gpa = this.used[Math.floor(this.rng() * this.used.length)] ?? 0;
    } else if (r < 0.85) {
      const base = this.hot[Math.floor(this.rng() * this.hot.length)] ?? 0;
      const edge = this.rng();
      const offset = edge < 0.3 ? 0 : edge < 0.4 ? SZ_2M - SZ_4K : Math.floor(this.rng() * 512) * SZ_4K;
      gpa = base + offset;
    } else if (r < 0.88 && this.memory > SZ_1G) {
      gpa = Math.floor(this.rng() * Math.floor(this.memory / SZ_1G)) * SZ_1G;
    } else if (r < 0.94) {
      // The ends of things: guest memory, vTOM, the swiotlb pool.
      gpa = this.edges[Math.floor(this.rng() * this.edges.length)] ?? 0;
    } else {
      gpa = Math.floor(this.rng() * Math.floor(this.memory / SZ_4K)) * SZ_4K;
    }
    // The low 1 MiB is never the guest's to convert or allocate from (reserve_real_mode()): fold
    // picks there onto the rest of the bottom 2M region, where the allocator's buffers live.
    if (gpa < LOW_RESERVED) gpa += LOW_RESERVED;
    if (this.used.length < 32) this.used.push(gpa);
    return Math.min(gpa, this.memory - SZ_4K);
  }

  region(): number {
    const gpa = this.page();
    return gpa - (gpa % SZ_2M);
  }

  /** A page to share, remembered. */
  toShare(): number {
    // With interleaving on, a third of the shares land among the DMA buffers: the allocator packs
    // them first fit from the end of the reserved low 1 MiB, and sharing a page beside a live
    // buffer is what smashes the 2M entry under it.
    const gpa = this.allocatorRegion && this.rng() < 1 / 3 ? Math.min(LOW_RESERVED + Math.floor(this.rng() * 128) * SZ_4K, this.memory - SZ_4K) : this.page();
    if (this.shared.length < 16) this.shared.push(gpa);
    return gpa;
  }

  /** A page the case shared, most of the time, else any page. */
  wasShared(): number {
    if (this.shared.length > 0 && this.rng() < 0.6) return this.shared[Math.floor(this.rng() * this.shared.length)] ?? 0;
    return this.page();
  }
}

const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)] as T;
const smallInt = (rng: Rng, max: number): number => Math.floor(rng() * max);

function generateOp(name: OpName, rng: Rng, config: Config, addresses: AddressPicker, edges: Edges): Op {
  const dev = smallInt(rng, config.devices.length);
  switch (name) {
    case 'accept':
      return rng() < 0.6 ? { op: 'accept', gpa: addresses.region(), size: '2M' } : { op: 'accept', gpa: addresses.page(), size: '4K' };
    case 'share':
      return { op: 'share', gpa: addresses.toShare(), pages: rng() < 0.5 ? 1 : edges.pages(rng) };
    case 'unshare':
      return { op: 'unshare', gpa: addresses.wasShared(), pages: rng() < 0.5 ? 1 : edges.pages(rng) };
    case 'touch':
      return { op: 'touch', gpa: addresses.page(), write: rng() < 0.5 };
    case 'alloc_coherent':
      return rng() < 0.2
        ? { op: 'alloc_coherent', dev, bytes: edges.allocBytes(rng), atomic: true }
        : { op: 'alloc_coherent', dev, bytes: edges.allocBytes(rng) };
    case 'free_coherent':
      return { op: 'free_coherent', buf: smallInt(rng, 4) };
    case 'map_single':
      return rng() < 0.2
        ? { op: 'map_single', dev, bytes: edges.mapBytes(rng), align: pick(rng, [64, 4096]), dir: pick(rng, DIRECTIONS) }
        : { op: 'map_single', dev, bytes: edges.mapBytes(rng), dir: pick(rng, DIRECTIONS) };
    case 'unmap_single':
      return { op: 'unmap_single', map: smallInt(rng, 4) };
    case 'sync':
      return { op: 'sync', map: smallInt(rng, 4) };
    case 'tdi_accept':
    case 'tdi_unlock':
      return { op: name, dev };
    case 'dma': {
      const r = rng();
      const len = edges.dmaLen(rng);
      const write = rng() < 0.5;
      // An offset into the buffer reaches its end (past it, the DMA is no longer legitimate).
      const at = rng() < 0.2 ? { offset: edges.dmaOffset(rng) } : {};
      if (r < 0.4) return { op: 'dma', dev, buf: smallInt(rng, 4), ...at, len, write };
      if (r < 0.8) return { op: 'dma', dev, map: smallInt(rng, 4), ...at, len, write };
      return { op: 'dma', dev, iova: addresses.wasShared(), len, write };
    }
    case 'host_split':
      return { op: 'host_split', gpa: addresses.region() };
    case 'host_sync':
      return { op: 'host_sync' };
    // The adversary's raw ops aim at the guest_memfd frames behind hot guest addresses.
    case 'hw_rmpupdate':
      return {
        op: 'hw_rmpupdate',
        hpa: GMEM_BASE + addresses.page(),
        assigned: rng() < 0.5,
        asid: rng() < 0.8 ? 1 : 2,
        gpa: addresses.page(),
        size: rng() < 0.5 ? '4K' : '2M',
      };
    case 'hw_psmash':
      return { op: 'hw_psmash', hpa: GMEM_BASE + addresses.region() };
    case 'hw_map':
      return { op: 'hw_map', table: rng() < 0.5 ? 'npt' : 'iommu', gpa: addresses.page(), hpa: GMEM_BASE + addresses.page(), size: '4K' };
    case 'hw_unmap':
      return { op: 'hw_unmap', table: rng() < 0.5 ? 'npt' : 'iommu', gpa: addresses.page(), size: rng() < 0.5 ? '4K' : '2M' };
    case 'hw_host_write':
      return { op: 'hw_host_write', hpa: GMEM_BASE + addresses.page() };
  }
}

/** The chance (0..1) that an op of a case gets `during` entries: pinned, or swarmed like a kind. */
function duringChance(rng: Rng, options: GenerateOptions): number {
  const pinned = options.weights?.during;
  if (pinned !== undefined) return Math.min(1, pinned / 100);
  if (options.swarm === false) return DEFAULT_DURING_WEIGHT / 100;
  return rng() < SWARM_OFF ? 0 : Math.min(1, (DEFAULT_DURING_WEIGHT * 4 ** (rng() * 2 - 1)) / 100);
}

/**
 * The call counts an interleaved op runs at. A device keeps doing DMA while the host works, so an
 * entry often repeats at consecutive points (a burst), which covers every boundary between two
 * primitives on different tables of a short procedure at once: a page-size change records the
 * guest's faulting PVALIDATE or access (1), then the RMP PSMASH, the NPT zap, the IO split and the
 * IOTLB flush (2..5, in either order); a conversion adds its RMPUPDATEs and IO unmaps and maps.
 * The rest spreads over the op, and K >= n (after the last call) stays reachable.
 */
function duringAfters(rng: Rng): number[] {
  const r = rng();
  if (r < 0.6) {
    const start = smallInt(rng, 4);
    const span = 1 + smallInt(rng, 6);
    return Array.from({ length: span }, (_, i) => start + i);
  }
  if (r < 0.9) return [smallInt(rng, 24)];
  return [1000];
}

/**
 * One interleaved op: mostly a legitimate DMA against a live buffer or mapping (which must
 * succeed), else a wild DMA or a touch in the same 2M region as the outer op's target.
 */
/**
 * Interleaved DMAs are mostly the device's ordinary traffic into buffers the case made, which
 * must succeed: lengths that fit a small buffer, not the edge sizes top-level DMAs probe.
 */
const INNER_DMA_LENGTHS = [64, 512, 2048, 4096, 4096, 8192];

function generateInner(rng: Rng, config: Config, outer: Op, addresses: AddressPicker, live: LiveObjects): InnerOp {
  const dev = smallInt(rng, config.devices.length);
  const len = pick(rng, INNER_DMA_LENGTHS);
  const write = rng() < 0.5;
  const target = (outer as { gpa?: unknown }).gpa;
  const sameRegion = (): number => (typeof target === 'number' ? target - (target % SZ_2M) + smallInt(rng, 512) * SZ_4K : addresses.page());
  const r = rng();
  // A legitimate DMA: an object the case made, by the device it was made for (so it must succeed).
  // Objects of accepted TIO devices first: their DMA is checked against the RMP page size, so it is
  // the one a page-size change can break (DOMAIN.md "Races").
  const made = (kind: 'buf' | 'map'): { ref: number; dev: number } => {
    const objects = live[kind].map((d, ref) => ({ ref, dev: d }));
    const trusted = objects.filter((o) => live.accepted.has(o.dev));
    if (trusted.length > 0 && rng() < 0.7) return pick(rng, trusted);
    return objects.length > 0 && rng() < 0.8 ? pick(rng, objects) : { ref: smallInt(rng, 4), dev };
  };
  if (r < 0.45) {
    const { ref, dev: owner } = made('buf');
    return { op: 'dma', dev: owner, buf: ref, len, write };
  }
  if (r < 0.7) {
    const { ref, dev: owner } = made('map');
    return { op: 'dma', dev: owner, map: ref, len, write };
  }
  if (r < 0.9) return { op: 'dma', dev, iova: Math.min(sameRegion(), config.guestMemory - SZ_4K), len, write };
  return { op: 'touch', gpa: Math.min(sameRegion(), config.guestMemory - SZ_4K), write };
}

/**
 * The devices of the buffers and mappings the case made so far, in creation order (frees and
 * failures are not followed: references are taken modulo the live count at run time anyway).
 */
interface LiveObjects {
  buf: number[];
  map: number[];
  /** Devices a tdi_accept made TIO devices (and no tdi_unlock since): their DMA is the racy kind. */
  accepted: Set<number>;
}

/** One case from its seed: the same seed and options give the same ops in any process. */
export function generateCase(config: Config, seed: string, options: GenerateOptions): Case {
  const rng: Rng = seedrandom(seed);
  const { kinds, cumulative } = chooseWeights(rng, config, options);
  const total = cumulative[cumulative.length - 1] ?? 1;
  // Races need a page-size change where live buffers are: with interleaving on, the allocator's
  // region is hot too. (Pinned during=0 draws nothing here.)
  const interleave = duringChance(rng, options);
  const edges = edgesOf(config);
  const addresses = new AddressPicker(rng, config.guestMemory, edges.addresses, interleave > 0);
  const length = options.fullLength === true ? Math.max(1, options.steps) : caseLength(rng, options.steps);
  const ops: Op[] = [];
  const live: LiveObjects = { buf: [], map: [], accepted: new Set() };
  for (let i = 0; i < length; i++) {
    const target = rng() * total;
    let k = 0;
    while ((cumulative[k] ?? total) <= target) k++;
    const op = generateOp(kinds[k] ?? 'dma', rng, config, addresses, edges);
    if (op.op === 'alloc_coherent') live.buf.push(op.dev);
    else if (op.op === 'map_single') live.map.push(op.dev);
    else if (op.op === 'tdi_accept' && config.devices[op.dev]?.trusted === true) live.accepted.add(op.dev);
    else if (op.op === 'tdi_unlock') live.accepted.delete(op.dev);
    // A DMA makes one call of its own: nothing to race with.
    if (interleave > 0 && op.op !== 'dma' && rng() < interleave) {
      const during: During[] = [];
      const count = rng() < 0.8 ? 1 : 2;
      for (let j = 0; j < count; j++) {
        const inner = generateInner(rng, config, op, addresses, live);
        for (const after of duringAfters(rng)) during.push({ after, op: inner });
      }
      op.during = during;
    }
    ops.push(op);
  }
  return { config, seed, ops };
}
