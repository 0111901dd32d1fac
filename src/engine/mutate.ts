// Cases derived from corpus cases (issue 16). mutateCase: syzkaller-style mutations
// (prog/mutation.go: insert, remove, splice, mutate an argument) on our op records: insert a fresh
// op (half of the time moved into a region the case uses), append a few, remove one, duplicate
// one, repeat a block, splice two cases, move an argument to an edge value (a 2M region's first or
// last page, a whole region, one page, a 2M size), and add or move a `during` interleaving.
// continueCase: the case, then a fresh case's ops (aimed at the objects it made, and half of the
// time moved into its regions). remixCase: a fresh case with the case's op-kind
// mix. New ops come from the seeded generator (generate.ts), so they follow its address
// clustering. Every edited op goes through the file codec (encodeOp/parseOp): a mutant is always a
// case a repro file can hold and replay.

import seedrandom from 'seedrandom';
import { SZ_1G, SZ_2M, SZ_4K } from '../model/size.ts';
import { encodeOp, parseOp } from '../ops/codec.ts';
import { FormatError } from '../ops/errors.ts';
import { DEFAULT_WEIGHTS, type GenerateOptions, generateCase } from '../ops/generate.ts';
import type { Case, Op } from '../ops/types.ts';

type Rng = () => number;

export const MUTATIONS = ['insert', 'extend', 'remove', 'duplicate', 'repeat', 'splice', 'edge-arg', 'add-during', 'move-during'] as const;
export type Mutation = (typeof MUTATIONS)[number];

const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)] as T;
const at = (rng: Rng, length: number): number => Math.floor(rng() * length);

/** Edge values of a guest address: the region's first and last page, 1G and memory boundaries. */
function edgeAddress(rng: Rng, gpa: number, memory: number): number {
  const region = gpa - (gpa % SZ_2M);
  const value = pick(rng, [region, region + SZ_2M - SZ_4K, region + SZ_2M, region - SZ_4K, gpa - (gpa % SZ_1G), memory - SZ_4K, 0]);
  return Math.max(0, Math.min(value, memory - SZ_4K));
}

/** One argument of `op` moved toward an edge value; undefined when the op has none to move. */
function edgeArgument(rng: Rng, op: Op, memory: number): Op | undefined {
  const copy = { ...op } as Record<string, unknown>;
  const keys = Object.keys(copy).filter((k) => ['gpa', 'pages', 'size', 'bytes', 'len', 'buf', 'map', 'iova', 'offset', 'align'].includes(k));
  if (keys.length === 0) return undefined;
  const key = pick(rng, keys);
  const value = copy[key];
  switch (key) {
    case 'gpa':
    case 'iova':
      copy[key] = edgeAddress(rng, value as number, memory);
      break;
    case 'pages':
      copy[key] = pick(rng, [1, 2, 511, 512, 513]);
      break;
    case 'size':
      copy[key] = value === '2M' ? '4K' : '2M';
      if (copy[key] === '2M' && typeof copy.gpa === 'number') copy.gpa = copy.gpa - (copy.gpa % SZ_2M);
      break;
    case 'bytes':
    case 'len':
      copy[key] = pick(rng, [1, 64, SZ_4K - 1, SZ_4K, SZ_4K + 1, 2 * SZ_4K, 256 * 1024, SZ_2M]);
      break;
    case 'buf':
    case 'map':
      copy[key] = pick(rng, [0, 1, (value as number) + 1, Math.max(0, (value as number) - 1)]);
      break;
    case 'offset':
      copy[key] = pick(rng, [0, 1, SZ_4K - 64, SZ_4K]);
      break;
    case 'align':
      copy[key] = pick(rng, [64, SZ_4K, SZ_2M]);
      break;
  }
  return copy as Op;
}

/** Ops made by the generator from a derived seed (insertions, new interleavings): a few, not a whole case. */
function freshOps(testCase: Case, seed: string, generate: GenerateOptions, during: boolean): Op[] {
  const options: GenerateOptions = { ...generate, steps: FRESH_OPS, fullLength: true, ...(during ? { weights: { ...generate.weights, during: 100 } } : {}) };
  return generateCase(testCase.config, seed, options).ops;
}

/** Ops per batch of fresh ops. */
const FRESH_OPS = 8;

/**
 * `op` moved into the 2M region of an address the case already uses (same offset in the region),
 * as syzkaller reuses a program's resources for a new call: a fresh op from the generator picks
 * its own hot regions, which a parent's state (a smashed region, a shared page) rarely shares.
 */
function retarget(rng: Rng, op: Op, ops: readonly Op[], testCase: Case): Op {
  const key = 'gpa' in op ? 'gpa' : 'iova' in op ? 'iova' : undefined;
  if (key === undefined) return op;
  const used = ops.flatMap((o) => ('gpa' in o && typeof o.gpa === 'number' ? [o.gpa] : 'iova' in o && typeof o.iova === 'number' ? [o.iova] : []));
  if (used.length === 0) return op;
  const target = pick(rng, used);
  const base = target - (target % SZ_2M);
  const value = (op as Record<string, unknown>)[key] as number;
  const moved = { ...op, [key]: base + (value % SZ_2M) };
  return valid(moved, testCase) ?? op;
}

