// conversion-order: the guest's half of a page state change, in order (Linux __set_pages_state(),
// arch/x86/coco/sev/core.c; research/amd-snp.md section 3 and section 6, oracles 6 and 7):
// - it rescinds validation (PVALIDATE 0) BEFORE a PSC to shared: a page shared while validated
//   lets the host hand the still-validated frame to somebody else;
// - it validates only AFTER the PSC to private completed: PVALIDATE of a page the host still
//   treats as shared validates host-controlled memory (project-oak/oak PR #4218, "Don't pvalidate
//   memory twice"; section 7, item 8);
// - it never validates a page twice: PVALIDATE(validate) with status 0 on a page it already holds
//   validated (the host cleared Validated behind its back and the guest re-accepted whatever is
//   there now), or status 255 NOUPDATE (the RMP says it was validated already).
//
// Event-based: the step's guest events in order, against a shadow of each page's validated and
// shared state that the events update and that is re-synchronised from the guest's own view of
// every GFN the step touched. The shadow starts as the guest's view of the booted world (boot),
// except for the GFNs the first step touched, which start unknown: the per-frame engine could not
// see their state before that step, and the recorded findings (test/golden) keep that behaviour.
// No full sweep: the order of events is not in the world.
//
// The shadow is a run map (LinearRuns, step 0): each stretch of pages with the same bits is one
// run, and pages with no bits hold none. A step costs a search per stretch it reads or writes, no
// allocation, and the boot snapshot one write per run of the guest's page flags: a 1 TiB guest's
// 1G swiotlb pool, shared at boot, is one run, where a per-2M shadow wrote 512 regions per case
// (issue 15: 8 ms of 64 cases' 64 ms of oracle time at 1 TiB, against none at 64 MiB). A
// conversion logs one event per 4K page; a run of them (same kind and outcome, pages advancing one
// by one) is judged as one range when none of its pages has anything to report, else event by
// event.

import { FRAME_LIMIT, LinearRuns, SZ_2M, SZ_4K, defineOracle, eventAt, eventsIn, hex, isEventRun, type Finding, type GuestEvent, type GuestEventRecord, type GuestPage, type Step, type View } from 'cocofuzz/api';
import { Findings } from './lib/findings.ts';

const PVALIDATE_OK = 0;
const PVALIDATE_FAIL_NOUPDATE = 255;
const PAGE = SZ_4K;
const PAGES_2M = SZ_2M / SZ_4K;

/** Shadow bits of a page: the guest's view as the events say. */
const VALIDATED = 1;
const SHARED = 2;
/** Its state before the first step is not known (the first step, `check`). */
const UNKNOWN = 4;
/** Every shadow bit (update(): `clear` that rewrites a page whole). */
const ALL = 0xff;

interface State {
  /** GFN -> its shadow bits, as runs of pages with equal bits (step 0); no run: 0. */
  bits: LinearRuns;
  /** No step checked yet. */
  first: boolean;
}

const states = new WeakMap<View, State>();
const found = new Findings();

/** The call a finding names (built only for a finding). */
const pvalidateCall = (gpa: number, size: string): string => `PVALIDATE(${hex(gpa)}, ${size}, validate)`;
/** Scratch for GuestView.loadPage. */
const scratch: GuestPage = { accepted: false, shared: false, validated: false, converting: false };

const bitsOf = (page: GuestPage | undefined): number => (page === undefined ? 0 : (page.validated ? VALIDATED : 0) | (page.shared ? SHARED : 0));


/** The shadow bits of `gfn` (UNKNOWN set when unknown). */
const bitsAt = (state: State, gfn: number): number => state.bits.get(gfn) ?? 0;

/** The first page of [first, end) whose shadow bits are known and have any of `mask`, or -1: a stretch of equal bits answers at once. */
function firstWith(state: State, first: number, end: number, mask: number): number {
  for (let gfn = first; gfn < end; gfn = state.bits.stretchEnd(gfn)) if (hasKnown(bitsAt(state, gfn), mask)) return gfn;
  return -1;
}

/** Shadow bits that are known and have any of `mask`. */
const hasKnown = (bits: number, mask: number): boolean => (bits & UNKNOWN) === 0 && (bits & mask) !== 0;

