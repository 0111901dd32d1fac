// The simulated SEV-SNP machine: RMP, host memory, the NPT, the devices behind the IOMMU, and the
// host kernel's direct map. It holds no host or guest POLICY: the actors call its primitives, and
// each primitive does what the hardware (or, for the direct map, Linux's rmpupdate() wrapper)
// does. Every call is recorded with its result and the frames it touched (events.ts).
//
// Specification: DOMAIN.md "SEV-SNP model"; sources in research/amd-snp.md sections 1-3 and 5.
// Rules marked UNCONFIRMED are listed in research/amd-snp.md section 8.

import type { Counters, DeviceView, MemoryView, PageTableView, RmpView } from '../api.ts';
import { Device, tdiTransitionAllowed, type DeviceOptions, type TdiState } from './device.ts';
import { Recorder, createCounters } from './events.ts';
import { cutDownPath } from './cut-path.ts';
import { Memory } from './memory.ts';
import { withTokens } from './token-runs.ts';
import { createPageTable, type InvalidationRange, type MapResult, type PageTable, type UnmapResult } from './pagetable/index.ts';
import { PVALIDATE_NPF_SIZEM, Rmp, defaultRmpEntry, pvalidateNpfReason } from './rmp.ts';
import { alignDown, hex, offsetIn, pageBytes, type PageSize, SZ_2K, SZ_2M, SZ_4K } from './size.ts';
import {
  PVALIDATE_FAIL_INPUT,
  RMPUPDATE_FAIL_OVERLAP,
  RMPUPDATE_OK,
  PSMASH_OK,
  PVALIDATE_OK,
  type DmaPiece,
  type DmaResult,
  type Fault,
  type PrimitiveCall,
  type RmpEntry,
  type RmpUpdateArgs,
} from './types.ts';

/** The arguments of a run that advance from one call to the next. */
const GPA_ARG: readonly string[] = Object.freeze(['gpa']);
const HPA_ARG: readonly string[] = Object.freeze(['hpa']);
const HPA_GPA_ARGS: readonly string[] = Object.freeze(['hpa', 'gpa']);
const GPA_HPA_ARGS: readonly string[] = Object.freeze(['gpa', 'hpa']);
/** The args of a fault-in block that advance from one page to the next (pvalidateFaultIn()). */
const FAULT_IN_STRIDED: readonly (readonly string[])[] = Object.freeze([GPA_ARG, GPA_HPA_ARGS, GPA_ARG]);
/** The same for a fault-in block whose host prepares each page first (the RMPUPDATE between). */
const PREPARE_FAULT_IN_STRIDED: readonly (readonly string[])[] = Object.freeze([GPA_ARG, HPA_GPA_ARGS, GPA_HPA_ARGS, GPA_ARG]);
const NO_DEVICES: readonly number[] = Object.freeze([]);

/** An RMPUPDATE's args as its call records them. */
const rmpUpdateRecord = (hpa: number, args: RmpUpdateArgs): PrimitiveCall['args'] => ({
  hpa,
  assigned: args.assigned,
  asid: args.asid,
  gpa: args.gpa,
  size: args.size,
  immutable: args.immutable === true,
});

/**
 * The machine's range methods: each makes many primitive calls and records them as runs, for the
 * model's own loops (host.ts, iommu.ts, the guest), which charge the budget and check the
 * arguments for the whole run. A policy's machine (ActorEnv.policyMachine) refuses them: through
 * it, every call is charged and checked on its own.
 */
export const RANGE_METHODS: ReadonlySet<string> = new Set([
  'nptUnmapLeaves',
  'ioUnmapLeaves',
  'rmpUpdate4KRun',
  'pvalidateMapped',
  'pvalidateFaultIn',
  'guestWriteRun',
]);

/** A policy called a primitive with arguments the hardware cannot take (the engine reports a
 *  `policy-error` finding). Only for misuse that has no status code of its own. */
export class HardwareUsageError extends Error {
  constructor(
    readonly prim: string,
    readonly arg: string,
    readonly value: unknown,
    why: string,
  ) {
    super(`${prim}: invalid ${arg} ${describe(value)}: ${why}`);
    this.name = 'HardwareUsageError';
  }
}

function describe(value: unknown): string {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return hex(value);
  if (typeof value === 'string') return JSON.stringify(value);
  try {
    return String(JSON.stringify(value));
  } catch {
    return String(value);
  }
}

export interface MachineOptions {
  /** The guest's ASID (RMP entries of its private memory carry it). */
  asid: number;
  /** vTOM of the trusted devices' sDTE: DMA below it is private (SEV-TIO). 2M-aligned. */
  vtom: number;
  devices: readonly DeviceOptions[];
  /** NPT page sizes in bytes (default: x86_64's 4K, 2M, 1G). */
  nptPageSizes?: readonly number[];
}

export type GuestAccessResult = { ok: true; tokens: number[] } | { ok: false; fault: Fault };
export type GuestCopyResult = { ok: true; tokens: number[] } | { ok: false; fault: Fault; copied: number };
export type PvalidateResult = { status: number } | { npf: Fault };

/** The status results of pvalidate, shared and frozen: a PVALIDATE that succeeds or fails in the
 *  hardware's own terms allocates nothing (the Linux loop issues one per 4K page of a PSC). */
const PVALIDATE_RESULTS: readonly PvalidateResult[] = Object.freeze(Array.from({ length: 256 }, (_, status) => Object.freeze({ status })));
export type HostWriteResult = { ok: true; tokens: number[] } | { ok: false; fault: Fault };
/** The tokens the DMA read or wrote: `tokenRuns` as runs (token-runs.ts), `tokens` one per chunk, made from them on first read. */
export type DmaOutcome = DmaResult & { readonly tokens: readonly number[]; readonly tokenRuns: number[] };
export type TdiResult = 'ok' | 'ENODEV' | 'EINVAL';
export type SplitResult = 'ok' | 'ENXIO' | 'EINVAL' | 'EADDRINUSE' | 'ERANGE';

export interface MachineStats {
  rmpRegions: number;
  memoryChunks: number;
  nptTables: number;
  /** Table pages of every device's S2 and S1. */
  ioTables: number;
  iotlbEntries: number;
  /** 2M regions whose host direct map is split to 4K. */
  directMapSplits: number;
}

const MAX_ADDRESS = 2 ** 52;
const MODEL_NAME = 'machine';

export class Machine {
  readonly asid: number;
  readonly vtom: number;
  readonly rmp: RmpView;
  readonly npt: PageTableView;
  readonly devices: readonly DeviceView[];
  readonly memory: MemoryView;
  readonly recorder = new Recorder();
  readonly counters: Counters = createCounters();

  private readonly rmpTable = new Rmp();
  private readonly nptTable: PageTable;
  private readonly mem = new Memory();
  private readonly byId = new Map<number, Device>();
  /**
   * 2M regions (hpa / 2M) whose host direct map is split to 4K; every other region is mapped 2M
   * (1G direct-map pages are checked as 2M: comment in Linux adjust_direct_map()).
   */
  private readonly directMap4K = new Set<number>();
  /** Scratch entry for the hot paths (no allocation per check). */
  private readonly scratch: RmpEntry = defaultRmpEntry();
  /** Leaf runs (iova, pa, len triples) read before an unmap, to touch what it removed. */
  private readonly removedRuns: number[] = [];
  /** The leaf a split replaces. */
  private readonly splitScratch = { iova: 0, pa: 0, size: 0 };
  /** Scratch leaves for the walks of pvalidate, the CPU check and a DMA (S1 and S2 at once). */
  private readonly nptLeaf = { iova: 0, pa: 0, size: 0 };
  private readonly s1Leaf = { iova: 0, pa: 0, size: 0 };
  private readonly s2Leaf = { iova: 0, pa: 0, size: 0 };

