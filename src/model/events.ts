// The per-step recorder: the primitive calls made, the faults raised, and the 4K host frames and
// guest frames the step touched, so that oracles check incrementally (DESIGN.md, Performance).
// Touched frames are kept as sorted, merged half-open ranges and handed over as such: a 2M
// operation costs one range, never 512 frame numbers. A step's arrays are handed over at
// endStep() and never touched again by the recorder, so the engine may keep them. They are never
// shared frozen arrays, even empty: V8 runs an oracle's for-of over a frozen array through the
// generic iterator, two objects per loop on every step (a heap sampling profile of the bench's
// cheap ops showed them at four oracles' loops), where an empty array of the step's own costs one.

import type { Counters, FrameRange } from '../api.ts';
import { type CallRecord, type CallRun, type Fault, type FaultRecord, type PrimitiveCall, callAt, expandCalls, expandFaults } from './types.ts';
import { freezeDeep } from './freeze.ts';
import { SZ_4K } from './size.ts';

/** Every frame number in `ranges` (sorted, disjoint), ascending: the per-frame form of API v1. */
export function expandRanges(ranges: readonly FrameRange[]): number[] {
  const out: number[] = [];
  for (const range of ranges) for (let frame = range.start; frame < range.end; frame++) out.push(frame);
  return out;
}

/** `expanded`, frozen if `records` is. */
const frozenLike = <T extends object>(records: object, expanded: T): T => (Object.isFrozen(records) ? Object.freeze(expanded) : expanded);

export class StepEvents {
  private expandedFrames: number[] | undefined;
  private expandedGfns: number[] | undefined;
  private expandedCalls: PrimitiveCall[] | undefined;
  private expandedFaults: Fault[] | undefined;

  constructor(
    /** The calls as recorded: a per-leaf or per-page loop may be one CallRun. */
    readonly records: readonly CallRecord[],
    /** How many calls the records stand for. */
    readonly callCount: number,
    /** The faults as recorded: the faults of a per-page loop may be one FaultRun. */
    readonly faultRecords: readonly FaultRecord[],
    /** How many faults the records stand for. */
    readonly faultCount: number,
    /** Touched host frames (pfns): sorted, merged, half-open ranges. */
    readonly frameRanges: readonly FrameRange[],
    /** Touched guest frames (gfns): sorted, merged, half-open ranges. */
    readonly gfnRanges: readonly FrameRange[],
  ) {}

  /** Whether some record is a run (then `calls` is expanded on first use). */
  get hasRuns(): boolean {
    return this.callCount !== this.records.length;
  }

  /** The calls one by one: the records themselves, or their expansion where runs were recorded. */
  get calls(): readonly PrimitiveCall[] {
    if (!this.hasRuns) return this.records;
    if (this.expandedCalls === undefined) {
      this.expandedCalls = expandCalls(this.records);
      // A frozen record (a boot record: World.boot) expands to frozen calls, as it held before runs.
      if (Object.isFrozen(this.records)) freezeDeep(this.expandedCalls);
    }
    return this.expandedCalls;
  }

  /** Whether some fault record is a run (then `faults` is expanded on first use). */
  get hasFaultRuns(): boolean {
    return this.faultCount !== this.faultRecords.length;
  }

  /** The faults one by one: the records themselves, or their expansion where runs were recorded. */
  get faults(): readonly Fault[] {
    if (!this.hasFaultRuns) return this.faultRecords as readonly Fault[];
    if (this.expandedFaults === undefined) {
      this.expandedFaults = expandFaults(this.faultRecords);
      if (Object.isFrozen(this.faultRecords)) freezeDeep(this.expandedFaults);
    }
    return this.expandedFaults;
  }

  /** Touched host frames one by one, ascending (expanded on first use). */
  get frames(): readonly number[] {
    // Frozen with a frozen record: a boot record's events are shared by every restored world.
    return (this.expandedFrames ??= frozenLike(this.frameRanges, expandRanges(this.frameRanges)));
  }

  /** Touched guest frames one by one, ascending (expanded on first use). */
  get gfns(): readonly number[] {
    return (this.expandedGfns ??= frozenLike(this.gfnRanges, expandRanges(this.gfnRanges)));
  }
}


/**
 * Touched frame numbers as a sorted list of disjoint, non-adjacent half-open intervals, merged as
 * they are added. Touches mostly come in ascending order or repeat the last range (a step often
 * reaches one 2M range through several primitives), so the search for the place of a new range
 * starts at the end and usually stops there.
 */
class FrameIntervals {
  private starts: number[] = [];
  private ends: number[] = [];

