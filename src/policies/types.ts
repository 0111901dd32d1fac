// The policy contract (DESIGN.md, "Plugins"): what a user writes, in one file, to describe how a
// hypervisor or a guest kernel manages page sizes. A policy is a plain object `{ name,
// description, ...hooks }`; every hook is optional and defaults to what KVM + QEMU + Linux do
// today. The actors (src/host, src/guest) call the hooks at their decision points; a hook acts
// only through the hardware primitives (`ctx.machine`) and the small documented helpers on its
// context, and draws randomness only from `ctx.random()` (seeded from the case seed), so a case
// replays exactly.
//
// Built-in policies (src/policies/*.ts) are written against this file exactly as a user's would.

import type { Config, DmaDirection } from '../ops/types.ts';
import type { CoherentBuffer, GuestPage, StreamingMapping } from '../api.ts';
import type { SwiotlbSlotSearch, SwiotlbSlotsView } from '../guest/swiotlb.ts';
import type { Machine } from '../model/machine.ts';
import type { PageSize } from '../model/size.ts';

// =============================================================================================
// Host

/** A guest #NPF on a private access (or a private PVALIDATE) that the host must resolve. */
export interface PrivateFault {
  /** The faulting GPA, 4K-aligned. */
  gpa: number;
  write: boolean;
  /**
   * not-present: no NPT translation; rmp: the RMP check failed (the reason says why, e.g.
   * "npt 4K over rmp 2M"); sizem: a 4K PVALIDATE on a 2M RMP entry (PFERR_GUEST_SIZEM).
   */
  kind: 'not-present' | 'rmp' | 'sizem';
  reason: string;
  /**
   * The largest NPT level this fault may use before the folio and the RMP are looked at: 2M when
   * the whole 2M GFN range has uniform (private) memory attributes and lies in guest memory
   * (KVM's lpage_info / kvm_range_has_memory_attributes()), else 4K.
   */
  maxLevel: PageSize;
}

/** One guest page-state change the host must carry out (snp_begin_psc() -> KVM_HC_MAP_GPA_RANGE). */
export interface ConvertRequest {
  gpa: number;
  /** Bytes, a multiple of 4K: adjacent PSC entries of one op and size are coalesced, as KVM does. */
  len: number;
  to: 'shared' | 'private';
  /**
   * The PSC entries' page size. A 2M entry already partly done counts as 4K and goes alone (KVM's
   * snp_begin_psc() forces it to 4K and coalesces nothing after it in practice), although the
   * page-size flag KVM passes to the VMM in KVM_HC_MAP_GPA_RANGE still says 2M (from the entry).
   */
  pageSize: PageSize;
}

/**
 * A 2M RMP entry must become 512 4K entries (the one decision point of every RMP page-size change:
 * a SIZEM or RMP #NPF, a conversion of part of a 2M range, host_split). The hook runs before the
 * PSMASH and performs the whole change: RMP, NPT, IO page tables, IOTLB. Devices keep doing DMA
 * between any two of its primitive calls (README "Races: `during`").
 */
export interface SmashRequest {
  /** The 2M-aligned GPA of the region. */
  gpa: number;
  /** The guest_memfd frame of the region: the 2M RMP entry to PSMASH. */
  hpa: number;
  /** fault: a SIZEM or RMP #NPF (sev_handle_rmp_fault()); convert: part of the range changes state
   *  (sev_gmem_invalidate()); split: the host splits the folio (host_split). */
  cause: 'fault' | 'convert' | 'split';
  /**
   * What happens to the NPT's 2M leaf: KVM zaps it (faults, conversions) or splits it
   * (host_split); `keep` leaves it to the caller, who changes the NPT itself (a caller that never
   * does leaves NPT[2M] over RMP[4K], which npt-rmp-size reports).
   */
  npt: NptSmash;
  /** Every device: the ones whose S2 or IOTLB may reach the region are among them. */
  devices: readonly number[];
}

/**
 * The steps of KVM + QEMU's conversion (defaultConvert), for a policy that leaves one out: zap-npt
 * (setting the memory attributes zaps the NPT), smash (PSMASH of 2M entries the range covers in
 * part), io-unmap (the old view's IO mappings go), rmp (rmp_make_shared() of the guest_memfd
 * frames), io-map (the new shared frames are mapped in the shared view). The host's own
 * bookkeeping of what backs each page is kept either way.
 */