  constructor(options: MachineOptions) {
    if (!Number.isSafeInteger(options.asid) || options.asid < 1 || options.asid > 0x3ff) {
      throw new HardwareUsageError(MODEL_NAME, 'asid', options.asid, 'a guest ASID is 1..1023 (10-bit RMP field)');
    }
    // The sDTE holds vTOM in 2 MiB units (research/amd-snp.md section 5).
    if (!Number.isSafeInteger(options.vtom) || options.vtom < 0 || offsetIn(options.vtom, SZ_2M) !== 0 || options.vtom > MAX_ADDRESS) {
      throw new HardwareUsageError(MODEL_NAME, 'vtom', options.vtom, 'the sDTE stores vTOM in 2M units');
    }
    this.asid = options.asid;
    this.vtom = options.vtom;
    this.nptTable = createPageTable(
      options.nptPageSizes === undefined ? { format: 'x86_64' } : { format: 'x86_64', pgsizes: options.nptPageSizes },
    );
    const devices: Device[] = [];
    for (const spec of options.devices) {
      if (!Number.isSafeInteger(spec.id) || spec.id < 0 || this.byId.has(spec.id)) {
        throw new HardwareUsageError(MODEL_NAME, 'device id', spec.id, 'ids are distinct non-negative integers');
      }
      if (spec.iommu !== 's2' && spec.iommu !== 'nested') {
        throw new HardwareUsageError(MODEL_NAME, 'iommu', spec.iommu, 'expected "s2" or "nested"');
      }
      const device = new Device(spec);
      devices.push(device);
      this.byId.set(spec.id, device);
    }
    this.rmp = this.rmpTable;
    this.npt = this.nptTable;
    this.devices = devices;
    this.memory = this.mem;
  }

  device(id: number): DeviceView {
    return this.dev('device', id);
  }

  /** Structure sizes: grow with what a case touched, never with the configured memory. */
  stats(): MachineStats {
    let ioTables = 0;
    let iotlbEntries = 0;
    for (const device of this.byId.values()) {
      ioTables += device.s2.stats().tables + (device.s1?.stats().tables ?? 0);
      iotlbEntries += device.iotlb.size;
    }
    return {
      rmpRegions: this.rmpTable.regionCount,
      memoryChunks: this.mem.chunkCount,
      nptTables: this.nptTable.stats().tables,
      ioTables,
      iotlbEntries,
      directMapSplits: this.directMap4K.size,
    };
  }

  // =============================================================================================
  // Host: RMP instructions

  /**
   * RMPUPDATE issued while another CPU's RMP procedure holds the same 2M region: the instruction
   * returns FAIL_OVERLAP and changes nothing. Linux's rmpupdate() (arch/x86/virt/svm/sev.c) loops
   * on FAIL_OVERLAP, taking it for exactly this transient race; the model's only concurrent RMP
   * work is the #NPF of an interleaved touch (DOMAIN.md "Races and interleavings"), whose handler
   * then waits for the op's end (Interleaving) and retries.
   */
  rmpUpdateOverlapped(hpa: number, args: RmpUpdateArgs): number {
    checkAddress('rmpupdate', 'hpa', hpa, SZ_4K);
    this.recorder.touchFrame(hpa / SZ_4K);
    this.recorder.call(
      'rmpupdate',
      { hpa, assigned: args.assigned, asid: args.asid, gpa: args.gpa, size: args.size, immutable: args.immutable === true },
      RMPUPDATE_FAIL_OVERLAP,
    );
    return RMPUPDATE_FAIL_OVERLAP;
  }

  /**
   * RMPUPDATE through Linux's rmpupdate() wrapper (arch/x86/virt/svm/sev.c): before a 4K-level
   * update it splits the host direct map around the frame (adjust_direct_map()), so later host
   * writes to the neighbouring shared frames do not fault. Linux does that for every 4K update,
   * whatever the new state, and so do we (before the instruction, even if it then fails).
   */
  rmpUpdate(hpa: number, args: RmpUpdateArgs): number {
    const prim = 'rmpupdate';
    checkAddress(prim, 'hpa', hpa, SZ_4K);
    if (typeof args !== 'object' || args === null) throw new HardwareUsageError(prim, 'args', args, 'expected an object');
    if (args.size !== '4K' && args.size !== '2M') throw new HardwareUsageError(prim, 'size', args.size, 'expected "4K" or "2M"');
    if (typeof args.assigned !== 'boolean') throw new HardwareUsageError(prim, 'assigned', args.assigned, 'expected a boolean');
    if (args.immutable !== undefined && typeof args.immutable !== 'boolean') {
      throw new HardwareUsageError(prim, 'immutable', args.immutable, 'expected a boolean');
    }
    if (!Number.isSafeInteger(args.asid) || args.asid < 0) throw new HardwareUsageError(prim, 'asid', args.asid, 'expected a non-negative integer');
    checkAddress(prim, 'gpa', args.gpa, SZ_4K);

    const status = this.updateRmpEntry(hpa, args);
    if (status === RMPUPDATE_OK) this.recorder.touchFrameRange(hpa, pageBytes(args.size));
    else this.recorder.touchFrame(hpa / SZ_4K);
    this.recorder.call(prim, rmpUpdateRecord(hpa, args), status);
    return status;
  }

  /**
   * The RMPUPDATE itself, through Linux's rmpupdate() wrapper: the direct map split before a 4K
   * update (even one that then fails), the entry, and on success the counter and the GFNs of the
   * old and the new entry touched. The caller touches the frames and records the call.
   * updateRmpRun() does the same for a run of 4K frames at once: a change here belongs there too.
   */
  private updateRmpEntry(hpa: number, args: RmpUpdateArgs): number {
    if (args.size === '4K') this.directMap4K.add(Math.floor(hpa / SZ_2M));
    const old = this.rmpTable.load(hpa / SZ_4K, this.scratch);
    const oldAssigned = old.assigned;
    const oldGpa = alignDown(old.gpa, pageBytes(old.size));
    const oldBytes = pageBytes(old.size);
    const status = this.rmpTable.rmpUpdate(hpa, args);
    if (status !== RMPUPDATE_OK) return status;
    this.counters.rmpUpdate++;
    if (oldAssigned) this.recorder.touchGfnRange(oldGpa, oldBytes);
    if (args.assigned) this.recorder.touchGfnRange(args.gpa, pageBytes(args.size));
    return status;
  }

  /**
   * rmpUpdate() of `count` 4K frames from `hpa` with `args` (hpa advancing 4K per frame, and the
   * gpa with it when assigned), frame by frame while each returns RMPUPDATE_OK: how many did,
   * recorded as one run (Recorder.callRun()); the first that would not is left to rmpUpdate()
   * (it failed without a change). Only where no interleaved op can run in between (Recorder.batching).
   */
  rmpUpdate4KRun(hpa: number, count: number, args: RmpUpdateArgs): number {
    const prim = 'rmpupdate';
    checkAddress(prim, 'hpa', hpa, SZ_4K);
    checkAddress(prim, 'gpa', args.gpa, SZ_4K);
    if (args.size !== '4K') throw new Error(`internal: rmpUpdate4KRun at 0x${hpa.toString(16)} of ${args.size} entries`);
    this.requireBatching('rmpUpdate4KRun', hpa);
    const done = this.updateRmpRun(hpa, count, args);
    if (done === 0) return 0;
    this.recorder.callRun(prim, rmpUpdateRecord(hpa, args), RMPUPDATE_OK, done, args.assigned ? HPA_GPA_ARGS : HPA_ARG, SZ_4K);
    return done;
  }

  /**
   * updateRmpEntry() of `count` 4K frames from `hpa` with `args` (the gpa advancing with the frame
   * when assigned), frame by frame while each returns RMPUPDATE_OK; touches the frames updated and
   * returns how many (the first that would fail is left unchanged). The caller records the calls.
   */
  private updateRmpRun(hpa: number, count: number, args: RmpUpdateArgs): number {
    const pfn = hpa / SZ_4K;
    // The GPAs the old entries held, which updateRmpEntry() touches: read run by run (RMP runs:
    // one assigned 4K entry's GPA after another) before the update overwrites them. An assigned
    // 2M entry refuses a 4K update, so the frames updated held 4K entries or unassigned ones.
    const old = this.oldRuns;
    old.length = 0;
    for (let at = pfn; at < pfn + count; ) {
      const end = this.rmpTable.runEnd(at, pfn + count);
      const entry = this.rmpTable.load(at, this.scratch);
      if (entry.assigned && entry.size === '4K') old.push(at, end, entry.gpa);
      at = end;
    }
    const done = this.rmpTable.rmpUpdate4KRun(hpa, count, args);
    // updateRmpEntry() splits the direct map before each RMPUPDATE, the failing one's too.
    for (let key = Math.floor(hpa / SZ_2M); key * SZ_2M < hpa + Math.min(count, done + 1) * SZ_4K; key++) this.directMap4K.add(key);
    if (done === 0) return 0;
    this.counters.rmpUpdate += done;
    for (let r = 0; r < old.length && old[r]! < pfn + done; r += 3) {
      const from = old[r]!;
      this.recorder.touchGfnRange(old[r + 2]!, (Math.min(old[r + 1]!, pfn + done) - from) * SZ_4K);
    }
    if (args.assigned) this.recorder.touchGfnRange(args.gpa, done * SZ_4K);
    this.recorder.touchFrameRange(hpa, done * SZ_4K);
    return done;
  }

