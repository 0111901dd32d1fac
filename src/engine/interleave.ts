// The `during` contract (DESIGN.md "Operations", DOMAIN.md "Races and interleavings"): the inner
// ops of one top-level op run between its primitive calls. The world hooks the step's recorder:
// after the op's own K-th recorded call, the entries with `after: K` run (entries with K >= n run
// after the op returns, in array order among equal K). Host code is never re-entered: an inner op
// is a DMA (pure hardware) or a touch whose #NPF is handled after the op returns. A DMA by a
// stalled device waits in the IOMMU and runs at that device's dma_resume.
//
// Every inner op's calls, and the host work they trigger, are recorded with `during: i` and do not
// count toward K.

import type { InterleavedRecord } from '../api.ts';
import type { Recorder } from '../model/events.ts';
import type { PrimitiveCall } from '../model/types.ts';
import type { Outcome } from '../ops/dispatch.ts';
import type { During, InnerOp } from '../ops/types.ts';

/** What running one inner op did: a DMA of a stalled device waits; a touch's #NPF waits for the op's end. */
export type InnerOutcome = Outcome & { wait?: number; resume?: () => void };

export class Interleaving {
  readonly records: InterleavedRecord[] = [];
  /** Entry indices in run order: by `after`, then array order. */
  private readonly order: number[];
  private next = 0;
  /** DMAs held by a stalled device, per device, in arrival order. */
  private readonly held = new Map<number, InterleavedRecord[]>();
  /** Touch faults for the host to handle once the op returns. */
  private readonly deferred: { record: InterleavedRecord; resume: () => void }[] = [];

  constructor(
    private readonly during: readonly During[],
    private readonly recorder: Recorder,
    private readonly run: (op: InnerOp, entry: number) => InnerOutcome,
  ) {
    this.order = during.map((_, i) => i).sort((a, b) => during[a]!.after - during[b]!.after || a - b);
  }

  /** Install on the recorder and run the entries due before call 1. */
  begin(): void {
    this.recorder.listen((call, outer) => this.onCall(call, outer));
    this.due(0);
  }

  /**
   * The op returned (or was skipped): run what is left, then handle the deferred touch faults.
   * Returns the devices that still hold DMAs (a stall without resume).
   */
  finish(): number[] {
    this.due(Infinity);
    for (const { record, resume } of this.deferred) {
      record.deferred = true;
      this.recorder.asInner(record.entry, resume);
    }
    this.recorder.listen(undefined);
    return [...this.held.entries()].filter(([, queue]) => queue.length > 0).map(([dev]) => dev);
  }

  private onCall(call: PrimitiveCall, outer: number | undefined): void {
    // The requests a stalled device held drain at its dma_resume before anything issued after the
    // resume: PCIe ordering lets no later request pass the device's earlier posted write
    // (Machine.dmaResume: "the requests it held run now, in order").
    if (call.prim === 'dma_resume' && typeof call.args.dev === 'number') this.release(call.args.dev);
    if (outer !== undefined) this.due(outer);
  }

  private due(outer: number): void {
    while (this.next < this.order.length) {
      const entry = this.order[this.next]!;
      const spec = this.during[entry]!;
      if (spec.after > outer) return;
      this.next++;
      const record: InterleavedRecord = { entry, after: spec.after, ranAfter: this.recorder.outerCount, op: spec.op };
      this.records.push(record);
      this.start(record);
    }
  }

  private start(record: InterleavedRecord): void {
    const outcome = this.recorder.asInner(record.entry, () => this.run(record.op, record.entry));
    if (outcome.skipped !== undefined) record.skipped = outcome.skipped;
    if (outcome.wait !== undefined) {
      record.waited = true;
      const queue = this.held.get(outcome.wait) ?? [];
      queue.push(record);
      this.held.set(outcome.wait, queue);
    }
    if (outcome.resume !== undefined) this.deferred.push({ record, resume: outcome.resume });
  }

  private release(dev: number): void {
    const queue = this.held.get(dev);
    if (queue === undefined) return;
    this.held.delete(dev);
    for (const record of queue) {
      record.ranAfter = this.recorder.outerCount;
      const outcome = this.recorder.asInner(record.entry, () => this.run(record.op, record.entry));
      if (outcome.skipped !== undefined) record.skipped = outcome.skipped;
    }
  }
}
