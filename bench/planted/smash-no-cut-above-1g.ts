// Boundary: the S2 cut after a PSMASH is skipped for GPAs at or above 1G, as a GFN-range check
// done in 32 bits of bytes would. Needs a guest larger than 1G.
import { definePlantedBug } from './types.ts';

export default definePlantedBug({
  flag: 'smash-no-cut-above-1g',
  class: 'boundary',
  side: 'host',
  description: 'the smash handler skips the IO S2 cut for 2M regions at or above 1G',
  oracle: 'io-s2-rmp-size',
  config: { guestMemory: '2G', swiotlb: '8M' },
  minimal: [
    { op: 'tdi_accept', dev: 0 },
    { op: 'accept', gpa: 0x40001000, size: '4K' },
  ],
});
