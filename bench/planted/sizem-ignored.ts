// Shallow: a 4K PVALIDATE on a 2M RMP entry exits with SIZEM, and the host returns to the guest
// without PSMASH (or anything else): the guest's rescind faults forever, a livelock that Linux
// cannot leave (research/amd-snp.md section 7 item 7: "a host that does not PSMASH livelocks the
// guest").
import { definePlantedBug } from './types.ts';

export default definePlantedBug({
  flag: 'sizem-ignored',
  class: 'shallow',
  side: 'host',
  description: 'a SIZEM #NPF is answered without PSMASH: the 4K PVALIDATE never completes',
  oracle: 'guest-alive',
  minimal: [{ op: 'share', gpa: 0x401000, pages: 1 }],
});