export type ConvertStep = 'zap-npt' | 'smash' | 'io-unmap' | 'rmp' | 'io-map';

/** What a smash does to the NPT's 2M leaf over the region. */
export type NptSmash = 'zap' | 'split' | 'keep';

/** One range an IO unmap gathered for invalidation (iommu_iotlb_gather). */
export interface GatheredRange {
  iova: number;
  len: number;
}

export interface SplitRequest {
  /** The 2M-aligned GPA whose guest_memfd folio the host splits. */
  gpa: number;
}

/**
 * A change of what the host backs, for the IO page tables to follow. `devices` lists the devices
 * whose S2 shows this kind of memory: a trusted device in RUN sees the private view (the
 * guest_memfd frames), every other device the shared view (research/amd-snp.md section 5: "each
 * IOMMUFD instance is all-private or all-shared").
 */
export type IoEvent =
  /** The host now backs [gpa, gpa + len) with frames hpa.. (contiguous). */
  | { kind: 'map'; gpa: number; len: number; hpa: number; shared: boolean; devices: readonly number[] }
  /** The backing of [gpa, gpa + len) goes away (a conversion discards it). */
  | { kind: 'unmap'; gpa: number; len: number; shared: boolean; devices: readonly number[] }
  /** The 2M RMP entry at the 2M-aligned `gpa` was PSMASHed into 4K entries. */
  | { kind: 'smash'; gpa: number; devices: readonly number[] }
  /** Device `dev`'s S2 switches to another view (its TDI went to RUN, or back to unlocked). */
  | { kind: 'attach'; dev: number; view: 'private' | 'shared' };

/** What the host believes backs a GPA (the HostView's answer). */
export interface HostBacking {
  hpa: number;
  shared: boolean;
  folioSize: PageSize;
}

export interface HostContext {
  readonly config: Config;
  /** The name of the policy being run. */
  readonly policy: string;
  /** The policy's own per-case state; see GuestContext.state. */
  readonly state: Record<string, unknown>;
  /** The hardware primitives. Every call counts against the step's work budget. */
  readonly machine: Machine;
  /** A seeded stream in [0, 1): the same case gives the same numbers. Never use Math.random. */
  random(): number;
  /** The frame the host backs `gpa` with, undefined when it backs nothing there (yet). */
  backing(gpa: number): HostBacking | undefined;
  /** The guest_memfd frame of `gpa` (private memory lives at a fixed offset of the GPA). */
  gmemFrame(gpa: number): number;
  /**
   * The frame of the VMM's RAM block for `gpa` (QEMU's memory backend as mapped at start, what a
   * VFIO map at start pins). Whether a shared page is backed by it is the config's `discard` world:
   * until the GPA's first conversion to private ("on-private"), always ("none"); with "in-place"
   * there is no RAM block and this is the guest_memfd frame.
   */
  vmmFrame(gpa: number): number;
  /** The guest_memfd folio size over `gpa` (2M with hugeBacking until split, else 4K). */
  folioSize(gpa: number): PageSize;
  /** KVM's own handling, for hooks that change one detail and delegate the rest. */
  readonly kvm: KvmHelpers;
  /** The VMM's IOMMU (VFIO/iommufd) helpers. */
  readonly iommu: IommuHelpers;
}

