// The Linux SEV-SNP guest's memory management: acceptance (snp_accept_memory()), page state
// changes (__set_pages_state() with pvalidate_pages() / pval_pages() and vmgexit_psc()) and CPU
// accesses, over the hardware primitives. Every #NPF exit goes to the host and the instruction is
// retried; where Linux would terminate the guest (or the vCPU could never make progress) the
// guest records a `fatal` event naming the Linux code that gives up, and the guest-alive oracle
// reports it.
//
// Sources: arch/x86/coco/sev/core.c (set_pages_state(), __set_pages_state(), pvalidate_pages(),
// pval_pages(), vmgexit_psc(), snp_accept_memory()), arch/x86/coco/sev/vc-handle.c
// (vc_handle_exitcode()); research/amd-snp.md sections 3-4.

import type { GuestEvent, GuestEventRecord, GuestEventRun, GuestFatalCause } from '../api.ts';
import type { Machine } from '../model/machine.ts';
import { alignDown, FRAMES_PER_2M, offsetIn, type PageSize, SZ_2K, SZ_2M, SZ_4K } from '../model/size.ts';
import { PVALIDATE_FAIL_NOUPDATE, PVALIDATE_FAIL_SIZEMISMATCH, PVALIDATE_OK, type Fault, type PrimitiveCall } from '../model/types.ts';
import type { Config } from '../ops/types.ts';
import type { ConversionStep, GuestContext, GuestPolicy, SizeMismatchAction } from '../policies/types.ts';
import type { ActorEnv } from '../host/env.ts';
import { describeValue } from '../policies/check.ts';
import { PSC_MAX_ENTRIES, type Hypervisor, type PscDesc, type PscEntry } from './ghcb.ts';
import { ACCEPTED, CONVERTING, PageStates, SHARED, VALIDATED } from './pages.ts';

/**
 * A #NPF that recurs this many times in a row with no RMP or NPT change in between is a livelock.
 * The simulator is deterministic: once the host returns without changing a table, the retried
 * instruction meets the same tables and faults the same way forever (real KVM may return once
 * without a change when it raced an invalidation, RET_PF_RETRY; a stateful policy may act on its
 * second look). Three repeats leave room for both and still stop a livelock within a few calls.
 */
export const LIVELOCK_REPEATS = 3;
/** #NPF exits of one instruction after which the guest gives up even if the host keeps changing
 *  tables without resolving the fault (a host that undoes its own fix). */
export const MAX_NPF_EXITS = 16;
/** VMGEXITs of one PSC request that make no progress before the guest gives up (vmgexit_psc()
 *  would loop forever). */
export const MAX_PSC_STALLS = 8;
/** An instruction that never completed (the host did not resolve its #NPF). */
export const LIVELOCK = -1;

/** What the guest did and reported during one step. */
export interface GuestLog {
  /** A run of like events may be one record (Step.guestEventRuns). */
  events: GuestEventRecord[];
  /** Conditions Linux would WARN about or terminate on (sev_es_terminate()). */
  errors: string[];
  /** What the op returned to its caller when it did not simply succeed. */
  result: string | undefined;
  /** Guest frames of the step's rescind/PSC/validate ranges ([start, end) gfns). */
  converting: { start: number; end: number }[];
}

/** Calls that change what the CPU's next attempt meets: the RMP and the NPT. */
function changesTables(call: PrimitiveCall): boolean {
  switch (call.prim) {
    case 'rmpupdate':
    case 'psmash':
      return call.result === 0;
    case 'npt_split':
      return call.result === 'ok';
    case 'npt_map':
    case 'npt_unmap':
      return typeof call.result === 'number' && call.result > 0;
    default:
      return false;
  }
}

/** One instruction's #NPF exits so far. */
interface FaultLoop {
  exits: number;
  /** Consecutive exits after which the host had changed no table. */
  repeats: number;
}

const hexOf = (n: number): string => `0x${n.toString(16)}`;

/** The 4K pages of a PSC entry. */
const pagesOf = (entry: PscEntry): number => (entry.size === '2M' ? FRAMES_PER_2M : 1);