  /**
   * How many of the `pages` frames from `hpa` come before the first one whose prepared retry
   * would not validate: a frame already assigned to `asid` at its GPA, 4K, and Validated. Its
   * RMPUPDATE changes nothing and keeps Validated (Rmp.update4K(), an update to the same entry),
   * so the retry returns NOUPDATE; that page goes one by one, where the guest sees the status (a
   * hostile host can leave such a frame behind a page it never backed: hw_rmpupdate and hw_map
   * before a guest that shares without rescinding). An RMP run keeps assigned, ASID, Validated and
   * size and advances its GPA 4K a frame, as the pages' GPAs do: one look a run.
   */
  private stillValidatedAt(hpa: number, gpa: number, pages: number, asid: number): number {
    const pfn = hpa / SZ_4K;
    for (let at = pfn; at < pfn + pages; ) {
      const entry = this.rmpTable.load(at, this.scratch);
      if (entry.assigned && entry.validated && entry.size === '4K' && entry.asid === asid && entry.gpa === gpa + (at - pfn) * SZ_4K) return at - pfn;
      at = this.rmpTable.runEnd(at, pfn + pages);
    }
    return pages;
  }

  /** updateRmpRun()'s old runs of assigned 4K entries: first frame, end frame, first GPA. */
  private readonly oldRuns: number[] = [];

  /** A range method's guard: its caller checked Recorder.batching (a run must not hide a `during` point). */
  private requireBatching(method: string, at: number): void {
    if (!this.recorder.batching) throw new Error(`internal: ${method} at 0x${at.toString(16)} while calls are heard one by one`);
  }

  psmash(hpa: number): number {
    const prim = 'psmash';
    checkAddress(prim, 'hpa', hpa);
    const status = this.smashRmp(hpa);
    this.recorder.call(prim, { hpa }, status);
    return status;
  }

  /** The RMP side of PSMASH (and of fwSmash): the status, with the frames it touched. */
  private smashRmp(hpa: number): number {
    const status = this.rmpTable.psmash(hpa);
    if (status === PSMASH_OK) {
      this.counters.psmash++;
      const entry = this.rmpTable.load(hpa / SZ_4K, this.scratch);
      this.recorder.touchFrameRange(hpa, SZ_2M);
      this.recorder.touchGfnRange(entry.gpa, SZ_2M);
    } else {
      this.recorder.touchFrame(Math.floor(hpa / SZ_4K));
    }
    return status;
  }

  rmpRead(hpa: number): RmpEntry {
    checkAddress('rmpread', 'hpa', hpa);
    this.recorder.call('rmpread', { hpa }, 0);
    return this.rmpTable.rmpRead(hpa);
  }

  // =============================================================================================
  // Host: NPT and IO page tables

  nptMap(gpa: number, hpa: number, len: number): MapResult {
    const prim = 'npt_map';
    checkAddress(prim, 'gpa', gpa);
    checkAddress(prim, 'hpa', hpa);
    checkLength(prim, len);
    const result = this.nptTable.map(gpa, hpa, len);
    this.touchMapped(gpa, hpa, result.mapped);
    this.recorder.call(prim, { gpa, hpa, len }, result.error ?? result.mapped);
    return result;
  }

  nptUnmap(gpa: number, len: number): UnmapResult {
    const prim = 'npt_unmap';
    checkAddress(prim, 'gpa', gpa);
    checkLength(prim, len);
    const result = this.unmapTouching(this.nptTable, gpa, len, true);
    this.recorder.call(prim, { gpa, len }, result.error ?? result.unmapped);
    return result;
  }

  /**
   * nptUnmap() of `count` adjacent whole leaves of `size` from `gpa`, one after the other (a
   * host zapping leaf by leaf: KVM's tdp_mmu_zap_leafs()). Where no interleaved op may run
   * between them (Recorder.batching, which the caller checked) the leaves go in one walk and the
   * calls are one CallRun. The caller found the leaves: anything else is an error.
   */
  nptUnmapLeaves(gpa: number, size: number, count: number): void {
    const prim = 'npt_unmap';
    this.requireBatching('nptUnmapLeaves', gpa);
    checkAddress(prim, 'gpa', gpa);
    checkLength(prim, size);
    this.unmapLeavesTouching(prim, this.nptTable, gpa, size, count);
    this.recorder.callRun(prim, { gpa, len: size }, size, count, GPA_ARG, size);
  }

  /** ioUnmap() of `count` adjacent whole leaves of `size` from `gpa`, as nptUnmapLeaves(). */
  ioUnmapLeaves(dev: number, gpa: number, size: number, count: number): void {
    const prim = 'io_unmap';
    this.requireBatching('ioUnmapLeaves', gpa);
    const device = this.dev(prim, dev);
    checkAddress(prim, 'gpa', gpa);
    checkLength(prim, size);
    this.unmapLeavesTouching(prim, device.s2, gpa, size, count);
    this.recorder.callRun(prim, { dev, gpa, len: size }, size, count, GPA_ARG, size);
  }

  private unmapLeavesTouching(prim: string, table: PageTable, gpa: number, size: number, count: number): void {
    const result = this.unmapTouching(table, gpa, size * count, true, size);
    if (result.error !== undefined || result.unmapped !== size * count) {
      throw new Error(`internal: ${prim} of ${count} leaves of ${size} bytes at 0x${gpa.toString(16)} unmapped ${result.unmapped} (${result.error ?? 'no error'})`);
    }
  }

  ioMap(dev: number, gpa: number, hpa: number, len: number): MapResult {
    const prim = 'io_map';
    const device = this.dev(prim, dev);
    checkAddress(prim, 'gpa', gpa);
    checkAddress(prim, 'hpa', hpa);
    checkLength(prim, len);
    const result = device.s2.map(gpa, hpa, len);
    // A map that replaced an empty leftover table synced that range itself (iommu_pt.h map_range()).
    this.dropSynced(device);
    this.touchMapped(gpa, hpa, result.mapped);
    this.recorder.call(prim, { dev, gpa, hpa, len }, result.error ?? result.mapped);
    return result;
  }

  /** Unmaps from the S2; the IOTLB keeps the old translations until iommuFlush (iommupt gathers). */
  ioUnmap(dev: number, gpa: number, len: number): UnmapResult {
    const prim = 'io_unmap';
    const device = this.dev(prim, dev);
    checkAddress(prim, 'gpa', gpa);
    checkLength(prim, len);
    const result = this.unmapTouching(device.s2, gpa, len, true);
    this.recorder.call(prim, { dev, gpa, len }, result.error ?? result.unmapped);
    return result;
  }

  /**
   * iommu_unmap() rather than the gathered unmap: the S2 range is unmapped and its own gather
   * synced at once (the IOTLB drops the range; what earlier unmaps gathered still waits for
   * iommuFlush). What iommu_map() undoes a failed map with. Recorded as the io_unmap it is.
   */
  ioUnmapSynced(dev: number, gpa: number, len: number): UnmapResult {
    const prim = 'io_unmap';
    const device = this.dev(prim, dev);
    checkAddress(prim, 'gpa', gpa);
    checkLength(prim, len);
    const result = this.unmapTouching(device.s2, gpa, len, true, undefined, true);
    this.dropSynced(device);
    this.recorder.call(prim, { dev, gpa, len }, result.error ?? result.unmapped);
    return result;
  }

