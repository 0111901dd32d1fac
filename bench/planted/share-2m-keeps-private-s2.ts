// Boundary: only a whole, 2M-aligned conversion to shared (one 2M PSC entry) goes wrong: the
// private view's IO mapping of the region is not removed, so a trusted device still reaches frames
// that now back shared memory elsewhere.
import { definePlantedBug } from './types.ts';

export default definePlantedBug({
  flag: 'share-2m-keeps-private-s2',
  class: 'boundary',
  side: 'host',
  description: 'a 2M-entry conversion to shared skips the unmap of the private IO view: the trusted device keeps the old frames',
  oracle: 'npt-iommu-coherence',
  minimal: [
    { op: 'tdi_accept', dev: 0 },
    { op: 'share', gpa: 0x400000, pages: 512 },
  ],
});