/** The pages of a PSC descriptor's entries done so far (cur_page, summed). */
function pscProgress(entries: readonly PscEntry[]): number {
  let sum = 0;
  for (const e of entries) sum += Math.min(e.curPage, pagesOf(e));
  return sum;
}

/** The end (exclusive, at most `limit`) of the stretch of entries from `i` that follow each other without a gap. */
function stretchEnd(entries: readonly PscEntry[], i: number, limit: number): number {
  let end = i + 1;
  while (end < limit && entries[end]!.gfn === entries[end - 1]!.gfn + pagesOf(entries[end - 1]!)) end++;
  return end;
}
const accessWhat = (gpa: number, write: boolean, priv: boolean): string => `${priv ? 'private' : 'shared'} ${write ? 'write' : 'read'} of ${hexOf(gpa)}`;

export function linuxPageSize(gpa: number, remaining: number): PageSize {
  return offsetIn(gpa, SZ_2M) === 0 && remaining >= SZ_2M ? '2M' : '4K';
}

export function linuxConversionSteps(to: 'shared' | 'private'): readonly ConversionStep[] {
  return to === 'shared' ? ['rescind', 'psc'] : ['psc', 'validate'];
}

export class GuestMemory {
  readonly pages = new PageStates();

  constructor(
    private readonly machine: Machine,
    private readonly config: Config,
    private readonly policy: GuestPolicy,
    private readonly ctx: GuestContext,
    private readonly env: ActorEnv,
    private readonly hv: Hypervisor,
    private readonly log: GuestLog,
  ) {}

  /** Linux terminates the guest here (or the vCPU can never make progress). */
  private fatal(cause: GuestFatalCause, gpa: number, message: string): void {
    this.log.errors.push(message);
    this.log.events.push({ kind: 'fatal', cause, gpa, message });
  }

  /**
   * Hand a #NPF to the host; false when the guest must give up: the fault came back
   * LIVELOCK_REPEATS times with no table change, or MAX_NPF_EXITS exits did not resolve it.
   */
  private exitToHost(loop: FaultLoop, fault: Fault, access: { private: boolean; write: boolean }): boolean {
    const recorder = this.machine.recorder;
    const mark = recorder.callCount;
    this.hv.npf(fault, access);
    loop.exits++;
    loop.repeats = recorder.someSince(mark, changesTables) ? 0 : loop.repeats + 1;
    return loop.repeats < LIVELOCK_REPEATS && loop.exits < MAX_NPF_EXITS;
  }

  private livelock(loop: FaultLoop, gpa: number, what: string, fault: Fault): void {
    const why = loop.repeats >= LIVELOCK_REPEATS ? `the same #NPF ${loop.repeats} times with no RMP or NPT change` : `${loop.exits} #NPF exits without progress`;
    this.fatal('livelock', gpa, `${what}: livelock, ${why} (${fault.reason}): the vCPU never makes progress`);
  }

  private touch(gpa: number, len: number): void {
    this.machine.recorder.touchGfnRange(gpa, len);
  }

  // ---- instructions with #NPF handling -------------------------------------------------------

  /** One PVALIDATE, retried after each #NPF the host handles; the status, or LIVELOCK. */
  pvalidate(gpa: number, size: PageSize, validate: boolean): number {
    const loop: FaultLoop = { exits: 0, repeats: 0 };
    for (;;) {
      this.env.charge();
      const result = this.machine.pvalidate(gpa, size, validate);
      if ('status' in result) {
        this.log.events.push({ kind: 'pvalidate', gpa, size, validate, status: result.status });
        return result.status;
      }
      if (!this.exitToHost(loop, result.npf, { private: true, write: false })) {
        this.livelock(loop, gpa, `PVALIDATE ${hexOf(gpa)} ${size} ${validate ? 'validate' : 'rescind'}`, result.npf);
        return LIVELOCK;
      }
    }
  }