  /** The IOTLB forgets what the S2's last map or synced unmap synced itself. */
  private dropSynced(device: Device): void {
    const synced = device.s2.takeMapInvalidations();
    for (const range of synced) {
      device.iotlb.invalidate(range.iova, range.len);
      this.recorder.touchGfnRange(range.iova, range.len);
    }
    this.counters.iotlbInvalidations += synced.length;
  }

  /**
   * Replace the NPT leaf holding `gpa` by leaves of `size` in one step (what KVM's huge-page split
   * does under the MMU lock: no guest access sees the range unmapped). Counted in nptSplits. A host
   * that splits by hand with nptUnmap + nptMap should count its splits itself.
   */
  nptSplit(gpa: number, size: number): SplitResult {
    const prim = 'npt_split';
    checkAddress(prim, 'gpa', gpa);
    checkLength(prim, size, 'size');
    const result = this.splitLeaf(this.nptTable, gpa, size);
    if (result === 'ok') this.counters.nptSplits++;
    this.recorder.call(prim, { gpa, size }, result);
    return result;
  }

  /**
   * Replace the S2 leaf holding `gpa` by leaves of `size` atomically, as the firmware-assisted
   * IOPDE swap AMD proposes (Alexey, seed thread, 21-22 Jan 2026), or a split with DMA quiesced.
   * The old translation stays in the IOTLB until iommuFlush. For the non-hitless order
   * (Alexey: DMA into the rest of the range fails in between) use ioUnmap, then ioMap.
   */
  ioSplit(dev: number, gpa: number, size: number): SplitResult {
    const prim = 'io_split';
    const device = this.dev(prim, dev);
    checkAddress(prim, 'gpa', gpa);
    checkLength(prim, size, 'size');
    const result = this.splitLeaf(device.s2, gpa, size);
    if (result === 'ok') this.counters.ioSplits++;
    this.recorder.call(prim, { dev, gpa, size }, result);
    return result;
  }

  /**
   * Stall the device's DMA: the IOMMU holds its requests until dma_resume (they wait, they do not
   * fail). The quiesce Jason Gunthorpe's plan needs around a page-size change (lore
   * 20260128133258.GY1134360@nvidia.com) and the stall AMD's firmware takes inside its atomic
   * smash (Alexey Kardashevskiy, lore e8cb2549-6a17-47ce-8e9f-96c576890262@amd.com). Stalling a
   * stalled device is a usage error: the host lost track of its own quiesce.
   */
  dmaStall(dev: number): void {
    const prim = 'dma_stall';
    const device = this.dev(prim, dev);
    if (device.stalled) throw new HardwareUsageError(prim, 'dev', dev, 'the device is already stalled');
    device.stalled = true;
    this.recorder.call(prim, { dev }, 'ok');
  }

  /** Let a stalled device's DMA go again; the requests it held run now, in order. */
  dmaResume(dev: number): void {
    const prim = 'dma_resume';
    const device = this.dev(prim, dev);
    if (!device.stalled) throw new HardwareUsageError(prim, 'dev', dev, 'the device is not stalled');
    device.stalled = false;
    this.recorder.call(prim, { dev }, 'ok');
  }

  /**
   * AMD's proposed firmware call (Alexey Kardashevskiy, lore
   * e8cb2549-6a17-47ce-8e9f-96c576890262@amd.com; discussed by Jason Gunthorpe, lore
   * 20260128133258.GY1134360@nvidia.com): with the devices' DMA stalled, PSMASH the 2M RMP entry at
   * `hpa`, replace each device's IO leaf of 2M or more over `gpa` by 4K leaves, invalidate the
   * IOTLB for the 2M region, and resume, as one step: no DMA sees the RMP and the S2 disagree.
   * Returns the PSMASH status; on failure nothing else changes.
   */
  fwSmash(hpa: number, gpa: number, devs: readonly number[]): number {
    const prim = 'fw_smash';
    checkAddress(prim, 'hpa', hpa, SZ_2M);
    checkAddress(prim, 'gpa', gpa, SZ_2M);
    const devices = devs.map((id) => this.dev(prim, id));
    const status = this.smashRmp(hpa);
    if (status === PSMASH_OK) {
      for (const device of devices) {
        // Only the smashed region goes to 4K, down the path to it: a leaf above 2M first becomes
        // 2M leaves (cut_mapping() cuts one level at a time; the engine swaps one 2M IOPDE for a
        // 4K table), so the other regions keep leaves checked at 2M over their 2M RMP entries.
        // (ioSplits counts each level split, as the helpers' io_split calls would.)
        const leaf = device.s2.leafAt(gpa);
        if (leaf !== undefined && leaf.size >= SZ_2M) {
          cutDownPath(device.s2, gpa, SZ_4K, (iova, size) => {
            if (this.splitLeaf(device.s2, iova, size) === 'ok') this.counters.ioSplits++;
          });
        }
        device.iotlb.invalidate(gpa, SZ_2M);
        this.counters.iotlbInvalidations++;
      }
    }
    this.recorder.call(prim, { hpa, gpa, devs: devs.join(',') }, status);
    return status;
  }

  /**
   * INVALIDATE_IOMMU_PAGES for [addr, addr + len) (the 4K page at `addr` without a length), or
   * the whole device without an address. Returns how many IOTLB entries went.
   */
  iotlbInvalidate(dev: number, addr?: number, len?: number): number {
    const prim = 'iotlb_invalidate';
    const device = this.dev(prim, dev);
    if (addr !== undefined) checkAddress(prim, 'addr', addr);
    if (len !== undefined) checkLength(prim, len);
    if (len !== undefined && addr === undefined) throw new HardwareUsageError(prim, 'len', len, 'a length needs an address');
    const removed = device.iotlb.invalidate(addr, len);
    this.counters.iotlbInvalidations++;
    if (addr !== undefined) this.recorder.touchGfnRange(addr, len ?? SZ_4K);
    const args: Record<string, number> = { dev };
    if (addr !== undefined) args.addr = addr;
    if (len !== undefined) args.len = len;
    this.recorder.call(prim, args, removed);
    return removed;
  }

  /** What unmaps gathered on the device's S2 since its last iommuFlush (a read: not a call). */
  ioGathered(dev: number): InvalidationRange[] {
    return this.dev('io_gathered', dev).s2.gathered();
  }

  /**
   * The driver's iotlb_sync on the device's S2 (iommupt: sync()): every range gathered by unmaps
   * since the last flush is invalidated in the IOTLB, then the detached table pages are freed.
   * `only` is a driver whose sync invalidates other ranges than it gathered (a lost or clipped
   * range: the gather is emptied and the pages freed all the same). Returns how many IOTLB
   * entries went.
   */
  iommuFlush(dev: number, only?: readonly InvalidationRange[]): number {
    const prim = 'iommu_flush';
    const device = this.dev(prim, dev);
    for (const [i, range] of (only ?? []).entries()) {
      checkAddress(prim, `only[${i}].iova`, range.iova);
      checkLength(prim, range.len, `only[${i}].len`);
    }
    const gathered = device.s2.sync();
    const ranges = only ?? gathered;
    let removed = 0;
    for (const range of ranges) {
      removed += device.iotlb.invalidate(range.iova, range.len);
      this.recorder.touchGfnRange(range.iova, range.len);
    }
    this.counters.iotlbInvalidations += ranges.length;
    this.recorder.call(prim, only === undefined ? { dev, ranges: ranges.length } : { dev, ranges: ranges.length, gathered: gathered.length }, removed);
    return removed;
  }

