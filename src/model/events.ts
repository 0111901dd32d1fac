// The per-step recorder: the primitive calls made, the faults raised, and the 4K host frames and
// guest frames the step touched, so that oracles check incrementally (DESIGN.md, Performance).
// Touched frames are kept as sorted, merged half-open ranges and handed over as such: a 2M
// operation costs one range, never 512 frame numbers. A step's arrays are handed over at
// endStep() and never touched again by the recorder, so the engine may keep them; an empty list
// of faults or ranges is one shared frozen array, so a quiet step allocates none.

import type { Counters, FrameRange } from '../api.ts';
import type { Fault, PrimitiveCall } from './types.ts';
import { SZ_4K } from './size.ts';

/** Every frame number in `ranges` (sorted, disjoint), ascending: the per-frame form of API v1. */
export function expandRanges(ranges: readonly FrameRange[]): number[] {
  const out: number[] = [];
  for (const range of ranges) for (let frame = range.start; frame < range.end; frame++) out.push(frame);
  return out;
}

export class StepEvents {
  private expandedFrames: number[] | undefined;
  private expandedGfns: number[] | undefined;

  constructor(
    readonly calls: PrimitiveCall[],
    readonly faults: Fault[],
    /** Touched host frames (pfns): sorted, merged, half-open ranges. */
    readonly frameRanges: readonly FrameRange[],
    /** Touched guest frames (gfns): sorted, merged, half-open ranges. */
    readonly gfnRanges: readonly FrameRange[],
  ) {}

  /** Touched host frames one by one, ascending (expanded on first use). */
  get frames(): readonly number[] {
    return (this.expandedFrames ??= expandRanges(this.frameRanges));
  }

  /** Touched guest frames one by one, ascending (expanded on first use). */
  get gfns(): readonly number[] {
    return (this.expandedGfns ??= expandRanges(this.gfnRanges));
  }
}

/** The list a step without any touched frame (or fault) hands over: shared, so frozen. */
const NO_RANGES: readonly FrameRange[] = Object.freeze([]);
const NO_FAULTS = Object.freeze([]) as readonly Fault[] as Fault[];

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
    if (this.starts.length === 0) return NO_RANGES;
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

/**
 * Told after every recorded call: `outer` is the call's number among the step op's own calls
 * (1..n), undefined for a call made for an interleaved op. The engine runs `during` entries here.
 */
export type CallListener = (call: PrimitiveCall, outer: number | undefined) => void;

export class Recorder {
  private calls: PrimitiveCall[] = [];
  private outerCalls = 0;
  /** The `during` entry whose op (or the host work it triggered) is running now. */
  private inner: number | undefined;
  private listener: CallListener | undefined;
  /** NO_FAULTS until the step's first fault (most steps raise none). */
  private faults: Fault[] = NO_FAULTS;
  private readonly frames = new FrameIntervals();
  private readonly gfns = new FrameIntervals();
  /**
   * Told of every primitive call as it is recorded (the host follows VFIO pins this way). An
   * object, not a closure, so a copied machine tells the copy of it (model/graph-copy.ts).
   */
  observer: { observe(call: PrimitiveCall): void } | undefined = undefined;

  /** Start a new step: forget whatever the previous one recorded. */
  beginStep(): void {
    this.calls = [];
    this.outerCalls = 0;
    this.inner = undefined;
    this.faults = NO_FAULTS;
    this.frames.clear();
    this.gfns.clear();
  }

  call(prim: string, args: PrimitiveCall['args'], result: PrimitiveCall['result']): void {
    const call: PrimitiveCall = { prim, args, result };
    if (this.inner !== undefined) call.during = this.inner;
    this.calls.push(call);
    const outer = this.inner === undefined ? ++this.outerCalls : undefined;
    // The host's bookkeeping first (VFIO pins), so an op interleaved after this call sees it.
    this.observer?.observe(call);
    this.listener?.(call, outer);
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
    if (this.faults === NO_FAULTS) this.faults = [];
    this.faults.push(fault);
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
    for (let i = count; i < calls.length; i++) if (test(calls[i]!)) return true;
    return false;
  }

  /** What the step did so far, without ending it. */
  get callCount(): number {
    return this.calls.length;
  }

  endStep(): StepEvents {
    const events = new StepEvents(this.calls, this.faults, this.frames.take(), this.gfns.take());
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