  /**
   * pvalidate_pages(): one entry at its size; a 2M request the RMP holds at 4K
   * (FAIL_SIZEMISMATCH) is retried as 512 4K requests (pval_pages()), or whatever the policy's
   * sizeMismatch hook says.
   */
  pvalidateEntry(gpa: number, size: PageSize, validate: boolean): boolean {
    const status = this.pvalidate(gpa, size, validate);
    if (size === '2M' && status === PVALIDATE_FAIL_SIZEMISMATCH) {
      const action = this.sizeMismatch(gpa, validate);
      if (action === 'success') return true;
      if (action === 'retry-4k') return this.pvalidatePages(gpa, FRAMES_PER_2M, validate);
    }
    const bytes = size === '2M' ? SZ_2M : SZ_4K;
    if (status === PVALIDATE_OK || status === PVALIDATE_FAIL_NOUPDATE) {
      // pvalidate() turns CF=1 into PVALIDATE_FAIL_NOUPDATE, and pval_pages() terminates on any
      // status but SIZEMISMATCH (__pval_terminate()). The model goes on as if it had not, so
      // that the oracles still see what the host left behind.
      if (status === PVALIDATE_FAIL_NOUPDATE) {
        this.fatal('pvalidate', gpa, `PVALIDATE ${hexOf(gpa)} ${size} ${validate ? 'validate' : 'rescind'}: already in that state (CF=1): pval_pages() terminates the guest`);
      }
      this.pages.updateRange(gpa / SZ_4K, (gpa + bytes) / SZ_4K, validate ? VALIDATED : 0, validate ? 0 : VALIDATED);
      this.touch(gpa, bytes);
      return true;
    }
    if (status !== LIVELOCK) {
      this.fatal('pvalidate', gpa, `PVALIDATE ${hexOf(gpa)} ${size} ${validate ? 'validate' : 'rescind'} failed with status ${status}: pval_pages() terminates the guest`);
    }
    return false;
  }

  /** pvalidateEntry() at 4K for `pages` pages from `gpa`, one after the other, until one fails. */
  pvalidatePages(gpa: number, pages: number, validate: boolean): boolean {
    for (let page = 0; page < pages; ) {
      const at = gpa + page * SZ_4K;
      const faultedIn = this.pvalidateFaultIn(at, pages - page, validate);
      if (faultedIn > 0) {
        page += faultedIn;
        continue;
      }
      if (!this.pvalidateEntry(at, '4K', validate)) return false;
      page++;
    }
    return true;
  }

  /**
   * The common case of pvalidatePages() taken as one range (issue 15): pages the NPT does not map
   * take a not-present #NPF on their PVALIDATE, the host maps each at 4K (Hypervisor.faultInPlan()
   * says where it would do only that), and the retry succeeds. The machine runs the leading pages
   * where all of that holds as one block of calls (Machine.pvalidateFaultIn()); the guest logs what
   * pvalidateEntry() logs per page. Pages the NPT maps already take no #NPF: their PVALIDATEs are
   * one run (Machine.pvalidateMapped()). Returns the pages done, 0 where the pages go one by one: an
   * interleaved op may run between two calls (Recorder.batching), the budget ends inside them, or
   * fewer than two pages qualify.
   */
  private pvalidateFaultIn(gpa: number, pages: number, validate: boolean): number {
    const machine = this.machine;
    // One 2M region at a time: a page that must go on its own costs the next attempt one region's
    // look ahead at most.
    pages = Math.min(pages, (alignDown(gpa, SZ_2M) + SZ_2M - gpa) / SZ_4K);
    if (pages < 2 || !machine.recorder.batching) return 0;
    const leaf = this.leafScratch;
    if (machine.npt.leafInto(gpa, leaf)) {
      // Mapped pages: no #NPF, the PVALIDATEs succeed or not on the RMP alone.
      const hpa = leaf.pa + (gpa - leaf.iova);
      const mapped = (machine.npt.linearEnd(gpa, gpa + pages * SZ_4K, hpa) - gpa) / SZ_4K;
      if (mapped < 2 || !this.env.chargeRun(mapped)) return 0;
      return this.logPvalidated(gpa, machine.pvalidateMapped(gpa, hpa, mapped, validate), validate);
    }
    // The host's answer first: it refuses on the first page alone, where the NPT scan would not.
    const plan = this.hv.faultInPlan?.(gpa, pages);
    if (plan === undefined || plan.pages < 2) {
      // Pages the host would prepare before it maps them (none backed yet: an unshare, an accept).
      const prepared = validate ? (this.hv.prepareFaultIn?.(gpa, pages) ?? 0) : 0;
      return prepared === 0 ? 0 : this.logPvalidated(gpa, prepared, validate);
    }
    const unmapped = (machine.npt.nextMapped(gpa, gpa + plan.pages * SZ_4K) - gpa) / SZ_4K;
    // Three calls a page: the PVALIDATE, the host's npt_map, the retry (each charged before it).
    if (unmapped < 2 || !this.env.chargeRun(3 * unmapped)) return 0;
    return this.logPvalidated(gpa, machine.pvalidateFaultIn(gpa, plan.hpa, unmapped, validate), validate);
  }