  /**
   * The TDI state (SEV-TIO guest flow, research/amd-snp.md section 5). Only a trusted (TDISP)
   * device can leave CONFIG_UNLOCKED (ENODEV otherwise); the order is unlocked -> locked -> run,
   * with STOP back to unlocked from anywhere (EINVAL otherwise).
   * A state change invalidates the device's whole IOTLB: the firmware rewrites (SDTE_WRITE) or
   * invalidates the sDTE, and translations checked under the old sDTE must not survive.
   * UNCONFIRMED: we did not find who issues that invalidation; modelled as part of the change.
   */
  tdiSetState(dev: number, state: TdiState): TdiResult {
    const prim = 'tdi_set_state';
    const device = this.dev(prim, dev);
    if (state !== 'unlocked' && state !== 'locked' && state !== 'run') {
      throw new HardwareUsageError(prim, 'state', state, 'expected "unlocked", "locked" or "run"');
    }
    let result: TdiResult = 'ok';
    if (!device.trusted && state !== 'unlocked') result = 'ENODEV';
    else if (!tdiTransitionAllowed(device.tdi, state)) result = 'EINVAL';
    else if (device.tdi !== state) {
      device.tdi = state;
      device.iotlb.invalidate();
      this.counters.iotlbInvalidations++;
    }
    this.recorder.call(prim, { dev, state }, result);
    return result;
  }

  // =============================================================================================
  // Host: CPU writes and the direct map

  /**
   * A host CPU write of the 4K frame holding `hpa`, through the kernel direct map. It faults on
   * an assigned frame, and through a 2M direct-map mapping when any frame of that 2M region is
   * assigned, even if the written frame is shared (Linux adjust_direct_map(), section 2a).
   * Host reads are not RMP-checked (they see ciphertext), so there is no hostRead.
   */
  hostWrite(hpa: number): HostWriteResult {
    const prim = 'host_write';
    checkAddress(prim, 'hpa', hpa);
    const pfn = Math.floor(hpa / SZ_4K);
    this.recorder.touchFrame(pfn);
    let reason = '';
    if (this.rmpTable.isAssigned(pfn)) reason = 'assigned';
    else if (!this.directMap4K.has(Math.floor(hpa / SZ_2M)) && this.rmpTable.regionHasAssigned(pfn)) {
      reason = 'direct map 2M over assigned 4K';
    }
    if (reason !== '') {
      const fault: Fault = { kind: 'host_rmp_pf', addr: hpa, hpa, write: true, reason, rmpSize: this.rmpTable.sizeOf(pfn) };
      this.raise(fault);
      this.recorder.call(prim, { hpa }, fault.kind);
      return { ok: false, fault };
    }
    const tokens = this.mem.write(pfn * SZ_4K, SZ_4K);
    this.recorder.call(prim, { hpa }, 'ok');
    return { ok: true, tokens };
  }

  /** The host direct map's page size over the frame holding `hpa`. */
  directMapSize(hpa: number): PageSize {
    return this.directMap4K.has(Math.floor(hpa / SZ_2M)) ? '4K' : '2M';
  }

  /** An (adversarial or careless) host splits the direct map of the 2M region holding `hpa`. */
  hostDirectMapSplit(hpa: number): void {
    const prim = 'host_direct_map_split';
    checkAddress(prim, 'hpa', hpa);
    this.directMap4K.add(Math.floor(hpa / SZ_2M));
    this.recorder.touchFrameRange(alignDown(hpa, SZ_2M), SZ_2M);
    this.recorder.call(prim, { hpa }, 'ok');
  }

  /** ...or merges it back to one 2M mapping, whatever the RMP holds (Linux never does). */
  hostDirectMapMerge(hpa: number): void {
    const prim = 'host_direct_map_merge';
    checkAddress(prim, 'hpa', hpa);
    this.directMap4K.delete(Math.floor(hpa / SZ_2M));
    this.recorder.touchFrameRange(alignDown(hpa, SZ_2M), SZ_2M);
    this.recorder.call(prim, { hpa }, 'ok');
  }

  // =============================================================================================
  // Guest CPU

  /**
   * PVALIDATE of `gpa` at `size` by the guest (VMPL0). The GPA goes through the NPT; the RMP part
   * is Rmp.pvalidateEntry() (VeriSMo pvalidate, section 3).
   * A 2M request checks the RMP entry at the 2M-aligned frame of the HPA the NPT gives for the
   * 2M-aligned GPA, whatever the NPT leaf size: the RMP entry, not the NPT, is what is validated,
   * so with an NPT of 4K leaves only the translation of the first 4K matters and a 2M RMP entry
   * there is validated for all 512 frames. (The APM's rule for a 2M PVALIDATE over a 4K NPT leaf
   * could not be read; this follows the instruction's definition on the RMP entry.)
   */
  pvalidate(gpa: number, size: PageSize, validate: boolean): PvalidateResult {
    const prim = 'pvalidate';
    checkAddress(prim, 'gpa', gpa, SZ_4K);
    if (size !== '4K' && size !== '2M') throw new HardwareUsageError(prim, 'size', size, 'expected "4K" or "2M"');
    if (typeof validate !== 'boolean') throw new HardwareUsageError(prim, 'validate', validate, 'expected a boolean');
    const args = { gpa, size, validate };
    if (size === '2M' && offsetIn(gpa, SZ_2M) !== 0) {
      this.recorder.touchGfn(gpa / SZ_4K);
      this.recorder.call(prim, args, PVALIDATE_FAIL_INPUT);
      return { status: PVALIDATE_FAIL_INPUT };
    }
    const leaf = this.nptLeaf;
    if (!this.nptTable.leafInto(gpa, leaf)) {
      const npf: Fault = { kind: 'npf', addr: gpa, write: false, reason: 'not present' };
      this.raise(npf);
      this.recorder.touchGfn(gpa / SZ_4K);
      this.recorder.call(prim, args, 'npf');
      return { npf };
    }
    const translated = leaf.pa + (gpa - leaf.iova);
    const hpa = size === '2M' ? alignDown(translated, SZ_2M) : translated;
    const outcome = this.rmpTable.pvalidateEntry(hpa, gpa, this.asid, size, validate);
    const bytes = pageBytes(size);
    if (outcome < 0) {
      const npf: Fault = {
        kind: 'npf',
        addr: gpa,
        hpa,
        write: false,
        reason: pvalidateNpfReason(outcome),
        rmp: true,
        sizem: outcome === PVALIDATE_NPF_SIZEM,
        nptSize: leaf.size,
        rmpSize: this.rmpTable.sizeOf(hpa / SZ_4K),
      };
      this.raise(npf);
      this.recorder.touchGfn(gpa / SZ_4K);
      this.recorder.touchFrame(hpa / SZ_4K);
      this.recorder.call(prim, args, 'npf');
      return { npf };
    }
    if (outcome === PVALIDATE_OK) {
      this.recorder.touchGfnRange(gpa, bytes);
      this.recorder.touchFrameRange(hpa, bytes);
    } else {
      this.recorder.touchGfn(gpa / SZ_4K);
    }
    this.recorder.call(prim, args, outcome);
    return PVALIDATE_RESULTS[outcome] ?? { status: outcome };
  }

  /**
   * The guest's 4K PVALIDATEs of `pages` pages from `gpa` that the NPT maps to hpa + offset:
   * pvalidate() page by page for the leading pages that return PVALIDATE_OK, recorded as one run
   * (Recorder.callRun()); how many (0: none, nothing done). The caller read the NPT (linearEnd())
   * and knows no interleaved op can run in between (Recorder.batching).
   */
  pvalidateMapped(gpa: number, hpa: number, pages: number, validate: boolean): number {
    const prim = 'pvalidate';
    checkAddress(prim, 'gpa', gpa, SZ_4K);
    this.requireBatching('pvalidateMapped', gpa);
    const done = this.rmpTable.pvalidate4KRun(hpa, gpa, this.asid, validate, pages);
    if (done === 0) return 0;
    this.recorder.touchGfnRange(gpa, done * SZ_4K);
    this.recorder.touchFrameRange(hpa, done * SZ_4K);
    this.recorder.callRun(prim, { gpa, size: '4K', validate }, PVALIDATE_OK, done, GPA_ARG, SZ_4K);
    return done;
  }

