// The public API for oracle and policy authors: the read-only view of the world, the step just
// applied, and the shapes of oracles and violations. Built-in oracles (oracles/) import only this
// module, exactly as a user's oracle would. Nothing here may import engine internals.

import type { DmaDirection, InnerOp, Op } from './ops/types.ts';
import type { Config } from './ops/types.ts';
import type { CallRecord, DmaResult, Fault, PrimitiveCall, RmpEntry } from './model/types.ts';
import type { PageSize } from './model/size.ts';

export type { Config, DeviceConfig, DmaDirection, During, InnerOp, Op, OpName } from './ops/types.ts';
export type { CallRecord, CallRun, DmaPiece, DmaResult, Fault, FaultKind, PrimitiveCall, RmpEntry } from './model/types.ts';
export { argAt, callAt, callsIn } from './model/types.ts';
export type { PageSize } from './model/size.ts';
export { SZ_2M, SZ_4K, SZ_1G, FRAMES_PER_2M, FRAME_LIMIT, pfnOf, addrOf, pfn2M, hex, formatSize, alignDown, alignUp, offsetIn } from './model/size.ts';
/** DmaRecord.tokenRuns: expanding them, or making them from a list of tokens (API 4). */
export { expandTokenRuns, tokenRunsOf } from './model/token-runs.ts';
/** Per-frame state as runs on which the value is linear (API 5): an oracle's frame -> GFN index, say. */
export { LinearRuns } from './model/linear-runs.ts';

/** A fresh unassigned RMP entry: the scratch object `RmpView.load(pfn, out)` fills. */
export { defaultRmpEntry } from './model/rmp.ts';

/**
 * The version of this API. 5: LinearRuns (per-index numbers kept as linear runs). 4: DmaRecord.tokenRuns (a DMA's tokens as runs; DmaRecord.tokens made
 * from them on first read; expandTokenRuns, tokenRunsOf). 3: MemoryView.writeStamp /
 * regionsWrittenSince and SwiotlbView.changesSince (what changed since an earlier look, without
 * re-reading it all).
 * 2: Step.frameRanges / gfnRanges (Step.frames / gfns expanded on demand), Oracle.boot and
 * Oracle.checkCoversFinal, RmpView.load and GuestView.loadPage (allocation-free accessors).
 * README.md "Oracle API versions".
 */
export const API_VERSION = 5;

// ---------------------------------------------------------------------------------------------
// Read-only views of the tables

export interface Leaf {
  /** First byte of the leaf (IOVA or GPA). */
  iova: number;
  /** Output address of the leaf's first byte. */
  pa: number;
  size: number;
}

export interface PageTableView {
  readonly format: string;
  readonly pgsizes: readonly number[];
  iovaToPhys(iova: number): number | undefined;
  leafAt(iova: number): Leaf | undefined;
  leaves(from?: number, to?: number): Iterable<Leaf>;
  /** leafAt() into a caller-owned Leaf (no allocation): false, and `out` untouched, when unmapped. */
  leafInto(iova: number, out: Leaf): boolean;
  /**
   * The end of the longest prefix of [iova, end) that is mapped and translates linearly to
   * pa + (addr - iova): iova itself when its first byte is unmapped or maps elsewhere.
   */
  linearEnd(iova: number, end: number, pa: number): number;
  /** The first address in [from, end) that a leaf covers, or end. */
  nextMapped(from: number, end: number): number;
  /**
   * The leaves intersecting [from, to) as maximal runs of adjacent leaves with contiguous output:
   * fills `out` (cleared first) with (iova, pa, len) triples of whole leaves in address order and
   * returns the number of runs. No allocation once `out` has grown.
   */
  leafRuns(from: number, to: number, out: number[]): number;
  /** Bytes mapped under leaves of at least `atLeast` bytes (all leaves by default), from counters (API v2). */
  leafBytes(atLeast?: number): number;
}