  /** What pvalidateEntry() logs and marks for `done` pages from `gpa` whose 4K PVALIDATE succeeded. */
  private logPvalidated(gpa: number, done: number, validate: boolean): number {
    // One record for the pages, as many events as pvalidateEntry() logs.
    this.logRun({ kind: 'pvalidate', gpa, size: '4K', validate, status: PVALIDATE_OK }, done, SZ_4K);
    const gfn = gpa / SZ_4K;
    this.pages.updateRange(gfn, gfn + done, validate ? VALIDATED : 0, validate ? 0 : VALIDATED);
    this.touch(gpa, done * SZ_4K);
    return done;
  }

  /** The NPT leaf a lookup reads (leafInto), so that a lookup allocates nothing. */
  private readonly leafScratch = { iova: 0, pa: 0, size: 0 };

  /** One attempt of a CPU access: 'ok', 'vc' (fatal: Linux terminates), or the #NPF for the host. */
  tryAccess(gpa: number, write: boolean, priv: boolean): 'ok' | 'vc' | Fault {
    const result = this.machine.guestAccess(gpa, { write, private: priv });
    if (result.ok) {
      this.log.events.push({ kind: 'access', gpa, write, private: priv, ok: true });
      return 'ok';
    }
    if (result.fault.kind !== 'npf') {
      this.log.events.push({ kind: 'access', gpa, write, private: priv, ok: false });
      this.vc(gpa, accessWhat(gpa, write, priv), result.fault);
      return 'vc';
    }
    return result.fault;
  }

  private sizeMismatch(gpa: number, validate: boolean): SizeMismatchAction {
    const policy = this.policy;
    if (!policy.sizeMismatch) return 'retry-4k';
    return this.env.guard(() => {
      const chosen: unknown = policy.sizeMismatch?.(this.ctx, { gpa, validate });
      if (chosen !== 'retry-4k' && chosen !== 'success' && chosen !== 'fail') {
        throw new Error(`sizeMismatch returned ${describeValue(chosen)}, expected "retry-4k", "success" or "fail"`);
      }
      return chosen;
    });
  }

  /**
   * One-byte private or shared CPU writes at `count` 2K chunks from `gpa` (2K-aligned), as
   * access() makes them one by one: the leading chunks that succeed at once as one run of calls
   * (Machine.guestWriteRun()), where no interleaved op can run in between and the budget takes
   * them all. Returns how many were written (0: go one by one).
   */
  writeChunks(gpa: number, count: number, priv: boolean): number {
    if (count < 2 || !this.machine.recorder.batching || !this.env.chargeRun(count)) return 0;
    const done = this.machine.guestWriteRun(gpa, count, priv);
    this.logRun({ kind: 'access', gpa, write: true, private: priv, ok: true }, done, SZ_2K);
    return done;
  }

  /** A CPU access with #NPF handling; false after a #VC or a livelock. */
  access(gpa: number, write: boolean, priv: boolean): boolean {
    const loop: FaultLoop = { exits: 0, repeats: 0 };
    for (;;) {
      this.env.charge();
      const outcome = this.tryAccess(gpa, write, priv);
      if (outcome === 'ok') return true;
      if (outcome === 'vc') return false;
      if (!this.exitToHost(loop, outcome, { private: priv, write })) {
        this.log.events.push({ kind: 'access', gpa, write, private: priv, ok: false });
        this.livelock(loop, gpa, accessWhat(gpa, write, priv), outcome);
        return false;
      }
    }
  }

