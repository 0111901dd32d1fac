// Host/guest interleaving: the guest's 4K PVALIDATE (a rescind before sharing one page) meets a 2M
// RMP entry; the host answers the SIZEM fault by rebuilding the region with 512 RMPUPDATEs instead
// of one PSMASH, and every RMPUPDATE clears Validated under the 511 pages the guest still holds.
import { definePlantedBug } from './types.ts';

export default definePlantedBug({
  flag: 'sizem-rmpupdate-rebuild',
  class: 'interleaving',
  side: 'host',
  description: "a SIZEM fault is answered with RMPUPDATEs instead of PSMASH, clearing Validated under the guest's pages",
  oracle: 'no-silent-remap',
  minimal: [{ op: 'share', gpa: 0x401000, pages: 1 }],
});
