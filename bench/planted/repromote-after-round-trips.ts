// Deep: after a 2M region's third private -> shared -> private round trip, the fault handler maps
// it with a 2M NPT leaf again (uniform attributes), over the 4K RMP entries the first conversion
// left (Michael Roth's re-promotion scenario).
import { definePlantedBug } from './types.ts';

const share = { op: 'share', gpa: 0x401000, pages: 1 } as const;
const unshare = { op: 'unshare', gpa: 0x401000, pages: 1 } as const;

export default definePlantedBug({
  flag: 'repromote-after-round-trips',
  class: 'deep',
  side: 'host',
  description: 'after three round trips of a region the private fault maps a 2M NPT leaf over 4K RMP entries',
  oracle: 'npt-rmp-size',
  minimal: [share, unshare, share, unshare, share, unshare],
});