  /** A #VC the kernel cannot handle (page not validated): vc_handle_exitcode() has no case for
   *  it, the handler reports it unsupported and terminates the guest. */
  private vc(gpa: number, what: string, fault: Fault): void {
    this.fatal('vc', gpa, `${what}: #VC ${fault.reason}: vc_handle_exitcode() cannot handle it, Linux terminates the guest`);
  }

  /** A memcpy between guest buffers (a swiotlb bounce), resumed after each #NPF. */
  copy(src: number, srcPrivate: boolean, dst: number, dstPrivate: boolean, len: number): boolean {
    let done = 0;
    let loop: FaultLoop = { exits: 0, repeats: 0 };
    while (done < len) {
      this.env.charge();
      const result = this.machine.guestCopy(src + done, srcPrivate, dst + done, dstPrivate, len - done);
      if (result.ok) return true;
      if (result.copied > 0) loop = { exits: 0, repeats: 0 };
      done += result.copied;
      const fault = result.fault;
      const onSource = fault.addr === src + done;
      const what = `bounce copy ${hexOf(src)} -> ${hexOf(dst)} at ${hexOf(fault.addr)}`;
      if (fault.kind !== 'npf') {
        this.vc(fault.addr, what, fault);
        return false;
      }
      if (!this.exitToHost(loop, fault, { private: onSource ? srcPrivate : dstPrivate, write: !onSource })) {
        this.livelock(loop, fault.addr, what, fault);
        return false;
      }
    }
    return true;
  }

  // ---- acceptance -----------------------------------------------------------------------------

  /**
   * Accept the unaccepted pages of [start, end): snp_accept_memory() is set_pages_state(PRIVATE),
   * a PSC to private followed by PVALIDATE at 2M where the GPA is 2M-aligned and 2M remain.
   */
  acceptRange(start: number, end: number): boolean {
    let ok = true;
    end = Math.min(end, this.config.guestMemory);
    // Walked run by run of equal page flags (PageStates.runEnd), in gfns.
    const last = Math.ceil(end / SZ_4K);
    let gfn = Math.floor(start / SZ_4K);
    while (gfn < last) {
      if (this.pages.has(gfn, ACCEPTED)) {
        gfn = this.pages.runEnd(gfn, last);
        continue;
      }
      let runEnd = gfn;
      while (runEnd < last && !this.pages.has(runEnd, ACCEPTED)) runEnd = this.pages.runEnd(runEnd, last);
      if (this.setPagesState(gfn * SZ_4K, runEnd * SZ_4K, 'private', 'accept')) this.pages.updateRange(gfn, runEnd, ACCEPTED, 0);
      else ok = false;
      gfn = runEnd;
    }
    return ok;
  }

  /** accept_memory() on allocation: the 2M units (the EFI unaccepted bitmap's unit_size) of the range. */
  acceptUnits(start: number, end: number): boolean {
    return this.acceptRange(alignDown(start, SZ_2M), Math.min(this.config.guestMemory, alignDown(end + SZ_2M - 1, SZ_2M)));
  }

  // ---- page state changes ---------------------------------------------------------------------

