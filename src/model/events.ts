// The per-step recorder: the primitive calls made, the faults raised, and the 4K host frames and
// guest frames the step touched, so that oracles check incrementally (DESIGN.md, Performance).
// The sets are reused from step to step; a step's arrays are handed over at endStep() and never
// touched again by the recorder, so the engine may keep them.

import type { Counters } from '../api.ts';
import type { Fault, PrimitiveCall } from './types.ts';
import { SZ_4K } from './size.ts';

export interface StepEvents {
  calls: PrimitiveCall[];
  faults: Fault[];
  /** Touched host frames (pfns), ascending, no duplicates. */
  frames: number[];
  /** Touched guest frames (gfns), ascending, no duplicates. */
  gfns: number[];
}

/**
 * Touched frame numbers as half-open intervals, expanded once at the end of a step. A 2M operation
 * touches 512 frames and a step often touches the same 2M range through several primitives, so
 * per-frame set insertion was the recorder's main cost; intervals cost one push per touch.
 */
class FrameIntervals {
  private starts: number[] = [];
  private ends: number[] = [];

  add(start: number, end: number): void {
    const last = this.ends.length - 1;
    // The common repeat: the same or an adjoining range as the previous touch.
    if (last >= 0 && start >= this.starts[last]! && start <= this.ends[last]!) {
      if (end > this.ends[last]!) this.ends[last] = end;
      return;
    }
    this.starts.push(start);
    this.ends.push(end);
  }

  clear(): void {
    this.starts = [];
    this.ends = [];
  }

  /** Every frame in the union, ascending, each once. */
  expand(): number[] {
    const order = this.starts.map((_, i) => i).sort((a, b) => this.starts[a]! - this.starts[b]!);
    const out: number[] = [];
    let next = -Infinity;
    for (const i of order) {
      const start = Math.max(this.starts[i]!, next);
      const end = this.ends[i]!;
      for (let frame = start; frame < end; frame++) out.push(frame);
      if (end > next) next = end;
    }
    return out;
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
  private faults: Fault[] = [];
  private readonly frames = new FrameIntervals();
  private readonly gfns = new FrameIntervals();
  /** Told of every primitive call as it is recorded (the host follows VFIO pins this way). */
  onCall: ((call: PrimitiveCall) => void) | undefined = undefined;

  /** Start a new step: forget whatever the previous one recorded. */
  beginStep(): void {
    this.calls = [];
    this.outerCalls = 0;
    this.inner = undefined;
    this.faults = [];
    this.frames.clear();
    this.gfns.clear();
  }

  call(prim: string, args: PrimitiveCall['args'], result: PrimitiveCall['result']): void {
    const call: PrimitiveCall = { prim, args, result };
    if (this.inner !== undefined) call.during = this.inner;
    this.calls.push(call);
    const outer = this.inner === undefined ? ++this.outerCalls : undefined;
    // The host's bookkeeping first (VFIO pins), so an op interleaved after this call sees it.
    this.onCall?.(call);
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

  /** The calls recorded since the step had `count` of them (the host's answer to one fault). */
  callsSince(count: number): readonly PrimitiveCall[] {
    return this.calls.slice(count);
  }

  /** What the step did so far, without ending it. */
  get callCount(): number {
    return this.calls.length;
  }

  endStep(): StepEvents {
    const events: StepEvents = {
      calls: this.calls,
      faults: this.faults,
      frames: this.frames.expand(),
      gfns: this.gfns.expand(),
    };
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