export interface KvmHelpers {
  /**
   * KVM's private fault: a SIZEM fault (or an NPT 4K over a 2M RMP) is answered with PSMASH and
   * a zap of the 2M NPT range (sev_handle_rmp_fault()); a missing page is prepared from
   * guest_memfd with a 2M RMP entry only if the folio is 2M and the whole 2M frame range is
   * unassigned (is_large_rmp_possible()), else 4K, announced to the IO side with a `map` event,
   * and mapped in the NPT at min(fault level, folio, RMP level) (sev_gmem_max_mapping_level()).
   * `maxSize` caps the RMP and NPT size (a host that never builds 2M entries).
   */
  defaultPrivateFault(fault: PrivateFault, options?: { maxSize?: PageSize }): void;
  /**
   * KVM + QEMU kvm_convert_memory(): set the memory attributes (zapping the NPT), and to shared:
   * PSMASH partial 2M entries, `unmap` the private view, rmp_make_shared() the guest_memfd frames
   * (discarding them), back the range with new VMM frames and `map` them in the shared view; to
   * private: `unmap` and discard the VMM frames, and fault private memory in lazily (or now, with
   * `eager`). Only pages whose attribute changes are touched.
   */
  defaultConvert(request: ConvertRequest, options?: { eager?: boolean; skip?: readonly ConvertStep[] }): void;
  /** Split the 2M folio and smash a 2M RMP entry (through the policy's `smash` hook). */
  defaultSplit(request: SplitRequest): void;
  /**
   * KVM's page-size change: PSMASH the RMP entry, then zap or split the NPT's 2M leaf
   * (smashNpt), then send the `smash` event to the policy's `io` hook. Not hitless: a device's DMA
   * between the PSMASH and the IO side's change sees S2[2M] over RMP[4K]. Returns the status.
   */
  defaultSmash(request: SmashRequest): number;
  /** KVM's NPT side of a smash: zap the 2M leaf over the region, split it to 4K leaves, or keep it. */
  smashNpt(gpa: number, npt: NptSmash): void;
  /**
   * Smash the 2M RMP entry over the 2M-aligned `gpa`, if it is one, through the policy's `smash`
   * hook (or defaultSmash). Returns 0 when the entry is 4K afterwards. Not from the smash hook.
   */
  psmash(gpa: number, options?: { npt?: NptSmash }): number;
  /**
   * Split the guest_memfd folio of the 2M region over `gpa` into 4K folios (what a huge folio split
   * in guest_memfd does); the RMP and the NPT are not touched. False when it was already 4K.
   * defaultSplit is splitFolio, then psmash with the NPT leaf split.
   */
  splitFolio(gpa: number): boolean;
  /** Remove every NPT leaf intersecting [gpa, gpa + len) (whole leaves, as KVM zaps SPTEs). */
  zapNpt(gpa: number, len: number): void;
}

export interface IommuHelpers {
  /** What VFIO/iommufd does for each event: map and unmap exactly the range (unmap then flush),
   *  nothing on `smash`, and a rebuild of the device's S2 on `attach`. */
  defaultIo(event: IoEvent): void;
  /** The devices, with the view their S2 shows now. */
  devices(): readonly { id: number; trusted: boolean; view: 'private' | 'shared' }[];
  /** ioMap, rolled back (and false) on error. */
  map(dev: number, gpa: number, hpa: number, len: number): boolean;
  /**
   * Like map, but never builds an S2 leaf larger than the RMP entry of the private frames below:
   * a 2M leaf only over a 2M RMP entry, 4K leaves elsewhere.
   */
  mapFollowingRmp(dev: number, gpa: number, hpa: number, len: number): boolean;
  /** Remove the leaves starting in [gpa, gpa + len), one by one (a leaf that starts before the
   *  range stays: iommupt never splits). Returns the bytes unmapped. Does not flush. */
  unmap(dev: number, gpa: number, len: number): number;
  /** Split (machine.ioSplit, atomic) every leaf larger than `size` that straddles a boundary of
   *  [gpa, gpa + len), so the range can then be unmapped exactly: down the path to the boundary
   *  (a leaf above 2M first into 2M leaves, then the one holding the boundary into `size`). */
  cut(dev: number, gpa: number, len: number, size: number): void;
  /**
   * The driver's iotlb_sync for one device (gathered invalidations and deferred frees); VFIO
   * then releases the pins of what was unmapped on the device since its last flush. `ranges`
   * invalidates those instead of what was gathered (a driver that loses or clips a range: the
   * gather is emptied, the table pages freed and the pins released all the same).
   */
  flush(dev: number, options?: { ranges?: readonly GatheredRange[] }): void;
  /** The ranges unmaps gathered on `dev` since its last flush, in order (not taken). */
  pending(dev: number): readonly GatheredRange[];
  /**
   * INVALIDATE_IOMMU_PAGES for [iova, iova + len) on `dev` now, outside any flush (it empties no
   * gather and releases no pin). Returns how many IOTLB entries went.
   */
  invalidate(dev: number, iova: number, len: number): number;
  /**
   * Release now the pins of the IO mappings unmapped on `dev` since its last flush
   * (vfio_unpin_pages_remote()). The flush already does this after the IOTLB invalidation, as VFIO
   * type1 does; calling it before the flush is the bug that ordering avoids: a freed frame stays
   * reachable through the IOTLB (dma-after-free).
   */
  releasePins(dev: number): void;
  /** Empty the device's S2 and map everything the host backs in the device's current view. */
  mirror(dev: number, options?: { followRmp?: boolean }): void;
}