  add(start: number, end: number): void {
    const starts = this.starts;
    const ends = this.ends;
    // The first interval that ends at or after `start` (it may merge with the new one).
    let i = ends.length;
    while (i > 0 && ends[i - 1]! >= start) i--;
    if (i === ends.length || starts[i]! > end) {
      // Touches no interval: insert it at i.
      starts.splice(i, 0, start);
      ends.splice(i, 0, end);
      return;
    }
    // Merge with interval i and every later one it reaches.
    if (start < starts[i]!) starts[i] = start;
    let j = i;
    while (j + 1 < starts.length && starts[j + 1]! <= end) j++;
    ends[i] = Math.max(end, ends[j]!);
    if (j > i) {
      starts.splice(i + 1, j - i);
      ends.splice(i + 1, j - i);
    }
  }

  /** The ranges, handed over; the recorder starts afresh. No range: the shared empty list. */
  take(): readonly FrameRange[] {
    if (this.starts.length === 0) return [];
    const out: FrameRange[] = [];
    for (let i = 0; i < this.starts.length; i++) out.push({ start: this.starts[i]!, end: this.ends[i]! });
    this.clear();
    return out;
  }

  clear(): void {
    if (this.starts.length > 0) {
      this.starts.length = 0;
      this.ends.length = 0;
    }
  }
}

/** Whether loops may record runs (tests turn it off to compare the two recordings). */
export const recorderSettings = { runs: true };

/**
 * Told after every recorded call: `outer` is the call's number among the step op's own calls
 * (1..n), undefined for a call made for an interleaved op. The engine runs `during` entries here.
 */
export type CallListener = (call: PrimitiveCall, outer: number | undefined) => void;

export class Recorder {
  private calls: CallRecord[] = [];
  /** The calls the records stand for (a run counts its calls). */
  private made = 0;
  private outerCalls = 0;
  /** The `during` entry whose op (or the host work it triggered) is running now. */
  private inner: number | undefined;
  private listener: CallListener | undefined;
  private faults: FaultRecord[] = [];
  /** The faults the records stand for (a run counts its faults). */
  private faultCount = 0;
  private readonly frames = new FrameIntervals();
  private readonly gfns = new FrameIntervals();
  /**
   * Told of every primitive call as it is recorded (the host follows VFIO pins this way). An
   * object, not a closure, so a copied machine tells the copy of it (model/graph-copy.ts).
   */
  observer: { observe(call: PrimitiveCall): void; observeRun(run: CallRun): void } | undefined = undefined;

  /** Start a new step: forget whatever the previous one recorded. */
  beginStep(): void {
    this.calls = [];
    this.made = 0;
    this.outerCalls = 0;
    this.inner = undefined;
    this.faults = [];
    this.faultCount = 0;
    this.frames.clear();
    this.gfns.clear();
  }

  call(prim: string, args: PrimitiveCall['args'], result: PrimitiveCall['result']): void {
    const call: PrimitiveCall = { prim, args, result };
    if (this.inner !== undefined) call.during = this.inner;
    this.calls.push(call);
    this.made++;
    const outer = this.inner === undefined ? ++this.outerCalls : undefined;
    // The host's bookkeeping first (VFIO pins), so an op interleaved after this call sees it.
    this.observer?.observe(call);
    this.listener?.(call, outer);
  }

  /**
   * Whether a loop may record its calls as one run (callRun()): not while a `during` entry may run
   * after one of them (the listener numbers and hears every call), nor inside an interleaved op.
   */
  get batching(): boolean {
    return recorderSettings.runs && this.listener === undefined && this.inner === undefined;
  }

  /**
   * `count` calls of `prim` with result `result`, the first with `args`, each next one with the
   * `strided` args advanced by `stride` (CallRun). Only when `batching`: the caller checked.
   */
  callRun(prim: string, args: PrimitiveCall['args'], result: PrimitiveCall['result'], count: number, strided: readonly string[], stride: number): void {
    if (!this.batching) throw new Error(`internal: a run of ${prim} recorded while calls are heard one by one`);
    if (count === 1) {
      this.call(prim, args, result);
      return;
    }
    this.record({ prim, args, result, count, stride, strided });
  }

  /** A run into the step's records, counted as its calls and told to the observer. */
  private record(run: CallRun): void {
    this.calls.push(run);
    this.made += run.count;
    this.outerCalls += run.count;
    this.observer?.observeRun(run);
  }