  /**
   * The guest's 4K PVALIDATEs of `pages` pages from `gpa` (2 or more), each taking a
   * not-present #NPF that the host resolves by mapping the page at 4K to hpa + offset (npt_map),
   * then retried: the sequence of calls that per page would make, for the leading pages whose
   * retry succeeds (PVALIDATE_OK); returns how many (0: none, nothing done). Recorded as one
   * block of three runs (Recorder.blockRun()), one #NPF fault per page. The caller knows the NPT
   * has no leaf over the pages and that the host maps them so (Hypervisor.faultInPlan()), and
   * that no interleaved op can run in between (Recorder.batching).
   *
   * With `prepareAsid`, the host prepares each page before it maps it (Hypervisor.prepareFaultIn():
   * sev_gmem_prepare()'s RMPUPDATE of the frame, assigned to that ASID at the page's GPA, 4K):
   * four runs, for the leading pages whose RMPUPDATE returns RMPUPDATE_OK (the first that would
   * not is left to the one-by-one path: a failed update changes nothing). Only for validation:
   * a fresh entry is not validated yet, so each retry succeeds.
   *
   * `ioDevices`: after each RMPUPDATE the host's io hook maps the new private page at 4K in each
   * of these devices' S2, in this order (the `map` event of sev_gmem_prepare()'s page, answered as
   * the default hook and follow-rmp.ts's do: HostPolicy.ioMapsPages): one io_map run per device
   * between the RMPUPDATE and the npt_map. The caller knows their S2s map nothing over the pages
   * and take 4K leaves.
   */
  pvalidateFaultIn(gpa: number, hpa: number, pages: number, validate: boolean, prepareAsid?: number, ioDevices: readonly number[] = NO_DEVICES): number {
    const prim = 'pvalidate';
    checkAddress(prim, 'gpa', gpa, SZ_4K);
    checkAddress('npt_map', 'hpa', hpa, SZ_4K);
    this.requireBatching('pvalidateFaultIn', gpa);
    const prepare: RmpUpdateArgs | undefined = prepareAsid === undefined ? undefined : { assigned: true, asid: prepareAsid, gpa, size: '4K' };
    if (prepare === undefined && ioDevices.length > 0) throw new Error(`internal: pvalidateFaultIn at 0x${gpa.toString(16)} maps IO for pages it does not prepare`);
    if (prepare !== undefined) {
      if (!validate) throw new Error(`internal: pvalidateFaultIn at 0x${gpa.toString(16)} prepares pages to rescind them`);
      pages = this.stillValidatedAt(hpa, gpa, pages, prepare.asid);
      if (pages === 0) return 0;
      pages = this.updateRmpRun(hpa, pages, prepare);
      if (pages === 0) return 0;
    }
    const done = this.rmpTable.pvalidate4KRun(hpa, gpa, this.asid, validate, pages);
    if (prepare !== undefined && done !== pages) throw new Error(`internal: pvalidateFaultIn validated ${done} of the ${pages} pages it prepared at 0x${gpa.toString(16)}`);
    if (done === 0) return 0;
    const bytes = done * SZ_4K;
    for (const dev of ioDevices) {
      const device = this.dev('io_map', dev);
      const io = device.s2.map(gpa, hpa, bytes, SZ_4K);
      if (io.error !== undefined || io.mapped !== bytes) throw new Error(`internal: pvalidateFaultIn io-mapped ${io.mapped} of ${bytes} bytes for dev ${dev} (${io.error ?? 'no error'})`);
      this.dropSynced(device);
    }
    const mapped = this.nptTable.map(gpa, hpa, bytes, SZ_4K);
    if (mapped.error !== undefined || mapped.mapped !== bytes) throw new Error(`internal: pvalidateFaultIn mapped ${mapped.mapped} of ${bytes} bytes (${mapped.error ?? 'no error'})`);
    this.raiseRun({ kind: 'npf', addr: gpa, write: false, reason: 'not present' }, done, SZ_4K);
    this.recorder.touchGfnRange(gpa, bytes);
    this.recorder.touchFrameRange(hpa, bytes);
    const fault: PrimitiveCall = { prim, args: { gpa, size: '4K', validate }, result: 'npf' };
    const map: PrimitiveCall = { prim: 'npt_map', args: { gpa, hpa, len: SZ_4K }, result: SZ_4K };
    const retry: PrimitiveCall = { prim, args: { gpa, size: '4K', validate }, result: PVALIDATE_OK };
    if (prepare === undefined) {
      this.recorder.blockRun([fault, map, retry], done, FAULT_IN_STRIDED, SZ_4K);
      return done;
    }
    const update: PrimitiveCall = { prim: 'rmpupdate', args: rmpUpdateRecord(hpa, prepare), result: RMPUPDATE_OK };
    if (ioDevices.length === 0) {
      this.recorder.blockRun([fault, update, map, retry], done, PREPARE_FAULT_IN_STRIDED, SZ_4K);
      return done;
    }
    const ioMaps = ioDevices.map((dev): PrimitiveCall => ({ prim: 'io_map', args: { dev, gpa, hpa, len: SZ_4K }, result: SZ_4K }));
    this.recorder.blockRun([fault, update, ...ioMaps, map, retry], done, [GPA_ARG, HPA_GPA_ARGS, ...ioDevices.map(() => GPA_HPA_ARGS), GPA_HPA_ARGS, GPA_ARG], SZ_4K);
    return done;
  }

  /**
   * guestAccess() writes of one byte at `count` 2K chunks from `gpa` (2K-aligned): a driver
   * filling a buffer chunk by chunk. The leading chunks whose access succeeds are written and
   * recorded as one run (Recorder.callRun()); how many (the first that would fault is left to
   * guestAccess()). Only where no interleaved op can run in between (Recorder.batching).
   */
  guestWriteRun(gpa: number, count: number, priv: boolean): number {
    const prim = 'guest_access';
    checkAddress(prim, 'gpa', gpa, SZ_2K);
    this.requireBatching('guestWriteRun', gpa);
    const end = gpa + count * SZ_2K;
    let at = gpa;
    while (at < end) {
      const checked = this.cpuCheck(at, true, priv);
      if (typeof checked !== 'number') break;
      // Every chunk up to the end of this NPT leaf and of this RMP run checks as the first one
      // does: cpuCheck() reads the leaf and the entry of the page, and along a run the entry's
      // GPA advances with the leaf's. So one check per stretch, not per chunk.
      const leafEnd = this.nptLeaf.iova + this.nptLeaf.size;
      const pfn = Math.floor(checked / SZ_4K);
      const pages = Math.ceil((Math.min(end, leafEnd) - alignDown(at, SZ_4K)) / SZ_4K);
      const stop = Math.min(end, leafEnd, alignDown(at, SZ_4K) + (this.rmpTable.runEnd(pfn, pfn + pages) - pfn) * SZ_4K);
      this.mem.writeEach(checked, (stop - at) / SZ_2K);
      this.recorder.touchGfnRange(at, stop - at);
      this.recorder.touchFrameRange(checked, stop - at);
      at = stop;
    }
    const done = (at - gpa) / SZ_2K;
    if (done > 0) this.recorder.callRun(prim, { gpa, write: true, private: priv, len: 1 }, 'ok', done, GPA_ARG, SZ_2K);
    return done;
  }

  /**
   * One guest CPU access of `len` bytes (default 1) inside the 4K page at `gpa`, private (C-bit
   * set) or shared. A write gives the chunks fresh tokens; a read returns their tokens.
   */
  guestAccess(gpa: number, access: { write: boolean; private: boolean; len?: number }): GuestAccessResult {
    const prim = 'guest_access';
    checkAddress(prim, 'gpa', gpa);
    const len = access.len ?? 1;
    checkLength(prim, len);
    if (offsetIn(gpa, SZ_4K) + len > SZ_4K) throw new HardwareUsageError(prim, 'len', len, 'one access stays inside a 4K page');
    const args = { gpa, write: access.write, private: access.private, len };
    const checked = this.cpuCheck(gpa, access.write, access.private);
    if (typeof checked !== 'number') {
      this.raise(checked);
      this.recorder.touchGfn(Math.floor(gpa / SZ_4K));
      this.recorder.call(prim, args, checked.kind);
      return { ok: false, fault: checked };
    }
    let tokens: number[];
    if (access.write) {
      tokens = this.mem.write(checked, len);
      this.recorder.touchGfn(Math.floor(gpa / SZ_4K));
      this.recorder.touchFrame(Math.floor(checked / SZ_4K));
    } else {
      tokens = this.mem.read(checked, len);
    }
    this.recorder.call(prim, args, 'ok');
    return { ok: true, tokens };
  }