export interface RmpView {
  /** The entry of 4K frame `pfn` (its size from the authoritative 2M-aligned entry). */
  entry(pfn: number): RmpEntry;
  /** `entry(pfn)` written into the caller's `out` (allocation-free; API v2). Returns `out`. */
  load(pfn: number, out: RmpEntry): RmpEntry;
  /** Frames whose entry is not the default hypervisor-owned one, in ascending order. */
  frames(): Iterable<number>;
  /**
   * The end (exclusive, at most `limit`) of the run of frames from `pfn` whose entries continue
   * the entry of `pfn`: same assigned, asid, size, validated, immutable, vmsa, and a gpa that
   * advances 4K per frame when assigned (stays put when not). A 2M entry, an untouched PSMASH
   * result or untouched memory is one run: walk [a, b) with load() + runEnd(), run by run.
   */
  runEnd(pfn: number, limit: number): number;
  /**
   * How many frames load() reads as assigned to `asid`, and how many of them lie under a 2M
   * entry: counters the RMP keeps as entries change, so asking costs nothing (API v2).
   */
  assignedCount(asid: number): { frames: number; frames2M: number };
}

export interface IotlbEntry {
  dev: number;
  /** The cached input address (GPA for the S2 translation), aligned to `size`. */
  addr: number;
  hpa: number;
  size: PageSize;
}

export interface IotlbView {
  /** Every cached entry, by address: frozen, and the same list until the IOTLB changes. */
  entries(): Iterable<IotlbEntry>;
  lookup(addr: number): IotlbEntry | undefined;
  /** How many entries are cached (what counting entries() gives, without the copies). */
  readonly size: number;
  /** Some cached entry overlaps [addr, addr + len) (no allocation). */
  overlaps(addr: number, len: number): boolean;
}

export interface DeviceView {
  readonly id: number;
  readonly trusted: boolean;
  readonly iommu: 's2' | 'nested';
  /** TDISP state of the device's TDI; only "run" makes DMA below vTOM private. */
  readonly tdi: 'unlocked' | 'locked' | 'run';
  /** The host stalled the device's DMA (dma_stall); its DMAs wait for dma_resume. */
  readonly stalled: boolean;
  /** The host's IO stage 2: GPA -> HPA (amdv1). */
  readonly s2: PageTableView;
  /** The guest's IO stage 1 under a vIOMMU: IOVA -> GPA (x86_64); undefined for "s2" devices. */
  readonly s1: PageTableView | undefined;
  readonly iotlb: IotlbView;
}

export interface MemoryView {
  /** The content token of the 2 KiB chunk holding `hpa` (0 = never written). */
  token(hpa: number): number;
  /**
   * A stamp of the writes so far (a counter, one tick per CPU, host or DMA write and per copy):
   * keep it, and regionsWrittenSince() tells later whether anything was written after it (API v3).
   */
  readonly writeStamp: number;
  /**
   * Whether a write or copy made after `stamp` (a writeStamp read earlier) wrote into a 2M region
   * that the `len` bytes at `hpa` overlap: exact per 2M region (a write anywhere in it counts),
   * one compare per region. While it says false, every token there is what it was at `stamp`, so
   * an oracle skips re-reading the tokens of a stretch (API v3).
   */
  regionsWrittenSince(stamp: number, hpa: number, len: number): boolean;
}

// ---------------------------------------------------------------------------------------------
// The guest kernel's own state

export interface GuestPage {
  accepted: boolean;
  /** The guest converted this page to shared (its view, after the PSC completed). */
  shared: boolean;
  /** The guest believes it holds this page validated (PVALIDATE succeeded, not rescinded). */
  validated: boolean;
  /** A page-state change is in flight for this page. */
  converting: boolean;
}

export interface CoherentBuffer {
  /** Creation index among all coherent buffers of the case (stable across frees). */
  id: number;
  dev: number;
  gpa: number;
  bytes: number;
  /** The address the device uses (GPA, or an IOVA under a vIOMMU). */
  iova: number;
  source: 'atomic-pool' | 'pages' | 'swiotlb' | 'private';
  shared: boolean;
}

export interface StreamingMapping {
  id: number;
  dev: number;
  /** The original buffer (guest private memory). */
  orig: number;
  bytes: number;
  dir: DmaDirection;
  /** The swiotlb slot address when the mapping bounces. */
  tlbAddr: number | undefined;
  /** The address the device uses. */
  iova: number;
  /** dma_get_min_align_mask() of the device when it mapped (0 without): the slot keeps these low bits. */
  minAlignMask: number;
  /**
   * A bouncing mapping: the alloc_align_mask swiotlb_tbl_map_single() was given (0 without), to
   * which the allocation's first slot is aligned, and dma_get_seg_boundary() of the device, a
   * boundary the allocation never crosses (swiotlb_search_pool_area()).
   */
  allocAlignMask?: number;
  segmentBoundaryMask?: number;
}

