// Hardware-level types shared by the model and read by oracles. Status codes are the real ones
// (Linux arch/x86/include/asm/sev.h, VeriSMo def_s.rs; see research/amd-snp.md section 3).

import type { PageSize } from './size.ts';

export const RMPUPDATE_OK = 0;
export const RMPUPDATE_FAIL_INPUT = 1;
export const RMPUPDATE_FAIL_PERMISSION = 2;
export const RMPUPDATE_FAIL_INUSE = 3;
/** "detected 4K page and 2MB page overlap" (Linux RMPUPDATE_FAIL_OVERLAP). */
export const RMPUPDATE_FAIL_OVERLAP = 4;

export const PSMASH_OK = 0;
export const PSMASH_FAIL_INPUT = 1;
export const PSMASH_FAIL_INUSE = 3;

export const PVALIDATE_OK = 0;
export const PVALIDATE_FAIL_INPUT = 1;
export const PVALIDATE_FAIL_PERMISSION = 2;
export const PVALIDATE_FAIL_SIZEMISMATCH = 6;
/** CF=1: the entry was already in the requested state (Linux PVALIDATE_FAIL_NOUPDATE). */
export const PVALIDATE_FAIL_NOUPDATE = 255;

/** One RMP entry as RMPREAD reports it, with `size` taken from the authoritative 2M-aligned entry. */
export interface RmpEntry {
  assigned: boolean;
  asid: number;
  /** The guest physical address this frame is assigned at (for a 2M entry: this frame's own GPA). */
  gpa: number;
  size: PageSize;
  validated: boolean;
  immutable: boolean;
  vmsa: boolean;
}

export interface RmpUpdateArgs {
  assigned: boolean;
  asid: number;
  gpa: number;
  size: PageSize;
  immutable?: boolean;
}

export type FaultKind =
  /** Guest CPU: nested page fault to the host (not present, RMP check, or SIZEM). */
  | 'npf'
  /** Guest CPU: #VC page-not-validated, delivered to the guest. */
  | 'vc'
  /** Host CPU write hit an RMP check. */
  | 'host_rmp_pf'
  /** IOMMU event 0xD: DMA failed the RMP check. */
  | 'rmp_page_fault'
  /** IOMMU: no translation in S1 or S2. */
  | 'io_page_fault';

export interface Fault {
  kind: FaultKind;
  /** The address the access used: GPA for CPU accesses, IOVA for DMA, HPA for host writes. */
  addr: number;
  hpa?: number;
  dev?: number;
  write: boolean;
  /** Why, in words a kernel engineer recognises: "size mismatch", "not validated", "asid mismatch"... */
  reason: string;
  /** NPF error-code bits (PFERR_GUEST_RMP, PFERR_GUEST_SIZEM). */
  rmp?: boolean;
  sizem?: boolean;
  /** The GPA behind `addr` when it differs (a DMA through S1: `addr` is the IOVA). */
  gpa?: number;
  /** Page sizes on each table at the faulting address, for explain. */
  s1Size?: number;
  s2Size?: number;
  nptSize?: number;
  rmpSize?: PageSize;
  /** DMA: the S2 leaf rounded down to {4K, 2M}, the size the RMP check used. */
  checkedSize?: PageSize;
  /**
   * DMA: the translation came from the IOTLB, not a walk of the S2: `s2Size` is then the size the
   * IOTLB cached, which the S2 may no longer have (a cut the host did not invalidate).
   */
  fromIotlb?: boolean;
}

/**
 * Faults of a per-page loop as one record (Recorder.faultRun()): `count` faults like `first`,
 * the i-th at `first.addr + i * stride`. Step.faults expands them on first read.
 */
export interface FaultRun {
  readonly first: Fault;
  readonly count: number;
  readonly stride: number;
}

export type FaultRecord = Fault | FaultRun;

export const isFaultRun = (record: FaultRecord): record is FaultRun => 'first' in record;

/**
 * A step's faults as recorded, for readers that need only their kinds (coverage, behaviours): a
 * step the engine recorded keeps a per-page loop's faults as one FaultRun; a step built by hand
 * has only `faults`.
 */
