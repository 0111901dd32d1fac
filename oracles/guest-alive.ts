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
// Event-based: the step's guest events.

import { defineOracle, type Finding, type Step, type View } from 'cocofuzz/api';

/**
 * A touch or DMA into pages the guest is converting at that moment may fail: the guest must not
 * use them while it converts them (DOMAIN.md "Races"). That set ("pages being converted") comes
 * with the interleaving ops; until then nothing is exempt.
 */
function beingConverted(_view: View, _step: Step, _gpa: number): boolean {
  return false;
}

export default defineOracle({
  name: 'guest-alive',
  description: 'Linux never terminates the guest (PVALIDATE failure, CF=1, failed PSC, #VC not validated) and the vCPU never livelocks',
  severity: 'liveness',

  check(view: View, step: Step) {
    const out: Finding[] = [];
    for (const event of step.guestEvents) {
      if (event.kind !== 'fatal') continue;
      if (beingConverted(view, step, event.gpa)) continue;
      out.push({
        message: `${event.message} ==> FAIL (${event.cause === 'livelock' ? 'guest livelock' : `guest terminated by ${event.cause}`})`,
        details: { gpa: event.gpa, cause: event.cause },
      });
    }
    return out;
  },
});
