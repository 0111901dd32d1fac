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

const ascending = (a: number, b: number): number => a - b;

export class Recorder {
  private calls: PrimitiveCall[] = [];
  private faults: Fault[] = [];
  private readonly frames = new Set<number>();
  private readonly gfns = new Set<number>();

  /** Start a new step: forget whatever the previous one recorded. */
  beginStep(): void {
    this.calls = [];
    this.faults = [];
    this.frames.clear();
    this.gfns.clear();
  }

  call(prim: string, args: PrimitiveCall['args'], result: PrimitiveCall['result']): void {
    this.calls.push({ prim, args, result });
  }

  fault(fault: Fault): void {
    this.faults.push(fault);
  }

  touchFrame(pfn: number): void {
    this.frames.add(pfn);
  }

  touchGfn(gfn: number): void {
    this.gfns.add(gfn);
  }

  /** Every 4K host frame overlapping [hpa, hpa + len). */
  touchFrameRange(hpa: number, len: number): void {
    const end = Math.ceil((hpa + len) / SZ_4K);
    for (let pfn = Math.floor(hpa / SZ_4K); pfn < end; pfn++) this.frames.add(pfn);
  }

  /** Every guest frame overlapping [gpa, gpa + len). */
  touchGfnRange(gpa: number, len: number): void {
    const end = Math.ceil((gpa + len) / SZ_4K);
    for (let gfn = Math.floor(gpa / SZ_4K); gfn < end; gfn++) this.gfns.add(gfn);
  }

  /** What the step did so far, without ending it. */
  get callCount(): number {
    return this.calls.length;
  }

  endStep(): StepEvents {
    const events: StepEvents = {
      calls: this.calls,
      faults: this.faults,
      frames: Array.from(this.frames).sort(ascending),
      gfns: Array.from(this.gfns).sort(ascending),
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