  /**
   * `count` repetitions of a block of calls (`block`: the first repetition's), each call's
   * `strided[j]` args advancing by `stride` per repetition, recorded as one run per call of the
   * block (CallRun.period/phase). Only when `batching`. The observer hears the runs one after the
   * other, not interleaved: it follows pins (io_map, io_unmap, iommu_flush) per device, and a
   * block's io_map runs (one per device) pin nothing its other runs release.
   */
  blockRun(block: readonly PrimitiveCall[], count: number, strided: readonly (readonly string[])[], stride: number): void {
    if (!this.batching) throw new Error('internal: a block of calls recorded while calls are heard one by one');
    if (count === 1) {
      // One repetition is plain calls, as callRun() records a run of one.
      for (const call of block) this.call(call.prim, call.args, call.result);
      return;
    }
    const period = block.length;
    for (let j = 0; j < period; j++) {
      const call = block[j]!;
      this.record({ prim: call.prim, args: call.args, result: call.result, count, stride, strided: strided[j]!, period, phase: j });
    }
  }

  /** Calls made by the step's op itself so far (what `after: K` counts). */
  get outerCount(): number {
    return this.outerCalls;
  }

  /** Record what `fn` does as the work of interleaved entry `entry`; restores the previous owner. */
  asInner<T>(entry: number, fn: () => T): T {
    const saved = this.inner;
    this.inner = entry;
    try {
      return fn();
    } finally {
      this.inner = saved;
    }
  }

  /** Watch every recorded call (undefined: stop watching). */
  listen(listener: CallListener | undefined): void {
    this.listener = listener;
  }

  fault(fault: Fault): void {
    this.faults.push(fault);
    this.faultCount++;
  }

  /** `count` faults like `first`, the i-th at `first.addr + i * stride` (a per-page loop's). */
  faultRun(first: Fault, count: number, stride: number): void {
    // One fault, or runs turned off (tests compare the two recordings): the faults one by one.
    if (count >= 2 && recorderSettings.runs) {
      this.faults.push({ first, count, stride });
      this.faultCount += count;
    } else for (let i = 0; i < count; i++) this.fault(i === 0 ? first : { ...first, addr: first.addr + i * stride });
  }

  touchFrame(pfn: number): void {
    this.frames.add(pfn, pfn + 1);
  }

  touchGfn(gfn: number): void {
    this.gfns.add(gfn, gfn + 1);
  }

  /** Every 4K host frame overlapping [hpa, hpa + len). */
  touchFrameRange(hpa: number, len: number): void {
    if (len > 0) this.frames.add(Math.floor(hpa / SZ_4K), Math.ceil((hpa + len) / SZ_4K));
  }

  /** Every guest frame overlapping [gpa, gpa + len). */
  touchGfnRange(gpa: number, len: number): void {
    if (len > 0) this.gfns.add(Math.floor(gpa / SZ_4K), Math.ceil((gpa + len) / SZ_4K));
  }

  /**
   * Whether a call recorded since the step had `count` of them passes `test` (the host's answer to
   * one fault changed a table), without copying them: the guest asks after every #NPF exit.
   */
  someSince(count: number, test: (call: PrimitiveCall) => boolean): boolean {
    const calls = this.calls;
    if (this.made === calls.length) {
      for (let i = count; i < calls.length; i++) if (test(calls[i] as PrimitiveCall)) return true;
      return false;
    }
    // Runs were recorded: walk back from the end over the records made since `count` (a block's
    // records as one group: its calls interleave).
    let at = this.made;
    for (let i = calls.length - 1; i >= 0 && at > count; i--) {
      const record = calls[i]!;
      if (!('count' in record)) {
        if (test(record)) return true;
        at--;
        continue;
      }
      const period = record.period ?? 1;
      const group = i - (record.phase ?? 0);
      const first = at - period * record.count;
      for (let position = Math.max(first, count); position < at; position++) {
        const offset = position - first;
        if (test(callAt(calls[group + (offset % period)]!, Math.floor(offset / period)))) return true;
      }
      at = first;
      i = group;
    }
    return false;
  }

  /** What the step did so far, without ending it: calls made (a run counts its calls). */
  get callCount(): number {
    return this.made;
  }

  endStep(): StepEvents {
    const events = new StepEvents(this.calls, this.made, this.faults, this.faultCount, this.frames.take(), this.gfns.take());
    this.beginStep();
    return events;
  }
}

export const createCounters = (): Counters => ({
  psmash: 0,
  rmpUpdate: 0,
  nptSplits: 0,
  ioSplits: 0,
  iotlbInvalidations: 0,
  dmas: 0,
  faults: 0,
});