export interface SwiotlbSlotRange {
  tlbAddr: number;
  slotIndex: number;
  nslots: number;
  allocSize: number;
}

export interface SwiotlbView {
  readonly base: number;
  readonly end: number;
  readonly nslabs: number;
  liveMappings(): Iterable<SwiotlbSlotRange>;
  /**
   * Changes whenever a slot is written (API v2): while it stays the same, liveMappings() gives
   * the same ranges, so a check can skip walking them (a step that maps nothing through swiotlb).
   */
  readonly generation: number;
  /**
   * What liveMappings() gained and lost since `generation` (a value `generation` had): the slot
   * ranges allocated and released after it, oldest first, written into `out` from index 0, five
   * numbers each: 1 (allocated) or -1 (released), then the range's slotIndex, nslots, tlbAddr and
   * allocSize (a range made and released in between appears twice). Returns how many numbers it
   * wrote, 0 when nothing was allocated or released, or -1 when the pool no longer remembers that
   * far back (it keeps the last 64 changes): then compare liveMappings(). Costs O(changes), reads
   * without consuming (any number of readers), allocates nothing once `out` has grown (API v3).
   */
  changesSince(generation: number, out: number[]): number;
  maxMappingSize(minAlignMask: number): number;
}

export interface GuestView {
  page(gfn: number): GuestPage | undefined;
  /** `page(gfn)` written into the caller's `out` (allocation-free; API v2): `out`, or undefined when the guest has no state for it. */
  loadPage(gfn: number, out: GuestPage): GuestPage | undefined;
  /** Guest frames the guest has any state for, in ascending order. */
  pages(): Iterable<number>;
  readonly buffers: readonly CoherentBuffer[];
  readonly mappings: readonly StreamingMapping[];
  readonly swiotlb: SwiotlbView;
  /** Guest frames of freed coherent buffers that could not be made private again (leaked). */
  readonly leaked: ReadonlySet<number>;
  tdiAccepted(dev: number): boolean;
  /** page() without allocating: the page's GUEST_PAGE_* bits, 0 when the guest has no state for it. */
  pageFlags(gfn: number): number;
  /** The end (exclusive, at most `limit`) of the run of pages from `gfn` whose flags equal those of `gfn`. */
  pageRunEnd(gfn: number, limit: number): number;
}

/** GuestView.pageFlags() bits (GuestPage's fields). */
export const GUEST_PAGE_ACCEPTED = 1;
export const GUEST_PAGE_SHARED = 2;
export const GUEST_PAGE_VALIDATED = 4;
export const GUEST_PAGE_CONVERTING = 8;

/**
 * What a host frame is now (README "Discard worlds"). backing: it backs guest memory at `gpa`
 * (a guest_memfd frame, the VMM RAM frame of a GPA not yet converted to private, or a frame the
 * VMM faulted in for a shared page); pinned: the VMM discarded it but an IO mapping still pins it
 * (QEMU 852f0048f3: "not a use-after-free, because VFIO is still pinning the page"); free: in
 * the host's free pool, or never the guest's.
 */
export interface HostFrame {
  state: 'backing' | 'pinned' | 'free';
  /** gmem: guest_memfd; vmm: the VMM's memory for shared pages; host: any other host memory. */
  kind: 'gmem' | 'vmm' | 'host';
  gpa?: number;
}

export interface HostView {
  /** The frame backing `gpa` in the host's view: the gmem frame, or the shared frame after a conversion. */
  backing(gpa: number): { hpa: number; shared: boolean; folioSize: PageSize } | undefined;
  /** `backing(gpa)?.hpa` without allocating (checks that run per page): -1 when nothing backs `gpa`. */
  backingHpa(gpa: number): number;
  /** The shared frame backing `gpa` (`backing(gpa)` when `shared`), -1 otherwise; allocates nothing. */
  sharedHpa(gpa: number): number;
  /**
   * The end (exclusive, at most `limit`) of the run of guest frames from `gfn` (gpa / 4K) with the
   * backing state of `gfn` (private, shared, or not backed) whose frames advance 4K per page:
   * `backingHpa` and `sharedHpa` are linear (or -1 throughout) over [gfn, end). With backingHpa(),
   * an allocation-free way to walk a range run by run (API v2).
   */
  backingRunEnd(gfn: number, limit: number): number;
  /** What the host frame holding `hpa` is now: the guest's (and for which GPA), pinned, or free. */
  frame(hpa: number): HostFrame;
  /** Invalidations gathered but not yet flushed (false right after host_sync). */
  readonly flushPending: boolean;
}