/** Pages [first, end), stretch by stretch of equal bits: each page's bits become (bits & ~clear) | set. */
function update(state: State, first: number, end: number, set: number, clear: number): void {
  const runs = state.bits;
  if (clear === ALL) {
    write(runs, first, end, set);
    return;
  }
  for (let gfn = first; gfn < end; ) {
    const stop = Math.min(end, runs.stretchEnd(gfn));
    const bits = bitsAt(state, gfn);
    const next = (bits & ~clear) | set;
    if (next !== bits) write(runs, gfn, stop, next);
    gfn = stop;
  }
}

/** Pages [first, end) hold `bits` (no run where they hold none). */
function write(runs: LinearRuns, first: number, end: number, bits: number): void {
  if (bits === 0) runs.clear(first, end);
  else runs.set(first, end, bits, 0);
}

/** Set and clear shadow bits of pages [first, first + count); they become known. */
function setBits(state: State, first: number, count: number, set: number, clear: number): void {
  update(state, first, first + count, set, clear | UNKNOWN);
}

/** Pages [first, end) hold exactly `bits`. */
const assign = (state: State, first: number, end: number, bits: number): void => update(state, first, end, bits, ALL);

/** Pages [from, to) take the guest's own view, run by run of equal page flags. */
function resync(view: View, state: State, from: number, to: number): void {
  for (let gfn = from; gfn < to; ) {
    const end = view.guest.pageRunEnd(gfn, to);
    assign(state, gfn, end, bitsOf(view.guest.loadPage(gfn, scratch)));
    gfn = end;
  }
}

/** The shadow as the guest sees the world now (a 32G swiotlb pool shared at boot is a few runs). */
function snapshot(view: View): State {
  const state: State = { bits: new LinearRuns(), first: true };
  for (let gfn = 0; gfn < FRAME_LIMIT; ) {
    const end = view.guest.pageRunEnd(gfn, FRAME_LIMIT);
    const bits = bitsOf(view.guest.loadPage(gfn, scratch));
    // The shadow starts empty: only runs with bits to hold are written.
    if (bits !== 0) assign(state, gfn, end, bits);
    gfn = end;
  }
  states.set(view, state);
  return state;
}

type ConversionEvent = Extract<GuestEvent, { kind: 'pvalidate' | 'psc' }>;

/**
 * The end of the run of events from `events[k]`: 4K events of the same kind and outcome on pages
 * advancing one by one. A NOUPDATE PVALIDATE, a finding of its own, and a 2M event stand alone.
 */
function runEnd(events: readonly GuestEventRecord[], k: number): number {
  const event = events[k] as ConversionEvent;
  if (event.size !== '4K' || (event.kind === 'pvalidate' && event.status === PVALIDATE_FAIL_NOUPDATE)) return k + 1;
  let end = k + 1;
  for (let gpa = event.gpa + PAGE; end < events.length && !isEventRun(events[end]!) && continues(event, events[end]!, gpa); end++, gpa += PAGE);
  return end;
}

/** Whether `next` is a 4K event at `gpa` of the same kind and outcome as `event`. */
function continues(event: ConversionEvent, next: GuestEvent, gpa: number): boolean {
  if (event.kind === 'pvalidate') return next.kind === 'pvalidate' && next.gpa === gpa && next.size === '4K' && next.validate === event.validate && next.status === event.status;
  return next.kind === 'psc' && next.gpa === gpa && next.size === '4K' && next.to === event.to && next.done === event.done;
}

/** The first of pages [first, first + count) that `event`, applied to each, would report, or -1. */
function problemPage(state: State, event: ConversionEvent, first: number, count: number): number {
  if (event.kind === 'pvalidate') {
    if (!event.validate) return -1;
    if (event.status === PVALIDATE_FAIL_NOUPDATE) return first;
    return event.status === PVALIDATE_OK ? firstWith(state, first, first + count, VALIDATED | SHARED) : -1;
  }
  return event.to === 'shared' ? firstWith(state, first, first + count, VALIDATED) : -1;
}