  /**
   * A guest memcpy (a swiotlb bounce): reads at `srcGpa`, writes at `dstGpa`, each page checked
   * like guestAccess, tokens copied chunk by chunk. Stops at the first fault; what was copied
   * before it stays copied (`copied` bytes), as with a real memcpy that faults midway.
   */
  guestCopy(srcGpa: number, srcPrivate: boolean, dstGpa: number, dstPrivate: boolean, len: number): GuestCopyResult {
    const prim = 'guest_copy';
    checkAddress(prim, 'srcGpa', srcGpa);
    checkAddress(prim, 'dstGpa', dstGpa);
    checkLength(prim, len);
    const args = { srcGpa, srcPrivate, dstGpa, dstPrivate, len };
    const tokens: number[] = [];
    let done = 0;
    while (done < len) {
      const src = srcGpa + done;
      const dst = dstGpa + done;
      const step = Math.min(len - done, SZ_4K - offsetIn(src, SZ_4K), SZ_4K - offsetIn(dst, SZ_4K));
      const srcHpa = this.cpuCheck(src, false, srcPrivate);
      const dstHpa = typeof srcHpa === 'number' ? this.cpuCheck(dst, true, dstPrivate) : srcHpa;
      if (typeof srcHpa !== 'number' || typeof dstHpa !== 'number') {
        const fault = typeof srcHpa !== 'number' ? srcHpa : (dstHpa as Fault);
        this.raise(fault);
        this.recorder.touchGfn(Math.floor(fault.addr / SZ_4K));
        this.recorder.call(prim, args, fault.kind);
        return { ok: false, fault, copied: done };
      }
      this.mem.copyInto(srcHpa, dstHpa, step, tokens);
      this.recorder.touchGfnRange(dst, step);
      this.recorder.touchFrameRange(dstHpa, step);
      done += step;
    }
    this.recorder.call(prim, args, 'ok');
    return { ok: true, tokens };
  }

  // =============================================================================================
  // Guest vIOMMU: the S1 of a nested device (IOVA -> GPA)

  s1Map(dev: number, iova: number, gpa: number, len: number): MapResult {
    const prim = 's1_map';
    const s1 = this.s1Of(prim, dev);
    checkAddress(prim, 'iova', iova);
    checkAddress(prim, 'gpa', gpa);
    checkLength(prim, len);
    const result = s1.map(iova, gpa, len);
    this.recorder.touchGfnRange(gpa, result.mapped);
    this.recorder.call(prim, { dev, iova, gpa, len }, result.error ?? result.mapped);
    return result;
  }

  s1Unmap(dev: number, iova: number, len: number): UnmapResult {
    const prim = 's1_unmap';
    const s1 = this.s1Of(prim, dev);
    checkAddress(prim, 'iova', iova);
    checkLength(prim, len);
    const result = this.unmapTouching(s1, iova, len, false);
    this.recorder.call(prim, { dev, iova, len }, result.error ?? result.unmapped);
    return result;
  }

  // =============================================================================================
  // Device DMA

  /**
   * A DMA of `len` bytes at `iova` by device `dev` (DOMAIN.md "Access checks"; research section
   * 2c). Per piece: S1 (nested devices: IOVA -> GPA), then the IOTLB (a hit uses the cached HPA
   * and size even when stale), else the S2 walk. The S2 leaf rounded down to {4K, 2M} is the
   * checked size; pieces split at S1 leaf and checked-region boundaries.
   *
   * The RMP is checked on every piece, IOTLB hit or not: the RMP is the security boundary and
   * RMPUPDATE does not flush IOTLBs, so a stale entry can reach a stale frame but not private
   * memory it was not checked against. (Whether the IOMMU caches the RMP verdict with the IOTLB
   * entry is not documented in our sources.)
   *
   * The DMA stops at the first failing piece and is ok:false; the pieces before it were already
   * transferred (their writes stay in memory, their tokens are returned), as with a real device
   * whose later TLP is aborted.
   */
  dma(dev: number, iova: number, len: number, write: boolean): DmaOutcome {
    const prim = 'dma';
    const device = this.dev(prim, dev);
    checkAddress(prim, 'iova', iova);
    checkLength(prim, len);
    if (iova + len > MAX_ADDRESS) throw new HardwareUsageError(prim, 'len', len, 'the DMA ends beyond 2^52');
    if (typeof write !== 'boolean') throw new HardwareUsageError(prim, 'write', write, 'expected a boolean');
    if (device.stalled) throw new HardwareUsageError(prim, 'dev', dev, 'the device is stalled: its DMA waits for dma_resume');
    this.counters.dmas++;
    const pieces: DmaPiece[] = [];
    const faults: Fault[] = [];
    const tokenRuns: number[] = [];
    const end = iova + len;
    let cur = iova;
    while (cur < end) {
      // Stage 1 (guest vIOMMU). The RMP never looks at S1 (Alexey, seed thread).
      let gpa = cur;
      let limit = end;
      let s1Size: number | undefined;
      if (device.s1 !== undefined) {
        const leaf = this.s1Leaf;
        if (!device.s1.leafInto(cur, leaf)) {
          faults.push(this.raise({ kind: 'io_page_fault', addr: cur, dev, write, reason: 's1 not present' }));
          break;
        }
        gpa = leaf.pa + (cur - leaf.iova);
        s1Size = leaf.size;
        limit = Math.min(end, leaf.iova + leaf.size);
      }

      // Stage 2, through the IOTLB.
      let checked: PageSize;
      let regionGpa: number;
      let regionHpa: number;
      let s2Size: number;
      const hit = device.iotlb.probe(gpa);
      const fromIotlb = hit !== undefined;
      if (hit !== undefined) {
        checked = hit.size;
        regionGpa = hit.addr;
        regionHpa = hit.hpa;
        // The S2 leaf is not walked on a hit: the cached size is all the IOMMU knows.
        s2Size = pageBytes(checked);
      } else {
        const leaf = this.s2Leaf;
        if (!device.s2.leafInto(gpa, leaf)) {
          const fault: Fault = { kind: 'io_page_fault', addr: cur, dev, write, reason: 's2 not present' };
          if (s1Size !== undefined) {
            fault.gpa = gpa;
            fault.s1Size = s1Size;
          }
          faults.push(this.raise(fault));
          break;
        }
        s2Size = leaf.size;
        // Leaves of 2M or more are checked (and cached) as 2M, smaller ones as 4K (Alexey, 22 Jan).
        checked = leaf.size >= SZ_2M ? '2M' : '4K';
        const bytes = pageBytes(checked);
        regionGpa = alignDown(gpa, bytes);
        // Leaves are aligned to their size in both IOVA and PA, so this is the region's base HPA.
        regionHpa = leaf.pa + (regionGpa - leaf.iova);
      }
      const hpa = regionHpa + (gpa - regionGpa);
      const pieceLen = Math.min(limit - cur, regionGpa + pageBytes(checked) - gpa);
      this.recorder.touchGfnRange(gpa, pieceLen);
      this.recorder.touchFrameRange(hpa, pieceLen);

      const reason = this.dmaRmpCheck(device, gpa, hpa, regionHpa, checked);
      if (reason !== '') {
        const fault: Fault = {
          kind: 'rmp_page_fault',
          addr: cur,
          hpa,
          dev,
          write,
          reason,
          s2Size,
          checkedSize: checked,
          rmpSize: this.rmpTable.sizeOf(Math.floor(hpa / SZ_4K)),
        };
        if (fromIotlb) fault.fromIotlb = true;
        if (s1Size !== undefined) {
          fault.gpa = gpa;
          fault.s1Size = s1Size;
        }
        faults.push(this.raise(fault));
        break;
      }
      if (!fromIotlb) device.iotlb.insert(regionGpa, regionHpa, checked);
      if (write) this.mem.writeRuns(hpa, pieceLen, tokenRuns);
      else this.mem.readRuns(hpa, pieceLen, tokenRuns);
      const piece: DmaPiece = {
        iova: cur,
        gpa,
        hpa,
        len: pieceLen,
        s2Size,
        checkedSize: checked,
        rmpSize: this.rmpTable.sizeOf(Math.floor(hpa / SZ_4K)),
        fromIotlb,
      };
      if (s1Size !== undefined) piece.s1Size = s1Size;
      pieces.push(piece);
      cur += pieceLen;
    }
    const ok = faults.length === 0;
    this.recorder.call(prim, { dev, iova, len, write }, ok ? 'ok' : (faults[0]?.kind ?? 'fault'));
    return withTokens({ ok, pieces, faults }, tokenRuns);
  }

