// The operation vocabulary (DESIGN.md, "Operations"): plain data, so that a case can be generated,
// shrunk, written to a repro file and replayed without closures. Inside the simulator addresses
// and sizes are numbers of bytes; the repro file spells them as hex strings and "4K"/"2M" sizes.
// Resource references (`buf`, `map`) are indices into the live objects of that kind in creation
// order, taken modulo their count, so every subsequence of a case is still a valid case.

import type { PageSize } from '../model/size.ts';

export type DmaDirection = 'to_device' | 'from_device' | 'bidirectional';

export type GuestOp =
  | { op: 'accept'; gpa: number; size: PageSize }
  | { op: 'share'; gpa: number; pages: number }
  | { op: 'unshare'; gpa: number; pages: number }
  | { op: 'touch'; gpa: number; write: boolean }
  | { op: 'alloc_coherent'; dev: number; bytes: number; atomic?: boolean }
  | { op: 'free_coherent'; buf: number }
  | { op: 'map_single'; dev: number; bytes: number; align?: number; dir: DmaDirection; overMax?: boolean }
  | { op: 'unmap_single'; map: number }
  | { op: 'sync'; map: number }
  | { op: 'tdi_accept'; dev: number }
  | { op: 'tdi_unlock'; dev: number };

export type DeviceOp = {
  op: 'dma';
  dev: number;
  buf?: number;
  map?: number;
  iova?: number;
  offset?: number;
  len: number;
  write: boolean;
};

export type HostOp = { op: 'host_split'; gpa: number } | { op: 'host_sync' };

/** Raw hardware ops of a malicious host: only when the config says `"adversary": "host"`. */
export type AdversaryOp =
  | { op: 'hw_rmpupdate'; hpa: number; assigned: boolean; asid: number; gpa: number; size: PageSize; immutable?: boolean }
  | { op: 'hw_psmash'; hpa: number }
  | { op: 'hw_map'; table: 'npt' | 'iommu'; gpa: number; hpa: number; size: PageSize }
  | { op: 'hw_unmap'; table: 'npt' | 'iommu'; gpa: number; size: PageSize }
  | { op: 'hw_host_write'; hpa: number };

/** The ops that may race inside another op (DOMAIN.md "Races and interleavings"). */
export type InnerOp = DeviceOp | Extract<GuestOp, { op: 'touch' }>;

/**
 * One interleaved op (the `during` contract): `op` runs after the K-th primitive call the outer op
 * records (its `step.calls`, numbered 1..n, not counting the calls of interleaved ops and the host
 * work they trigger); 0 = before call 1, K >= n = after call n. Equal K run in array order.
 */
export interface During {
  after: number;
  op: InnerOp;
}

export type BaseOp = GuestOp | DeviceOp | HostOp | AdversaryOp;
/** Any top-level op may carry `during`; inner ops never do. */
export type Op = BaseOp & { during?: During[] };
export type OpName = Op['op'];


export interface DeviceConfig {
  id: number;
  /** The device can become a TIO device in RUN state through `tdi_accept`. */
  trusted: boolean;
  /** "s2": the host's IO page table only; "nested": a guest S1 (vIOMMU) over the host S2. */
  iommu: 's2' | 'nested';
  /**
   * The coherent DMA mask in bits (dma_set_coherent_mask()), 24 to 64; it picks the atomic pool
   * (dma_direct_optimal_gfp_mask(), dma_guess_pool()). Default 64.
   */
  dmaMask: number;
}

/** A case's config with every default filled in (the repro file may leave any field but arch out). */
/**
 * When QEMU discards a GPA's shared frame: on its conversion to private (kvm_convert_memory() ->
 * ram_block_discard_range(), the default), never (hugetlb-backed RAM), or not at all because one
 * guest_memfd frame backs the GPA in both states (in-place conversion).
 */
export type DiscardMode = 'on-private' | 'none' | 'in-place';

export interface Config {
  arch: 'snp';
  guestMemory: number;
  hugeBacking: boolean;
  devices: DeviceConfig[];
  swiotlb: number;
  cpus: number;
  vtom: number;
  hostPolicy: string;
  guestPolicy: string;
  adversary: 'none' | 'host';
  /** Which host frame backs a shared GPA (README "Discard worlds", DOMAIN.md "QEMU's memory"). */
  discard: DiscardMode;
}

/** A case is everything a run depends on: the same case gives the same events and verdict. */
export interface Case {
  config: Config;
  seed: string;
  ops: Op[];
}