export interface HostPolicy {
  name: string;
  description: string;
  /**
   * The file this object is defined in (`module: import.meta.url`): a repro written by
   * fuzzProperty then names the file when it lies inside the repro's own directory tree, so
   * `cocofuzz replay` and `explain` can load it; otherwise the repro's message names the flag.
   */
  module?: string;
  /**
   * The IO page sizes (bytes) of every device's S2 domain (the page-size bitmap the IOMMU driver
   * gives the domain). Default: 4K only, as upstream does for SEV-SNP (amd_iommu=nohugepages).
   */
  ioPageSizes?: readonly number[];
  /**
   * Declares that `io` does nothing with a `map`, `unmap` or `smash` event whose `devices` is
   * empty (as `ctx.iommu.defaultIo` and a hook that loops over `event.devices`). The host may then
   * leave such events out: pages faulted in one by one while no device sees private memory run as
   * one block of calls, where a hook between them would need each page on its own (issue 15).
   * Leave it out if your hook keeps a record of events no device sees.
   */
  ioIgnoresUnseen?: boolean;
  /**
   * Declares that `io` answers a private `map` event of one 4K page (`shared` false, `len` 4096)
   * by mapping that page at 4K in each device of `event.devices`, in that order, with
   * `ctx.iommu.map` or `ctx.iommu.mapFollowingRmp`, and does nothing else with it (as
   * `ctx.iommu.defaultIo` and follow-rmp's hook do). The host may then prepare pages a trusted
   * device in RUN sees as one block of calls: an #NPF, the RMPUPDATE, an io_map per device, an
   * npt_map and the PVALIDATE again for each page, without the hook in between (issue 15). Leave
   * it out if your hook does anything else with such an event: it then hears every page.
   */
  ioMapsPages?: boolean;
  /**
   * The largest size the default `privateFault` maps a private page at, and the largest RMP entry
   * it prepares a new guest_memfd page with (sev_gmem_prepare()): '4K' is KVM without huge folios,
   * where sev_gmem_max_mapping_level() caps the NPT at 4K. The same as a hook that calls
   * `ctx.kvm.defaultPrivateFault(fault, { maxSize })`, as data: pages faulted in one by one then
   * run as one block of calls (no hook between them), so a 1 TiB guest's 1G swiotlb pool boots in
   * runs, not 262,144 faults (issue 15). Not with a `privateFault` hook: pass `maxSize` there.
   */
  privateFaultMaxSize?: PageSize;
  /** Once, when the VM starts, before the guest boots (a static VFIO map goes here). */
  start?(ctx: HostContext): void;
  /** A private #NPF. Default: ctx.kvm.defaultPrivateFault(fault). */
  privateFault?(ctx: HostContext, fault: PrivateFault): void;
  /**
   * A page-state change. Return the bytes completed from the start of the request (fewer than
   * asked makes KVM return to the guest with cur_entry/cur_page advanced that far, and the guest
   * asks again); nothing means all. Default: ctx.kvm.defaultConvert(request).
   */
  convert?(ctx: HostContext, request: ConvertRequest): number | void;
  /**
   * Every change of a 2M RMP entry to 4K, before the PSMASH: the hook performs the change.
   * Default: ctx.kvm.defaultSmash(request) (PSMASH, zap the NPT range, the `smash` IO event).
   */
  smash?(ctx: HostContext, request: SmashRequest): void;
  /** The host splits a 2M folio (host_split). Default: ctx.kvm.defaultSplit(request). */
  split?(ctx: HostContext, request: SplitRequest): void;
  /** The IO page tables' decision point. Default: ctx.iommu.defaultIo(event). */
  io?(ctx: HostContext, event: IoEvent): void;
  /** The host's flush point (host_sync). Default: iommuFlush on every device. */
  flush?(ctx: HostContext): void;
}

// =============================================================================================
// Guest

export interface GuestContext {
  readonly config: Config;
  readonly policy: string;
  /**
   * The policy's own per-case state: a plain object, empty when the world boots, that the hooks
   * may keep anything in for the rest of the case (not a module-level variable, which would leak
   * between cases). Boot runs once per config and policies in a process and each case gets a
   * copy of the booted world with this state as boot left it (engine/boot-cache.ts): keep data
   * here (objects, arrays, Maps, Sets, typed arrays, class instances); a function in it makes the
   * pairing boot every case.
   */
  readonly state: Record<string, unknown>;
  random(): number;
  /** The guest's state of one 4K frame. */
  page(gfn: number): GuestPage | undefined;
  tdiAccepted(dev: number): boolean;
}