  // =============================================================================================
  // Internals

  private dev(prim: string, id: number): Device {
    const device = this.byId.get(id);
    if (device === undefined) throw new HardwareUsageError(prim, 'dev', id, 'no such device');
    return device;
  }

  private s1Of(prim: string, dev: number): PageTable {
    const device = this.dev(prim, dev);
    if (device.s1 === undefined) throw new HardwareUsageError(prim, 'dev', dev, 'the device has no S1 (iommu "s2")');
    return device.s1;
  }

  private raise(fault: Fault): Fault {
    this.counters.faults++;
    this.recorder.fault(fault);
    return fault;
  }

  /** `count` faults like `first`, the i-th at `first.addr + i * stride`: a per-page loop's (Recorder.faultRun()). */
  private raiseRun(first: Fault, count: number, stride: number): void {
    this.counters.faults += count;
    this.recorder.faultRun(first, count, stride);
  }

  /**
   * The RMP check of one DMA piece; '' when it passes, else the reason.
   *
   * Trusted device in RUN, GPA below vTOM (private, SEV-TIO): the IOMMU checks that the frame is
   * "assigned to the correct ASID and the page size matches and the gfn matches" (Alexey, seed
   * thread, lore e8cb2549-6a17-47ce-8e9f-96c576890262@amd.com), with exactly the checked size and
   * no retry at 4K (5a3dfc0a-eca4-4de1-96cd-b4034f0b8e06@amd.com). 1:1 under vTOM: the RMP GPA must
   * be the accessed GPA. One entry suffices for a 2M check: a 2M entry governs its whole region.
   * Validated is NOT required: UNCONFIRMED (section 8), no source says the IOMMU checks it.
   *
   * Everything else (untrusted, not in RUN, or at/above vTOM) is shared DMA: the IOMMU "checks
   * that all DMA I/O happens to/from shared memory" (Ashish Kalra, AMDESE/AMDSEV #109), over the
   * whole checked region: a 2M leaf over a 2M region holding any private 4K fails (inferred from
   * Joerg Roedel's commit and the host rule, section 2c).
   */
  private dmaRmpCheck(device: Device, gpa: number, hpa: number, regionHpa: number, checked: PageSize): string {
    const pfn = Math.floor(hpa / SZ_4K);
    if (device.privateDma && gpa < this.vtom) {
      const entry = this.rmpTable.load(pfn, this.scratch);
      if (!entry.assigned) return 'not assigned';
      if (entry.asid !== this.asid) return 'asid mismatch';
      if (entry.gpa !== alignDown(gpa, SZ_4K)) return 'gpa mismatch';
      if (entry.size !== checked) return 'size mismatch';
      return '';
    }
    if (this.rmpTable.isAssigned(pfn)) return 'private memory';
    if (checked === '2M' && this.rmpTable.regionHasAssigned(Math.floor(regionHpa / SZ_4K))) return 'io 2M over assigned 4K';
    return '';
  }

  /**
   * The guest CPU's checks of one access (section 2b): returns the HPA, or the fault.
   * Private: assigned, the guest's ASID, RMP gpa = accessed GPA, NPT leaf not above nor below the
   * RMP size, then Validated (else #VC). Shared: the frame must be unassigned (KVM turns that
   * #NPF into an implicit conversion, sev_handle_rmp_fault()).
   */
  private cpuCheck(gpa: number, write: boolean, priv: boolean): number | Fault {
    const leaf = this.nptLeaf;
    if (!this.nptTable.leafInto(gpa, leaf)) return { kind: 'npf', addr: gpa, write, reason: 'not present' };
    const hpa = leaf.pa + (gpa - leaf.iova);
    const entry = this.rmpTable.load(Math.floor(hpa / SZ_4K), this.scratch);
    let reason = '';
    let kind: 'npf' | 'vc' = 'npf';
    if (priv) {
      if (!entry.assigned) reason = 'not assigned';
      else if (entry.asid !== this.asid) reason = 'asid mismatch';
      else if (entry.gpa !== alignDown(gpa, SZ_4K)) reason = 'gpa mismatch';
      // #NPF(RMP), recoverable by PSMASH + zapping the 2M GFN range (sev_handle_rmp_fault()).
      else if (leaf.size < SZ_2M && entry.size === '2M') reason = 'npt 4K over rmp 2M';
      // KVM never builds this (sev_gmem_max_mapping_level()); what the hardware does is
      // UNCONFIRMED (section 8), so we raise an RMP #NPF the npt-rmp-size oracle points at.
      else if (leaf.size >= SZ_2M && entry.size === '4K') reason = 'npt 2M over rmp 4K';
      else if (!entry.validated) {
        kind = 'vc';
        reason = 'not validated';
      }
    } else if (entry.assigned) {
      reason = 'shared access to assigned page';
    }
    if (reason === '') return hpa;
    const fault: Fault = { kind, addr: gpa, hpa, write, reason, nptSize: leaf.size, rmpSize: entry.size };
    if (kind === 'npf') fault.rmp = true;
    return fault;
  }

  private touchMapped(gpa: number, hpa: number, mapped: number): void {
    if (mapped <= 0) return;
    this.recorder.touchGfnRange(gpa, mapped);
    this.recorder.touchFrameRange(hpa, mapped);
  }

  /**
   * Unmap, touching the GFNs (and for GPA->HPA tables the frames) of the leaves it removed.
   * `leafSize`: the range is whole leaves of that size, unmapped as one by one (PageTable.unmapLeaves()).
   */
  private unmapTouching(table: PageTable, addr: number, len: number, outputIsHpa: boolean, leafSize?: number, synced = false): UnmapResult {
    // The removed leaves tile [addr, addr + unmapped): the walk reports them as runs.
    const runs = this.removedRuns;
    const result = synced ? table.unmapSynced(addr, len, runs) : leafSize === undefined ? table.unmap(addr, len, runs) : table.unmapLeaves(addr, len, leafSize, runs);
    for (let r = 0; r < runs.length; r += 3) {
      const iova = runs[r]!;
      const pa = runs[r + 1]!;
      const size = runs[r + 2]!;
      if (outputIsHpa) {
        this.recorder.touchGfnRange(iova, size);
        this.recorder.touchFrameRange(pa, size);
      } else {
        this.recorder.touchGfnRange(pa, size);
      }
    }
    return result;
  }

  /**
   * Replace the leaf holding `gpa` by leaves of `size` as one range operation: unmap the leaf (its
   * range is gathered for the IOTLB flush) and map the same range again with leaves capped at
   * `size` (pagetable.ts places them table by table).
   */
  private splitLeaf(table: PageTable, gpa: number, size: number): SplitResult {
    const leaf = this.splitScratch;
    if (!table.leafInto(gpa, leaf)) return 'ENXIO';
    if (size >= leaf.size || !table.pgsizes.includes(size)) return 'EINVAL';
    const unmapped = table.unmap(leaf.iova, leaf.size);
    if (unmapped.error !== undefined) return unmapped.error;
    this.recorder.touchGfnRange(leaf.iova, leaf.size);
    this.recorder.touchFrameRange(leaf.pa, leaf.size);
    const mapped = table.map(leaf.iova, leaf.pa, leaf.size, size);
    return mapped.error ?? 'ok';
  }
}

function checkAddress(prim: string, name: string, value: unknown, alignment = 1): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > MAX_ADDRESS) {
    throw new HardwareUsageError(prim, name, value, 'expected an integer address in [0, 2^52]');
  }
  if (offsetIn(value, alignment) !== 0) throw new HardwareUsageError(prim, name, value, `must be aligned to ${alignment} bytes`);
}

function checkLength(prim: string, value: unknown, name = 'len'): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0 || value > MAX_ADDRESS) {
    throw new HardwareUsageError(prim, name, value, 'expected a positive integer');
  }
}