/** Is `op` valid for `testCase`'s config as the repro codec sees it? (Round trip through the file form.) */
function valid(op: Op, testCase: Case): Op | undefined {
  try {
    return parseOp(JSON.parse(JSON.stringify(encodeOp(op))) as unknown, 'op', testCase.config);
  } catch (error) {
    if (error instanceof FormatError) return undefined;
    throw error;
  }
}

/**
 * Applies `count` random mutations to `parent` (never changing it). `donor` is another corpus case
 * with the same config, for splicing. The result keeps the parent's config and seed: the seed
 * drives the world's own randomness, the ops are what changed. Deterministic in `seed`.
 */
export function mutateCase(parent: Case, seed: string, generate: GenerateOptions, donor?: Case, count = 1 + Math.floor(seedrandom(`${seed}/n`)() * 3)): Case {
  const rng: Rng = seedrandom(seed);
  let ops = parent.ops.slice();
  const maxOps = Math.max(generate.steps, 1);
  for (let round = 0; round < count; round++) {
    const mutation = pick(rng, MUTATIONS);
    const i = at(rng, ops.length);
    switch (mutation) {
      case 'insert': {
        const fresh = freshOps(parent, `${seed}/${round}/insert`, generate, false);
        const op = fresh[at(rng, fresh.length)];
        if (op) ops.splice(at(rng, ops.length + 1), 0, rng() < 0.5 ? retarget(rng, op, ops, parent) : op);
        break;
      }
      case 'extend': {
        // New ops after the parent's end: from the state the parent reached (go on exploring
        // from a new situation), in its regions half of the time.
        const fresh = freshOps(parent, `${seed}/${round}/extend`, generate, false).slice(0, 1 + at(rng, FRESH_OPS));
        const moved = rng() < 0.5;
        ops.push(...(moved ? fresh.map((op) => retarget(rng, op, ops, parent)) : fresh));
        break;
      }
      case 'remove':
        if (ops.length > 1) ops.splice(i, 1);
        break;
      case 'duplicate':
        if (ops[i]) ops.splice(at(rng, ops.length + 1), 0, ops[i]);
        break;
      case 'repeat': {
        // A block of ops once more right after itself: a conversion round trip, a map/unmap pair
        // again. Counts (round trips, conversions so far) are not in the features, so the
        // corpus cannot climb them one feature at a time.
        const length = 1 + at(rng, Math.min(8, ops.length - i));
        const times = 1 + at(rng, 3);
        const block = ops.slice(i, i + length);
        for (let t = 0; t < times; t++) ops.splice(i + length, 0, ...block);
        break;
      }
      case 'splice':
        if (donor && donor.ops.length > 0) {
          const cut = at(rng, ops.length + 1);
          const from = at(rng, donor.ops.length);
          ops = [...ops.slice(0, cut), ...donor.ops.slice(from)];
        }
        break;
      case 'edge-arg': {
        const op = ops[i];
        const changed = op && edgeArgument(rng, op, parent.config.guestMemory);
        const checked = changed && valid(changed, parent);
        if (checked) ops[i] = checked;
        break;
      }
      case 'add-during': {
        const op = ops[i];
        // A pinned `during=0` means no interleaving at all: mutations honour it like generation.
        if (!op || op.op === 'dma' || op.op.startsWith('hw_') || generate.weights?.during === 0) break;
        const donors = freshOps(parent, `${seed}/${round}/during`, generate, true).filter((o) => o.during && o.during.length > 0);
        const entries = donors[at(rng, donors.length)]?.during;
        if (entries) ops[i] = { ...op, during: [...(op.during ?? []), ...entries] };
        break;
      }
      case 'move-during': {
        const op = ops[i];
        if (!op?.during || op.during.length === 0) break;
        const during = op.during.slice();
        const j = at(rng, during.length);
        const entry = during[j]!;
        during[j] = { ...entry, after: pick(rng, [0, 1, 2, 3, Math.max(0, entry.after - 1), entry.after + 1, 1000]) };
        ops[i] = { ...op, during };
        break;
      }
    }
  }
  if (ops.length > maxOps) ops = ops.slice(0, maxOps);
  return { config: parent.config, seed: parent.seed, ops };
}

/**
 * The parent's ops, then a fresh case's (its own length, swarm weights and all): exploration
 * that starts from the situation the parent reached instead of from boot (Go-Explore's "return,
 * then explore"; syzkaller appends calls to corpus programs). The new ops use the buffers and
 * mappings the parent made, and half of the time they are moved into its regions: that is where
 * its situation is. Deterministic in `seed`.
 */