export interface SwiotlbPlacement {
  /** Guest physical start, page-aligned. */
  base: number;
  /** Requested bytes (Linux rounds the slot count; the pool may come out larger). */
  bytes: number;
  /** The pool also serves dma_alloc_coherent() (io_tlb_mem.for_alloc). Default false. */
  forAlloc?: boolean;
}

export type CoherentSource = 'atomic-pool' | 'pages' | 'swiotlb' | 'private';

export interface CoherentRequest {
  dev: number;
  bytes: number;
  /** A non-blocking (GFP_ATOMIC) request. */
  atomic: boolean;
  /** The device is an accepted TIO device: it reaches private memory directly. */
  accepted: boolean;
}

export interface ConversionRequest {
  to: 'shared' | 'private';
  /** accept: memory acceptance (snp_accept_memory()); convert: set_memory_{en,de}crypted(). */
  purpose: 'accept' | 'convert';
  /** The caller's range [gpa, gpa + len): 4K-aligned, what __set_pages_state() was asked to change. */
  gpa: number;
  len: number;
}

export type ConversionStep = 'rescind' | 'psc' | 'validate';

export interface DmaAttrs {
  /** dma_get_min_align_mask(dev). Default 0. */
  minAlignMask?: number;
  /** dma_get_seg_boundary(dev). Default 0xffffffff (a PCI device). */
  segmentBoundaryMask?: number;
  /**
   * The alloc_align_mask the caller passes to swiotlb_tbl_map_single(), a power of two minus one:
   * the first slot is aligned to it. Default 0 (dma_direct_map_page() -> swiotlb_map()), or the
   * IOVA granule - 1 (4K - 1) for a device behind a vIOMMU (iommu_dma_map_page() bouncing with
   * iova_mask()).
   */
  allocAlignMask?: number;
}

/**
 * What the guest does when a 2M PVALIDATE comes back FAIL_SIZEMISMATCH (the RMP holds the range
 * as 4K entries). pval_pages() (arch/x86/coco/sev/core.c): 'retry-4k', validate the 2M range as
 * 512 4K pages. 'success' treats the status as done (the pages stay unvalidated); 'fail' treats it
 * as any other failure (Linux would then terminate the guest).
 */
export type SizeMismatchAction = 'retry-4k' | 'success' | 'fail';

/**
 * How dma_free_coherent() gives back a buffer of converted pages (source 'pages').
 * dma_direct_free() (kernel/dma/direct.c): 'encrypt', dma_set_encrypted() the pages, then free
 * them, or leak them if that fails. 'leak' keeps them shared and never reuses them; 'free-shared'
 * hands them back to the page allocator still shared (a bug: the next owner gets memory the host
 * can read and write).
 */
export type CoherentFreeAction = 'encrypt' | 'leak' | 'free-shared';

/** One swiotlb bounce copy the DMA API may make for a streaming mapping. */
export interface BounceRequest {
  map: StreamingMapping;
  /**
   * map: swiotlb_tbl_map_single() copying the original into the slot; unmap:
   * swiotlb_tbl_unmap_single() copying the slot back; sync: dma_sync_single_for_cpu().
   */
  when: 'map' | 'unmap' | 'sync';
}

/** The kernel's answer to a BounceRequest (swiotlb_bounce() callers in kernel/dma/swiotlb.c). */
export function linuxBounces(request: BounceRequest): boolean {
  // swiotlb_tbl_map_single() bounces whatever the direction ("preserve the original's data if the
  // device does a partial write", aa6f8dcbab47); unmap and sync for the CPU copy back only what
  // the device may have written.
  return request.when === 'map' || request.map.dir !== 'to_device';
}