  /**
   * __set_pages_state() over [start, end) in descriptors of at most 253 entries: to shared,
   * rescind then PSC; to private, PSC then validate (or the policy's order). Returns false when
   * something failed; pages whose change did not complete stay marked converting.
   */
  setPagesState(start: number, end: number, to: 'shared' | 'private', purpose: 'accept' | 'convert'): boolean {
    // The PSC entries themselves (struct psc_entry), which vmgexit_psc() hands the host batch by batch.
    const entries: PscEntry[] = [];
    const policy = this.policy;
    for (let gpa = start; gpa < end; ) {
      const remaining = end - gpa;
      const size = policy.pageSize
        ? this.env.guard(() => {
            const chosen = policy.pageSize?.(this.ctx, { gpa, remaining, purpose });
            if (chosen !== '4K' && chosen !== '2M') throw new Error(`pageSize returned ${describeValue(chosen)}, expected "4K" or "2M"`);
            // No silent correction: a 2M PSC entry or PVALIDATE must be 2M-aligned and fit the
            // range (__set_pages_state()); the policy chose one that is not.
            if (chosen === '2M' && (offsetIn(gpa, SZ_2M) !== 0 || remaining < SZ_2M)) {
              throw new Error(`pageSize returned "2M" at gpa ${hexOf(gpa)} with ${hexOf(remaining)} bytes remaining: a 2M entry needs a 2M-aligned gpa and 2M to go`);
            }
            return chosen;
          })
        : linuxPageSize(gpa, remaining);
      entries.push({ gfn: gpa / SZ_4K, size, op: to, curPage: 0 });
      gpa += size === '2M' ? SZ_2M : SZ_4K;
    }
    const steps = policy.conversionSteps
      ? this.env.guard(() => {
          const chosen: unknown = policy.conversionSteps?.(this.ctx, { to, purpose, gpa: start, len: end - start });
          const valid = (s: unknown): s is ConversionStep => s === 'rescind' || s === 'psc' || s === 'validate';
          if (!Array.isArray(chosen) || !chosen.every(valid)) throw new Error(`conversionSteps returned ${describeValue(chosen)}, expected an array of "rescind", "psc" and "validate"`);
          return chosen;
        })
      : linuxConversionSteps(to);
    for (let first = 0; first < entries.length; first += PSC_MAX_ENTRIES) {
      const batch = entries.length <= PSC_MAX_ENTRIES ? entries : entries.slice(first, first + PSC_MAX_ENTRIES);
      if (!this.changeBatch(batch, to, steps)) return false;
    }
    return true;
  }

  private changeBatch(batch: PscEntry[], to: 'shared' | 'private', steps: readonly ConversionStep[]): boolean {
    // A stretch of adjacent entries is one range (what Step.converting says of their pages).
    for (let i = 0; i < batch.length; ) {
      const end = stretchEnd(batch, i, batch.length);
      this.log.converting.push({ start: batch[i]!.gfn, end: batch[end - 1]!.gfn + pagesOf(batch[end - 1]!) });
      i = end;
    }
    this.markEntries(batch, 0, batch.length, CONVERTING, 0, true);
    for (const step of steps) {
      if (step === 'psc') {
        if (!this.psc(batch, to)) return false;
        continue;
      }
      const validate = step === 'validate';
      for (let i = 0; i < batch.length; ) {
        const entry = batch[i]!;
        if (entry.size === '2M') {
          if (!this.pvalidateEntry(entry.gfn * SZ_4K, '2M', validate)) return false;
          i++;
          continue;
        }
        // A stretch of adjacent 4K entries: pvalidatePages() may take it as one range.
        let pages = 1;
        while (batch[i + pages]?.size === '4K' && batch[i + pages]!.gfn === entry.gfn + pages) pages++;
        if (!this.pvalidatePages(entry.gfn * SZ_4K, pages, validate)) return false;
        i += pages;
      }
    }
    this.markEntries(batch, 0, batch.length, 0, CONVERTING, false);
    return true;
  }

  /**
   * Set and clear page flags over the pages of entries [from, to), and touch them when asked:
   * stretch by stretch of adjacent entries, the same flags and (merged) touched ranges as entry
   * by entry, without a call per 4K entry.
   */
  private markEntries(entries: readonly PscEntry[], from: number, to: number, set: number, clear: number, touch: boolean): void {
    for (let i = from; i < to; ) {
      const end = stretchEnd(entries, i, to);
      const first = entries[i]!.gfn;
      const last = entries[end - 1]!.gfn + pagesOf(entries[end - 1]!);
      this.pages.updateRange(first, last, set, clear);
      if (touch) this.touch(first * SZ_4K, (last - first) * SZ_4K);
      i = end;
    }
  }