export function continueCase(parent: Case, seed: string, generate: GenerateOptions, probe = false): Case {
  const rng: Rng = seedrandom(seed);
  const fresh = generateCase(parent.config, `${seed}/continue`, generate).ops;
  // The objects live after the parent: the probes read them, then aimAtObjects() follows its ops on.
  const live = new LiveObjects();
  for (const op of parent.ops) live.follow(op);
  // A user who pinned `dma` to 0 gets no DMA op from a probe either.
  const probes = probe && generate.weights?.dma !== 0 ? probeDmas(live, parent) : [];
  const moved = aimAtObjects(rng, live, rng() < 0.5 ? fresh.map((op) => retarget(rng, op, parent.ops, parent)) : fresh);
  return { config: parent.config, seed: parent.seed, ops: [...parent.ops, ...probes, ...moved].slice(0, Math.max(generate.steps, 1)) };
}

/** Probes per near miss: the newest objects, where the situation the parent reached last is. */
const PROBES = 2;

/**
 * A DMA read by its own device over the whole of each of the newest live objects of `parent`, as
 * far as its ops show them (LiveObjects guesses: where an allocation failed the guest's index names
 * another object, and the DMA is a wild one, which dma-liveness does not judge): the DMA a near
 * miss is one away from. Each goes through the file codec, so a probe is an op a repro can hold.
 */
function probeDmas(live: LiveObjects, parent: Case): Op[] {
  const probes: Op[] = [];
  for (const kind of ['buf', 'map'] as const) {
    const list = live[kind];
    for (let ref = list.length - 1; ref >= Math.max(0, list.length - PROBES); ref--) {
      const object = list[ref]!;
      const op = valid({ op: 'dma', dev: object.dev, [kind]: ref, len: object.bytes, write: false }, parent);
      if (op !== undefined) probes.push(op);
    }
  }
  return probes;
}

/**
 * The buffers and mappings a case has live after each of its ops, as the devices they were made
 * for, in creation order: the guest's lists that `buf` and `map` references index (modulo their
 * length, guest.ts). Followed from the ops alone: an alloc or map that fails at run time is
 * counted, and so is a tdi op the guest skips, so an index is a guess; the guest's modulo keeps any
 * guess a live object.
 */
class LiveObjects {
  readonly buf: { dev: number; bytes: number }[] = [];
  readonly map: { dev: number; bytes: number }[] = [];

  /** The lists after `op`. */
  follow(op: Op): void {
    const drop = (list: unknown[], ref: number): void => {
      if (list.length > 0) list.splice(((ref % list.length) + list.length) % list.length, 1);
    };
    switch (op.op) {
      case 'alloc_coherent':
        this.buf.push({ dev: op.dev, bytes: op.bytes });
        break;
      case 'map_single':
        this.map.push({ dev: op.dev, bytes: op.bytes });
        break;
      case 'free_coherent':
        drop(this.buf, op.buf);
        break;
      case 'unmap_single':
        drop(this.map, op.map);
        break;
      case 'tdi_accept':
      case 'tdi_unlock':
        // The driver is unbound while the TDI changes state: the device's objects go (guest.ts unbind()).
        for (const list of [this.buf, this.map]) for (let i = list.length - 1; i >= 0; i--) if (list[i]!.dev === op.dev) list.splice(i, 1);
        break;
      default:
        break;
    }
  }
}

/**
 * `ops`, appended to `parent`, with their object references aimed at objects live at that point,
 * the newest most often (syzkaller passes a new call a resource an earlier call of the program
 * made): a fresh op's `buf`/`map` is a small number that, once the parent holds more than a few
 * objects, never reaches the ones it made last, where its latest situation is. A DMA through an
 * object is made by the device the object was made for, as a driver does: another device's DMA is
 * not a legitimate use of it.
 */
function aimAtObjects(rng: Rng, live: LiveObjects, ops: readonly Op[]): Op[] {
  return ops.map((op) => {
    const kind = 'buf' in op ? 'buf' : 'map' in op ? 'map' : undefined;
    let aimed = op;
    const list = kind === undefined ? [] : live[kind];
    if (kind !== undefined && list.length > 0) {
      // Newest first: object k from the end with probability 2^-(k+1).
      let back = 0;
      while (back < list.length - 1 && rng() < 0.5) back++;
      const ref = list.length - 1 - back;
      aimed = { ...op, [kind]: ref, ...(op.op === 'dma' ? { dev: list[ref]!.dev } : {}) };
    }
    live.follow(aimed);
    return aimed;
  });
}

/**
 * A fresh case (new seed: new addresses, order and length) with the parent's op-kind mix as its
 * weights: the swarm configuration that reached the parent's rare features, tried again. Kinds
 * the user pinned keep their pinned weight; the rest are off unless the parent used them.
 */
export function remixCase(parent: Case, seed: string, generate: GenerateOptions): Case {
  const weights: Record<string, number> = {};
  for (const op of parent.ops) weights[op.op] = (weights[op.op] ?? 0) + 1;
  const pinned = generate.weights ?? {};
  for (const name of Object.keys(DEFAULT_WEIGHTS)) if (!(name in weights)) weights[name] = 0;
  const options: GenerateOptions = { ...generate, swarm: false, weights: { ...weights, ...pinned } };
  return generateCase(parent.config, seed, options);
}

