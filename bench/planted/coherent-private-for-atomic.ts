// Shallow: GFP_ATOMIC coherent allocations for an untrusted device come from private memory.
import { definePlantedBug } from './types.ts';

export default definePlantedBug({
  flag: 'coherent-private-for-atomic',
  class: 'shallow',
  side: 'guest',
  description: 'an atomic dma_alloc_coherent() for an untrusted device is served from private pages, which the device cannot reach',
  oracle: 'dma-liveness',
  minimal: [
    { op: 'alloc_coherent', dev: 1, bytes: 4096, atomic: true },
    { op: 'dma', dev: 1, buf: 0, len: 64, write: false },
  ],
});
