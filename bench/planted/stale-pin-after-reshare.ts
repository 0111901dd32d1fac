// Deep: from the third time a page is made shared, the VMM maps it in the IO S2 to the frame it
// pinned the first time instead of the new backing frame (a stale pin cache): devices and the CPU
// see different memory.
import { definePlantedBug } from './types.ts';

const share = { op: 'share', gpa: 0x401000, pages: 1 } as const;
const unshare = { op: 'unshare', gpa: 0x401000, pages: 1 } as const;

export default definePlantedBug({
  flag: 'stale-pin-after-reshare',
  class: 'deep',
  side: 'host',
  description: 'the third sharing of a page maps the IO S2 to the first shared frame, not the current one',
  oracle: 'npt-iommu-coherence',
  minimal: [share, unshare, share, unshare, share],
});