export function faultRecordsOf(step: { readonly faults: readonly Fault[] }): readonly FaultRecord[] {
  return (step as { readonly faultRecords?: readonly FaultRecord[] }).faultRecords ?? step.faults;
}

/** The kind of the faults a record stands for. */
export const faultKindOf = (record: FaultRecord): FaultKind => (isFaultRun(record) ? record.first.kind : record.kind);

/** The faults `records` stand for, one by one. */
export function expandFaults(records: readonly FaultRecord[]): Fault[] {
  const out: Fault[] = [];
  for (const record of records) {
    if (!isFaultRun(record)) out.push(record);
    else for (let i = 0; i < record.count; i++) out.push({ ...record.first, addr: record.first.addr + i * record.stride });
  }
  return out;
}

/** A hardware primitive the actors (or a policy) called, with its arguments and result. */
export interface PrimitiveCall {
  prim: string;
  args: Record<string, number | string | boolean>;
  result: number | string;
  /**
   * Made by the interleaved op `during[i]` of the step's op (or by host work it triggered); absent
   * for the op's own calls, which are the ones `after: K` counts.
   */
  during?: number;
}

/**
 * `count` calls of one primitive with one result, recorded as one record: the first call's
 * prim, args and result, and each argument named in `strided` advancing by `stride` from one
 * call to the next (call i has args[k] + i * stride). A per-leaf or per-page loop of the model
 * (an NPT zap of 512 4K leaves) is one record instead of 512 (issue 15: a recorder that reports
 * ranges). Only where no interleaved op can run between the calls: a run never has `during`.
 */
export interface CallRun extends PrimitiveCall {
  count: number;
  stride: number;
  strided: readonly string[];
  /**
   * Set when a block of `period` calls repeats (a page faulted in: PVALIDATE #NPF, NPT map,
   * PVALIDATE again): the block's records are consecutive, each with its `phase` (0..period-1)
   * and the same count, and the step made their calls interleaved, block after block (call i of
   * the run with phase j is the step's call period * i + j from the block's first). A single
   * run has neither.
   */
  period?: number;
  phase?: number;
}

/** What a step's record list holds: a call, or a run of calls (CallRun, count >= 2). */
export type CallRecord = PrimitiveCall | CallRun;

/** How many calls a record stands for. */
export const callsIn = (record: CallRecord): number => ('count' in record ? record.count : 1);

/** Numeric argument `key` of call `i` of a record, without making the call (callAt()). */
export function argAt(record: CallRecord, key: string, i: number): number {
  const value = Number(record.args[key]);
  return 'count' in record && record.strided.includes(key) ? value + i * record.stride : value;
}

/** Call `i` of a record (0 for a plain call), as the call it stands for. */
export function callAt(record: CallRecord, i: number): PrimitiveCall {
  if (!('count' in record)) return record;
  const args = { ...record.args };
  for (const key of record.strided) args[key] = Number(record.args[key]) + i * record.stride;
  return { prim: record.prim, args, result: record.result };
}

/** Every call the records stand for, in order (runs expanded, blocks interleaved). */
export function expandCalls(records: readonly CallRecord[]): PrimitiveCall[] {
  const out: PrimitiveCall[] = [];
  for (let r = 0; r < records.length; r++) {
    const record = records[r]!;
    if (!('count' in record)) {
      out.push(record);
      continue;
    }
    const period = record.period ?? 1;
    for (let i = 0; i < record.count; i++) for (let j = 0; j < period; j++) out.push(callAt(records[r + j]!, i));
    r += period - 1;
  }
  return out;
}

/** One piece of a DMA after splitting at leaf boundaries: what the IOMMU checked. */
export interface DmaPiece {
  iova: number;
  gpa: number;
  hpa: number;
  len: number;
  s1Size?: number;
  s2Size: number;
  /** The S2 leaf rounded down to {4K, 2M}: the size the RMP check used. */
  checkedSize: PageSize;
  rmpSize?: PageSize;
  fromIotlb: boolean;
}

export interface DmaResult {
  ok: boolean;
  pieces: DmaPiece[];
  faults: Fault[];
}