  /**
   * `count` events like `event` (a fresh object, the caller's literal), the gpa advancing by
   * `stride`: one record (Step.guestEventRuns), a plain event when there is one, nothing when
   * there is none. The run is the event with `count` and `stride` added, keys in the order a spread
   * gives: `{ ...event, count, stride }` of these three event shapes went through V8's slow
   * object-clone path, 1.7 us a record against 40 ns (3.3% of raw replay's busy time).
   */
  private logRun(event: Extract<GuestEvent, { kind: 'pvalidate' | 'psc' | 'access' }>, count: number, stride: number): void {
    if (count === 1) this.log.events.push(event);
    else if (count > 1) {
      const run = event as GuestEventRun;
      run.count = count;
      run.stride = stride;
      this.log.events.push(run);
    }
  }

  /**
   * A `psc` event (done) for each of entries [from, to): adjacent entries of one size as one
   * record (Step.guestEventRuns).
   */
  private logPscDone(entries: readonly PscEntry[], from: number, to: number, target: 'shared' | 'private'): void {
    for (let i = from; i < to; ) {
      const entry = entries[i]!;
      const pages = pagesOf(entry);
      let end = i + 1;
      while (end < to && entries[end]!.size === entry.size && entries[end]!.gfn === entry.gfn + (end - i) * pages) end++;
      this.logRun({ kind: 'psc', gpa: entry.gfn * SZ_4K, size: entry.size, to: target, done: true }, end - i, pages * SZ_4K);
      i = end;
    }
  }

  /**
   * vmgexit_psc(): VMGEXIT until cur_entry passes end_entry. The host may do part of the work per
   * exit; the guest checks that it never goes backwards and gives up after a few exits without
   * progress.
   */
  private psc(entries: PscEntry[], to: 'shared' | 'private'): boolean {
    // A conversion may run the PSC step more than once (ConversionStep): each starts from page 0.
    for (const entry of entries) entry.curPage = 0;
    const endEntry = entries.length - 1;
    const desc: PscDesc = { curEntry: 0, endEntry, entries };
    let stalls = 0;
    let reported = 0;
    while (desc.curEntry <= desc.endEntry) {
      this.env.charge();
      const curEntry = desc.curEntry;
      const before = pscProgress(entries);
      const error = this.hv.psc(desc);
      if (error !== undefined) return this.pscFailed(entries, desc.curEntry, reported, to, 'psc', `PSC to ${to} failed: ${error}: __set_pages_state() terminates the guest`);
      if (desc.endEntry > endEntry || desc.curEntry < curEntry) {
        return this.pscFailed(entries, desc.curEntry, reported, to, 'psc', `SNP: PSC processing going backward, end_entry ${endEntry} (got ${desc.endEntry}) cur_entry ${curEntry} (got ${desc.curEntry}): __set_pages_state() terminates the guest`);
      }
      const completed = Math.min(desc.curEntry, endEntry + 1);
      this.logPscDone(entries, reported, completed, to);
      this.markEntries(entries, reported, completed, to === 'shared' ? SHARED : 0, to === 'shared' ? 0 : SHARED, false);
      reported = Math.max(reported, completed);
      if (desc.curEntry === curEntry && pscProgress(entries) <= before) {
        if (++stalls > MAX_PSC_STALLS) {
          return this.pscFailed(entries, desc.curEntry, reported, to, 'livelock', `PSC to ${to} at ${hexOf((entries[curEntry]?.gfn ?? 0) * SZ_4K)}: no progress after ${MAX_PSC_STALLS} exits: vmgexit_psc() would loop forever (host livelock)`);
        }
      } else {
        stalls = 0;
      }
    }
    return true;
  }

  /**
   * psc() gives up: the guest dies at entry `curEntry` (where the host left cur_entry), and psc()'s
   * entries from `reported` on are logged not done. A method, not a closure of psc(): one would be
   * made on every PSC.
   */
  private pscFailed(entries: readonly PscEntry[], curEntry: number, reported: number, to: 'shared' | 'private', cause: GuestFatalCause, message: string): boolean {
    this.fatal(cause, (entries[curEntry]?.gfn ?? entries[0]?.gfn ?? 0) * SZ_4K, message);
    for (let i = reported; i < entries.length; i++) {
      const entry = entries[i]!;
      this.log.events.push({ kind: 'psc', gpa: entry.gfn * SZ_4K, size: entry.size, to, done: false });
    }
    return false;
  }
}