/** What `event`, applied to each of pages [first, first + count), changes in the shadow. */
function apply(state: State, event: ConversionEvent, first: number, count: number): void {
  if (event.kind === 'pvalidate') {
    if (event.status === PVALIDATE_OK) setBits(state, first, count, event.validate ? VALIDATED : 0, event.validate ? 0 : VALIDATED);
  } else if (event.done) {
    setBits(state, first, count, event.to === 'shared' ? SHARED : 0, event.to === 'shared' ? 0 : SHARED);
  }
}

/** One event: its finding, if any (the first page to report names it), then its change. */
function judge(state: State, event: ConversionEvent, out: Findings): void {
  const first = Math.floor(event.gpa / PAGE);
  const count = event.size === '2M' ? PAGES_2M : 1;
  const gfn = problemPage(state, event, first, count);
  if (gfn >= 0) out.push(finding(state, event, gfn));
  apply(state, event, first, count);
}

/** The finding of `event` at page `gfn` (problemPage()). */
function finding(state: State, event: ConversionEvent, gfn: number): Finding {
  if (event.kind === 'psc') {
    return {
      message: `guest PSC(${hex(event.gpa)}, ${event.size}) to shared while it still holds gpa ${hex(gfn * PAGE)} validated ==> FAIL (no rescind before sharing)`,
      details: { gpa: gfn * PAGE, sizes: { rmp: event.size } },
    };
  }
  if (event.status === PVALIDATE_FAIL_NOUPDATE) {
    return {
      message: `guest ${pvalidateCall(event.gpa, event.size)} returned 255 (NOUPDATE): the RMP entry was already validated ==> FAIL (page validated twice)`,
      details: { gpa: event.gpa, sizes: { rmp: event.size }, status: event.status },
    };
  }
  if (hasKnown(bitsAt(state, gfn), VALIDATED)) {
    return {
      message: `guest ${pvalidateCall(event.gpa, event.size)} succeeded on gpa ${hex(gfn * PAGE)}, which it already held validated, without a rescind in between ==> FAIL (page validated twice)`,
      details: { gpa: gfn * PAGE, sizes: { rmp: event.size } },
    };
  }
  return {
    message: `guest ${pvalidateCall(event.gpa, event.size)} on gpa ${hex(gfn * PAGE)} while it is still shared (no completed PSC to private) ==> FAIL (validate before unsharing)`,
    details: { gpa: gfn * PAGE, sizes: { rmp: event.size } },
  };
}

export default defineOracle({
  name: 'conversion-order',
  description: 'the guest rescinds before sharing, validates after unsharing, and never validates a page twice',
  severity: 'security',

  boot(view: View) {
    snapshot(view);
  },

  check(view: View, step: Step) {
    // Without boot (a direct call), the shadow is what the world shows after the first step.
    const state = states.get(view) ?? snapshot(view);
    if (state.first) {
      state.first = false;
      for (const range of step.gfnRanges) assign(state, range.start, range.end, UNKNOWN);
    }
    const out = found;
    // The events as the guest logged them: a PVALIDATE or PSC entry per page of a range is one
    // record (GuestEventRun), which is how the guest made them; plain events in a row that
    // continue each other are taken as one too (runEnd()).
    const events = step.guestEventRuns ?? step.guestEvents;
    for (let k = 0; k < events.length; ) {
      const event = events[k]!;
      if (event.kind !== 'pvalidate' && event.kind !== 'psc') {
        k++;
        continue;
      }
      // A run of events (a 4K PSC or PVALIDATE per page of a 2M conversion) changes distinct
      // pages, so their order matters only for findings: a run none of whose pages has anything
      // to report (every correct run) is judged and applied as one range; else event by event.
      const end = isEventRun(event) ? k + 1 : runEnd(events, k);
      const first = Math.floor(event.gpa / PAGE);
      const count = (isEventRun(event) ? event.count : end - k) * (event.size === '2M' ? PAGES_2M : 1);
      if (problemPage(state, event, first, count) < 0) apply(state, event, first, count);
      else for (let j = k; j < end; j++) for (let i = 0, n = eventsIn(events[j]!); i < n; i++) judge(state, eventAt(events[j]!, i) as ConversionEvent, out);
      k = end;
    }
    // The guest's own view is the reference for the next step.
    for (const range of step.gfnRanges) resync(view, state, range.start, range.end);
    return out.take();
  },
});