export interface Counters {
  psmash: number;
  rmpUpdate: number;
  nptSplits: number;
  ioSplits: number;
  iotlbInvalidations: number;
  dmas: number;
  faults: number;
}

/** Everything an oracle may look at. Read-only: oracles must never change the world. */
export interface View {
  readonly config: Config;
  readonly asid: number;
  readonly vtom: number;
  readonly rmp: RmpView;
  readonly npt: PageTableView;
  readonly devices: readonly DeviceView[];
  readonly memory: MemoryView;
  readonly guest: GuestView;
  readonly host: HostView;
  readonly counters: Readonly<Counters>;
}

// ---------------------------------------------------------------------------------------------
// Steps, oracles, violations

/** A DMA a device performed during the step, and whether the guest had set it up correctly. */
export interface DmaRecord {
  dev: number;
  iova: number;
  len: number;
  write: boolean;
  /** Against a live buffer or mapping, in bounds, with the device allowed to use it. */
  legit: boolean;
  target?: { kind: 'buf' | 'map'; id: number };
  /** Interleaved: made by the step op's `during[i]` entry, inside the op (Step.interleaved). */
  during?: number;
  /** Interleaved: the device's TDI state when the DMA ran (the op may change it afterwards). */
  tdi?: 'unlocked' | 'locked' | 'run';
  /**
   * Interleaved: the RMP entry of each 4K frame the DMA reached, as the DMA found it (the op goes on
   * changing the RMP after it, so the view at the end of the step is not what the IOMMU checked):
   * piece by piece, frame by frame, in the order of `result.pieces`. Absent for a DMA of its own
   * step, which nothing follows.
   */
  rmpAtDma?: readonly RmpEntry[];
  /**
   * Content tokens the device read (reads) or wrote (writes), one per 2 KiB chunk, in the order
   * of `result.pieces`. In records the engine makes, an accessor that expands `tokenRuns` on first
   * read: an oracle that can work on runs reads those instead (a 1 GiB DMA moves 524,288 chunks).
   */
  tokens: readonly number[];
  /**
   * The same tokens as runs (API v4; always present in records the engine makes, possibly absent
   * in one an oracle's test builds by hand: `tokenRunsOf(dma.tokens)` then): pairs of a first
   * token and a count, standing for the tokens first, first + 1, ..., first + count - 1; a first
   * token of 0 stands for `count` chunks never written (all 0). A write's tokens are fresh and
   * consecutive, so a DMA write is one pair.
   */
  tokenRuns?: readonly number[];
  result: DmaResult;
  /**
   * The 4K frames the DMA reached that did not back the guest page it reached them through,
   * with the host's view of each taken when the DMA ran (a later conversion in the same op may
   * free a frame a DMA reached while it was still pinned). Absent when there were none.
   */
  strayFrames?: readonly StrayFrame[];
}

/** A frame a DMA reached through `gpa`, and what the host frame was at that moment. */
export interface StrayFrame {
  hpa: number;
  gpa: number;
  frame: HostFrame;
}

/** What the guest kernel did during a step, in order (for ordering oracles). */
export type GuestEvent =
  | { kind: 'pvalidate'; gpa: number; size: PageSize; validate: boolean; status: number }
  | { kind: 'psc'; gpa: number; size: PageSize; to: 'shared' | 'private'; done: boolean }
  | { kind: 'bounce'; map: number; from: number; to: number; len: number }
  | { kind: 'access'; gpa: number; write: boolean; private: boolean; ok: boolean }
  /** Linux would terminate the guest here, or the vCPU can never make progress (guest-alive). */
  | { kind: 'fatal'; cause: GuestFatalCause; gpa: number; message: string };

