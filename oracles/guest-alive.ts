// guest-alive: the guest never reaches a point where Linux terminates it, and its vCPU never stops
// making progress (DOMAIN.md "When Linux kills the guest"). The guest model records a `fatal`
// event where Linux gives up:
// - pval_pages() (arch/x86/coco/sev/core.c): a PVALIDATE that fails other than with
//   FAIL_SIZEMISMATCH (which it retries as 512 x 4K), CF=1 "no update" included, on a rescind as
//   on a validate: __pval_terminate();
// - __set_pages_state(): the host's PSC fails, or moves cur_entry backwards (vmgexit_psc());
// - the #VC handler: a private access to a page that is not validated has no case in
//   vc_handle_exitcode(), and the guest is terminated;
// - livelock: a #NPF that comes back LIVELOCK_REPEATS (3) times in a row with no RMP or NPT change
//   in between (src/guest/memory.ts says why 3), or a PSC that makes no progress: the vCPU would
//   spin forever (research/amd-snp.md section 7 item 7: a host that never PSMASHes on SIZEM).
// None of these is a clean run, whatever the tables look like afterwards.
//
// A touch into pages being converted is exempt (DOMAIN.md "Races": the guest must not use them
// while it converts them). No check is needed here: an interleaved touch of such a page is skipped
// before it runs (Guest.touchInterleaved(), `Step.converting`), so it never makes a fatal event,
// and a DMA makes none at all; dma-liveness judges the DMA.
//
// Event-based: the step's guest events.

import { defineOracle, type Step, type View } from 'cocofuzz/api';
import { Findings } from './lib/findings.ts';

const found = new Findings();

export default defineOracle({
  name: 'guest-alive',
  description: 'Linux never terminates the guest (PVALIDATE failure, CF=1, failed PSC, #VC not validated) and the vCPU never livelocks',
  severity: 'liveness',

  check(_view: View, step: Step) {
    // A run of events is never a fatal one: the records as logged (no expansion).
    for (const event of step.guestEventRuns ?? step.guestEvents) {
      if (event.kind !== 'fatal') continue;
      found.push({
        message: `${event.message} ==> FAIL (${event.cause === 'livelock' ? 'guest livelock' : `guest terminated by ${event.cause}`})`,
        details: { gpa: event.gpa, cause: event.cause },
      });
    }
    return found.take();
  },
});
