// Swarm-suppressed: private memory faulted in while a trusted device shows the private view is not
// mapped for the device, and every host_sync rebuilds the private view from scratch, repairing it.
// Only a DMA before the next host_sync sees the hole, so host_sync (a common op) hides the bug.
import { definePlantedBug } from './types.ts';

export default definePlantedBug({
  flag: 'sync-repairs-missing-private-map',
  class: 'swarm-suppressed',
  side: 'host',
  description: 'private memory faulted in after TDI attach is missing from the S2 until the next host_sync resync',
  oracle: 'dma-liveness',
  minimal: [
    { op: 'tdi_accept', dev: 0 },
    { op: 'alloc_coherent', dev: 0, bytes: 4096 },
    { op: 'dma', dev: 0, buf: 0, len: 64, write: false },
  ],
});
