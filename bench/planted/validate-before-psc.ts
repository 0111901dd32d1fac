// Host/guest interleaving: set_memory_encrypted() validates before the host has made the page
// private (the order oak PR 4218 fixed): the guest's PVALIDATE races the host's conversion.
import { definePlantedBug } from './types.ts';

export default definePlantedBug({
  flag: 'validate-before-psc',
  class: 'interleaving',
  side: 'guest',
  description: 'converting back to private, the guest PVALIDATEs before the PSC',
  oracle: 'conversion-order',
  minimal: [
    { op: 'share', gpa: 0x401000, pages: 1 },
    { op: 'unshare', gpa: 0x401000, pages: 1 },
  ],
});
