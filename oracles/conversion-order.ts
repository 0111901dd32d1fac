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
// every GFN the step touched. GFNs the first step touched start unknown (their state before the
// step is not observable). No full sweep: the order of events is not in the world.

import { SZ_2M, SZ_4K, defineOracle, hex, type Finding, type Step, type View } from 'cocofuzz/api';

const PVALIDATE_OK = 0;
const PVALIDATE_FAIL_NOUPDATE = 255;
const PAGE = SZ_4K;
const PAGES_2M = SZ_2M / SZ_4K;

/** Shadow bits of a page: the guest's view as the events say. */
const VALIDATED = 1;
const SHARED = 2;

interface State {
  /** GFN -> shadow bits (absent: neither validated nor shared). */
  pages: Map<number, number>;
  /** GFNs whose state before the first step is unknown. */
  unknown: Set<number>;
}

const states = new WeakMap<View, State>();

/** The shadow bits of `gfn`, or undefined when unknown. */
function shadowOf(state: State, gfn: number): number | undefined {
  if (state.unknown.size > 0 && state.unknown.has(gfn)) return undefined;
  return state.pages.get(gfn) ?? 0;
}

function setBits(state: State, gfn: number, set: number, clear: number): void {
  if (state.unknown.size > 0) state.unknown.delete(gfn);
  const bits = ((state.pages.get(gfn) ?? 0) & ~clear) | set;
  if (bits === 0) state.pages.delete(gfn);
  else state.pages.set(gfn, bits);
}

const bitsOf = (page: { validated: boolean; shared: boolean }): number => (page.validated ? VALIDATED : 0) | (page.shared ? SHARED : 0);

export default defineOracle({
  name: 'conversion-order',
  description: 'the guest rescinds before sharing, validates after unsharing, and never validates a page twice',
  severity: 'security',

  check(view: View, step: Step) {
    let state = states.get(view);
    if (state === undefined) {
      state = { pages: new Map(), unknown: new Set(step.gfns) };
      for (const gfn of view.guest.pages()) {
        if (state.unknown.has(gfn)) continue;
        const page = view.guest.page(gfn);
        if (page !== undefined && bitsOf(page) !== 0) state.pages.set(gfn, bitsOf(page));
      }
      states.set(view, state);
    }
    const out: Finding[] = [];
    for (const event of step.guestEvents) {
      if (event.kind !== 'pvalidate' && event.kind !== 'psc') continue;
      const first = Math.floor(event.gpa / PAGE);
      const count = event.size === '2M' ? PAGES_2M : 1;
      if (event.kind === 'pvalidate') {
        const call = `PVALIDATE(${hex(event.gpa)}, ${event.size}, ${event.validate ? 'validate' : 'rescind'})`;
        if (!event.validate) {
          if (event.status === PVALIDATE_OK) for (let gfn = first; gfn < first + count; gfn++) setBits(state, gfn, 0, VALIDATED);
          continue;
        }
        if (event.status === PVALIDATE_FAIL_NOUPDATE) {
          out.push({
            message: `guest ${call} returned 255 (NOUPDATE): the RMP entry was already validated ==> FAIL (page validated twice)`,
            details: { gpa: event.gpa, sizes: { rmp: event.size }, status: event.status },
          });
          continue;
        }
        if (event.status !== PVALIDATE_OK) continue;
        let reported = false;
        for (let gfn = first; gfn < first + count; gfn++) {
          const bits = shadowOf(state, gfn);
          if (!reported && bits !== undefined && (bits & VALIDATED) !== 0) {
            reported = true;
            out.push({
              message: `guest ${call} succeeded on gpa ${hex(gfn * PAGE)}, which it already held validated, without a rescind in between ==> FAIL (page validated twice)`,
              details: { gpa: gfn * PAGE, sizes: { rmp: event.size } },
            });
          } else if (!reported && bits !== undefined && (bits & SHARED) !== 0) {
            reported = true;
            out.push({
              message: `guest ${call} on gpa ${hex(gfn * PAGE)} while it is still shared (no completed PSC to private) ==> FAIL (validate before unsharing)`,
              details: { gpa: gfn * PAGE, sizes: { rmp: event.size } },
            });
          }
          setBits(state, gfn, VALIDATED, 0);
        }
      } else if (event.to === 'shared') {
        for (let gfn = first; gfn < first + count; gfn++) {
          const bits = shadowOf(state, gfn);
          if (bits === undefined || (bits & VALIDATED) === 0) continue;
          out.push({
            message: `guest PSC(${hex(event.gpa)}, ${event.size}) to shared while it still holds gpa ${hex(gfn * PAGE)} validated ==> FAIL (no rescind before sharing)`,
            details: { gpa: gfn * PAGE, sizes: { rmp: event.size } },
          });
          break;
        }
        if (event.done) for (let gfn = first; gfn < first + count; gfn++) setBits(state, gfn, SHARED, 0);
      } else if (event.done) {
        for (let gfn = first; gfn < first + count; gfn++) setBits(state, gfn, 0, SHARED);
      }
    }
    // The guest's own view is the reference for the next step.
    for (const gfn of step.gfns) {
      const page = view.guest.page(gfn);
      if (state.unknown.size > 0) state.unknown.delete(gfn);
      const bits = page === undefined ? 0 : bitsOf(page);
      if (bits === 0) state.pages.delete(gfn);
      else state.pages.set(gfn, bits);
    }
    return out;
  },
});
