// The operation vocabulary described as data: each op names its actor and its fields' kinds.
// One algorithm (codec.ts) parses, validates and encodes every op from this table, the generator
// draws fields by kind, and the minimizer simplifies fields by kind.

import type { InnerOp, OpName } from './types.ts';

export type FieldKind =
  /** A guest or host physical address, 4K-aligned: "0x200000" in files. */
  | 'addr'
  /** An IOVA a device uses; any byte address. */
  | 'iova'
  | 'pagesize'
  /** A count of 4K pages. */
  | 'pages'
  /** A byte count; "4K" or 4096 in files. */
  | 'bytes'
  | 'bool'
  /** A device id from the config. */
  | 'dev'
  /** An index into the live objects of a kind (taken modulo their count at run time). */
  | 'ref'
  | 'dir'
  | 'table'
  | 'asid'
  /** An alignment in bytes, a power of two. */
  | 'align';

export type Actor = 'guest' | 'device' | 'host' | 'adversary';

export interface FieldSpec {
  kind: FieldKind;
  optional?: boolean;
}

export interface OpSpec {
  actor: Actor;
  fields: Record<string, FieldSpec>;
  /** Exactly one of these fields must be present (dma: buf | map | iova). */
  oneOf?: readonly string[];
  description: string;
}

const req = (kind: FieldKind): FieldSpec => ({ kind });
const opt = (kind: FieldKind): FieldSpec => ({ kind, optional: true });

export const OP_SPECS: Record<OpName, OpSpec> = {
  accept: { actor: 'guest', fields: { gpa: req('addr'), size: req('pagesize') }, description: 'accept (PVALIDATE) memory' },
  share: { actor: 'guest', fields: { gpa: req('addr'), pages: req('pages') }, description: 'convert pages to shared' },
  unshare: { actor: 'guest', fields: { gpa: req('addr'), pages: req('pages') }, description: 'convert pages back to private' },
  touch: { actor: 'guest', fields: { gpa: req('addr'), write: req('bool') }, description: 'a guest CPU access' },
  alloc_coherent: {
    actor: 'guest',
    fields: { dev: req('dev'), bytes: req('bytes'), atomic: opt('bool') },
    description: 'dma_alloc_coherent',
  },
  free_coherent: { actor: 'guest', fields: { buf: req('ref') }, description: 'dma_free_coherent' },
  map_single: {
    actor: 'guest',
    fields: { dev: req('dev'), bytes: req('bytes'), align: opt('align'), dir: req('dir'), overMax: opt('bool') },
    description: 'dma_map_single (bounces through swiotlb for untrusted devices; overMax: a driver that ignores dma_max_mapping_size())',
  },
  unmap_single: { actor: 'guest', fields: { map: req('ref') }, description: 'dma_unmap_single' },
  sync: { actor: 'guest', fields: { map: req('ref') }, description: 'dma_sync_single_for_cpu' },
  tdi_accept: { actor: 'guest', fields: { dev: req('dev') }, description: 'accept a TIO device (TDI to RUN)' },
  tdi_unlock: { actor: 'guest', fields: { dev: req('dev') }, description: 'stop and unbind a TIO device' },
  dma: {
    actor: 'device',
    fields: { dev: req('dev'), buf: opt('ref'), map: opt('ref'), iova: opt('iova'), offset: opt('bytes'), len: req('bytes'), write: req('bool') },
    oneOf: ['buf', 'map', 'iova'],
    description: 'a device DMA against a buffer, a mapping or a raw IOVA',
  },
  host_split: { actor: 'host', fields: { gpa: req('addr') }, description: 'split the 2M backing of a GPA' },
  host_sync: { actor: 'host', fields: {}, description: "the host's flush point" },
  hw_rmpupdate: {
    actor: 'adversary',
    fields: { hpa: req('addr'), assigned: req('bool'), asid: req('asid'), gpa: req('addr'), size: req('pagesize'), immutable: opt('bool') },
    description: 'raw RMPUPDATE',
  },
  hw_psmash: { actor: 'adversary', fields: { hpa: req('addr') }, description: 'raw PSMASH' },
  hw_map: {
    actor: 'adversary',
    fields: { table: req('table'), gpa: req('addr'), hpa: req('addr'), size: req('pagesize') },
    description: 'raw NPT or IO S2 map',
  },
  hw_unmap: { actor: 'adversary', fields: { table: req('table'), gpa: req('addr'), size: req('pagesize') }, description: 'raw unmap' },
  hw_host_write: { actor: 'adversary', fields: { hpa: req('addr') }, description: 'a host CPU write' },
};


/**
 * The `during` field any top-level op may carry (DESIGN.md "Operations"; README "Races"):
 * `[{ after: K, op: <inner op> }, ...]`. K counts the outer op's own recorded primitive calls.
 */
export const DURING = {
  /** The ops that may race inside another op: a device DMA and a guest CPU access. */
  innerOps: ['dma', 'touch'] as readonly InnerOp['op'][],
  /** Far above any op's call count, so "after the last call" stays expressible. */
  maxAfter: 1_000_000,
  description: 'interleaved dma/touch ops, each run after the K-th primitive call the op records (0: before the first)',
} as const;