/**
 * `count` guest events in a row that differ only in `gpa`, which advances by `stride` from one to
 * the next (Step.guestEventRuns, API 3): a PVALIDATE or a PSC entry per page of a conversion, a
 * driver's write per 2K chunk of a buffer. `eventAt(run, i)` is event `i`, `eventsIn(record)` how
 * many a record stands for.
 */
export type GuestEventRun = Extract<GuestEvent, { kind: 'pvalidate' | 'psc' | 'access' }> & { count: number; stride: number };

/** A guest event as the step keeps it: one event, or a run of them. */
export type GuestEventRecord = GuestEvent | GuestEventRun;

/** Whether a record is a run of events. */
export const isEventRun = (record: GuestEventRecord): record is GuestEventRun => 'count' in record;

/** How many guest events a record stands for. */
export const eventsIn = (record: GuestEventRecord): number => (isEventRun(record) ? record.count : 1);

/** Event `i` of a record (0 for a plain event, which is returned as it is; a run's is a new object). */
export function eventAt(record: GuestEventRecord, i: number): GuestEvent {
  if (!isEventRun(record)) return record;
  // The run's own fields but count and stride, in their order: the event as it was logged.
  const { count: _count, stride, ...event } = record;
  return { ...event, gpa: record.gpa + i * stride };
}

/**
 * Where Linux gives up (arch/x86/coco/sev/, the guest-alive oracle):
 * pvalidate: pval_pages() on any PVALIDATE failure but SIZEMISMATCH, CF=1 (NOUPDATE) included;
 * psc: __set_pages_state() when the host's PSC fails or goes backwards;
 * vc: the #VC handler (vc_handle_exitcode()) on a not-validated private access;
 * livelock: a #NPF that recurs without the host changing a table, or a PSC without progress.
 */
export type GuestFatalCause = 'pvalidate' | 'psc' | 'vc' | 'livelock';

/**
 * What one op is converting, creating or freeing while it runs (README "Races: `during`"):
 * the 4K guest pages of its rescind, PSC and validate ranges, and the pages of a
 * buffer or mapping it creates or frees. An interleaved DMA or touch there may fail; anywhere else
 * it must behave as if the op were not running.
 */
export interface BeingConverted {
  /** Half-open ranges of guest frame numbers, in the order the op reached them. */
  gfns: readonly { start: number; end: number }[];
  /** The buffers and mappings the op creates or frees (their creation ids). */
  objects: readonly { kind: 'buf' | 'map'; id: number }[];
}

/** Whether guest frame `gfn` (or DMA target `target`) is being converted by the step's op. */
export function isBeingConverted(converting: BeingConverted | undefined, gfn: number, target?: { kind: 'buf' | 'map'; id: number }): boolean {
  if (converting === undefined) return false;
  if (target !== undefined && converting.objects.some((o) => o.kind === target.kind && o.id === target.id)) return true;
  return converting.gfns.some((range) => gfn >= range.start && gfn < range.end);
}

/** One `during` entry as it ran. */
export interface InterleavedRecord {
  /** Its index in the op's `during`. */
  entry: number;
  /** The call count it asked for (`after`). */
  after: number;
  /** The op's own calls made before it ran: min(after, n), or later for a DMA that waited for
   *  dma_resume. */
  ranAfter: number;
  op: InnerOp;
  skipped?: string;
  /** A DMA of a stalled device: it waited and ran at dma_resume. */
  waited?: boolean;
  /** A touch whose #NPF the host handled after the op returned. */
  deferred?: boolean;
}

/** A half-open range [start, end) of 4K frame numbers (host pfns or guest gfns). */
export interface FrameRange {
  start: number;
  end: number;
}