export interface GuestPolicy {
  name: string;
  description: string;
  /**
   * The file this object is defined in (`module: import.meta.url`): a repro written by
   * fuzzProperty then names the file when it lies inside the repro's own directory tree, so
   * `cocofuzz replay` and `explain` can load it; otherwise the repro's message names the flag.
   */
  module?: string;
  /**
   * Where the boot swiotlb pool goes. `bytes` is the config's size after Linux's rounding (whole
   * segments, a power of two); the pool must lie inside guest memory. Default (Linux
   * swiotlb_memblock_alloc()): page-aligned just below the top of low memory, not 2M-aligned,
   * not for_alloc.
   */
  swiotlbPool?(ctx: GuestContext, request: { guestMemory: number; bytes: number; cpus: number }): SwiotlbPlacement;
  /** Bytes of the atomic pool made shared at boot (0: none). Default: Linux's 128K per GiB, 128K..4M. */
  atomicPoolBytes?(ctx: GuestContext, request: { guestMemory: number }): number;
  /**
   * Where a dma_alloc_coherent() buffer comes from. Default (dma_direct_alloc()): private pages
   * for an accepted TIO device, the atomic pool for atomic requests, else fresh pages converted
   * to shared.
   */
  coherentSource?(ctx: GuestContext, request: CoherentRequest): CoherentSource;
  /**
   * The size of one PVALIDATE or PSC entry at `gpa` with `remaining` bytes to go. Default
   * (__set_pages_state(), pval_pages()): 2M when `gpa` is 2M-aligned and 2M remain, else 4K.
   */
  pageSize?(ctx: GuestContext, request: { gpa: number; remaining: number; purpose: 'accept' | 'convert' }): PageSize;
  /**
   * The steps of a page-state change, in order. Default (__set_pages_state()): to shared
   * ['rescind', 'psc'], to private ['psc', 'validate'].
   */
  conversionSteps?(ctx: GuestContext, request: ConversionRequest): readonly ConversionStep[];
  /** The DMA attributes of a device that steer the swiotlb slot search. */
  dmaAttrs?(ctx: GuestContext, request: { dev: number; dir: DmaDirection }): DmaAttrs;
  /**
   * The first swiotlb slot (padding included) of a streaming mapping or a coherent allocation, in
   * place of swiotlb_find_slots(); -1 for none (the mapping fails, "swiotlb buffer is full").
   * `pool.kernelSearch(search)` is the kernel's own answer, and may be asked with a changed
   * search (another `slotAlignMask`, another `cpu`). Slots outside the pool or not free are a
   * policy error. Default: the kernel's search.
   */
  swiotlbSlots?(ctx: GuestContext, search: SwiotlbSlotSearch, pool: SwiotlbSlotsView): number;
  /** PVALIDATE of a 2M entry returned FAIL_SIZEMISMATCH. Default 'retry-4k' (pval_pages()). */
  sizeMismatch?(ctx: GuestContext, request: { gpa: number; validate: boolean }): SizeMismatchAction;
  /** How a coherent buffer of converted pages is given back. Default 'encrypt' (dma_direct_free()). */
  coherentFree?(ctx: GuestContext, request: { buf: CoherentBuffer }): CoherentFreeAction;
  /** Whether swiotlb copies between the original and the slot. Default linuxBounces(request). */
  bounce?(ctx: GuestContext, request: BounceRequest): boolean;
}

/**
 * Every hook of a policy, for the plugin loader: a field it does not know is refused (a typo must
 * not silently run the default). Checked against the interfaces at compile time below, so a new
 * hook cannot be forgotten here.
 */
export const HOST_POLICY_HOOKS = ['start', 'privateFault', 'convert', 'smash', 'split', 'io', 'flush'] as const;
export const GUEST_POLICY_HOOKS = [
  'swiotlbPool',
  'atomicPoolBytes',
  'coherentSource',
  'coherentFree',
  'pageSize',
  'conversionSteps',
  'sizeMismatch',
  'dmaAttrs',
  'swiotlbSlots',
  'bounce',
] as const;
/** Fields of a policy that are data, not hooks. */
export const HOST_POLICY_DATA = ['ioPageSizes', 'ioIgnoresUnseen', 'ioMapsPages', 'privateFaultMaxSize'] as const;

type Unlisted<P, Listed> = Exclude<keyof P, 'name' | 'description' | 'module' | Listed>;
// A compile error here names a hook missing from the lists above.
const hostHooksComplete: Unlisted<HostPolicy, (typeof HOST_POLICY_HOOKS)[number] | (typeof HOST_POLICY_DATA)[number]> extends never ? true : false = true;
const guestHooksComplete: Unlisted<GuestPolicy, (typeof GUEST_POLICY_HOOKS)[number]> extends never ? true : false = true;
void hostHooksComplete;
void guestHooksComplete;

/** Identity helpers giving plugin authors type checking: `export default defineHostPolicy({...})`. */
export function defineHostPolicy(policy: HostPolicy): HostPolicy {
  return policy;
}

export function defineGuestPolicy(policy: GuestPolicy): GuestPolicy {
  return policy;
}
