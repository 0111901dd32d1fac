// Swarm-suppressed: the S2 cut after a PSMASH only works once the host has been through one flush
// point, so any host_sync earlier in the case (a common op) hides the bug.
import { definePlantedBug } from './types.ts';

export default definePlantedBug({
  flag: 'no-cut-before-first-sync',
  class: 'swarm-suppressed',
  side: 'host',
  description: 'the smash handler does not cut the IO S2 until the first host_sync',
  oracle: 'io-s2-rmp-size',
  minimal: [
    { op: 'tdi_accept', dev: 0 },
    { op: 'accept', gpa: 0x401000, size: '4K' },
  ],
});