export interface Step {
  index: number;
  op: Op;
  /** Why the op was skipped (nothing to refer to, not allowed in this config), if it was. */
  skipped?: string;
  /** The primitive calls the step made, one by one, in order. */
  calls: readonly PrimitiveCall[];
  /**
   * The same calls as the recorder kept them: a per-leaf or per-page loop the model ran without a
   * possible interleaving in between may be one CallRun (`count` calls, address args advancing by
   * `stride`; `callAt(run, i)` gives call i). Reading it instead of `calls` spares a step with
   * runs the expansion (API v2; absent on steps built by hand: then read `calls`).
   */
  readonly callRuns?: readonly CallRecord[];
  faults: readonly Fault[];
  dmas: readonly DmaRecord[];
  /** What the guest did in the step, event by event, in order. */
  guestEvents: readonly GuestEvent[];
  /**
   * The same events as the guest logged them: a PVALIDATE or PSC entry per page of a range, or a
   * write per 2K chunk of a buffer, may be one GuestEventRun (`eventAt(run, i)` gives event i).
   * Reading it instead of `guestEvents` spares a step with runs the expansion (API 3; absent on
   * steps built by hand: then read `guestEvents`).
   */
  readonly guestEventRuns?: readonly GuestEventRecord[];
  /**
   * 4K host frames (pfns) whose RMP entry, contents or mappings the step touched, as sorted,
   * merged (disjoint, non-adjacent) half-open ranges: a 2M operation is one range (API v2).
   */
  frameRanges: readonly FrameRange[];
  /** Guest frames (gfns) whose translation or guest state the step touched, as `frameRanges`. */
  gfnRanges: readonly FrameRange[];
  /**
   * `frameRanges` frame by frame, ascending. Kept for API v1 oracles: expanded on first read
   * (a 2M range costs 512 numbers), and an accessor, not an own property (absent from
   * `{ ...step }` and JSON). Iterate `frameRanges` instead.
   */
  readonly frames: readonly number[];
  /** `gfnRanges` frame by frame, ascending; as `frames`, kept for API v1 oracles. */
  readonly gfns: readonly number[];
  /**
   * Problems the guest kernel detected during the step, where Linux would WARN or terminate
   * (a PSC going backwards, a PVALIDATE that failed or found the page already in that state, a
   * #VC, a #NPF the host never resolved).
   */
  guestErrors?: readonly string[];
  /** What the op reported to its caller when it did not simply succeed (a DMA mapping error...). */
  result?: string;
  /** The op's `during` entries as they ran (absent without `during`). */
  interleaved?: readonly InterleavedRecord[];
  /** What the op is converting, creating or freeing: where interleaved DMAs and touches may fail. */
  converting?: BeingConverted;
}

export type Severity = 'security' | 'correctness' | 'liveness';

/** Structured facts `explain` can draw: addresses and the page size on each table. */
export interface ViolationDetails {
  dev?: number;
  iova?: number;
  gpa?: number;
  hpa?: number;
  sizes?: { s1?: number; s2?: number; npt?: number; rmp?: PageSize; checked?: PageSize };
  [key: string]: unknown;
}

/** What an oracle returns: the engine adds the oracle's name, severity and the step. */
export interface Finding {
  message: string;
  details?: ViolationDetails;
}

export interface Violation extends Finding {
  oracle: string;
  severity: Severity;
  /** The step index, or -1 for a violation found by the final sweep. */
  step: number;
}

export interface Oracle {
  name: string;
  description: string;
  severity: Severity;
  /**
   * The file this object is defined in (`module: import.meta.url`): a repro written by
   * fuzzProperty then names the file when it lies inside the repro's own directory tree, so
   * `cocofuzz replay` and `explain` can load it; otherwise the repro's message names the flag.
   */
  module?: string;
  /** Incremental: look at what `step` touched. Return the findings (or nothing). */
  check(view: View, step: Step): readonly Finding[] | undefined | void;
  /**
   * Full sweep over the whole world, in `replay --full-check` and at the end of a case, unless
   * `checkCoversFinal` says the end-of-case sweep of a clean case would find nothing.
   */
  final?(view: View): readonly Finding[] | undefined | void;
  /**
   * Called once per case when the world has booted, before the first step (API v2): take the
   * oracle's starting state here instead of sweeping at the first `check`, and return what is
   * already wrong (reported at the first step, ahead of its check). The view of a later case may
   * be the same object: reset any state kept for it.
   */
  boot?(view: View): readonly Finding[] | undefined | void;
  /**
   * The incremental `check` finds everything `final` would (API v2): the engine then skips the
   * end-of-case sweep of a case without findings. It still sweeps after a finding (with
   * allViolations), in `replay --full-check` and in the check-vs-sweep property test, which must
   * prove the claim (test/oracles/sweep-coverage.test.ts).
   */
  checkCoversFinal?: boolean;
}

/** Identity helper giving plugin authors type checking: `export default defineOracle({...})`. */
export function defineOracle(oracle: Oracle): Oracle {
  return oracle;
}
