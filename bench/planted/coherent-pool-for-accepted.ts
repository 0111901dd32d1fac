// Shallow: an accepted TIO device gets its coherent buffers from the shared swiotlb pool.
import { definePlantedBug } from './types.ts';

export default definePlantedBug({
  flag: 'coherent-pool-for-accepted',
  class: 'shallow',
  side: 'guest',
  description: 'dma_alloc_coherent() for an accepted TIO device returns shared pool memory, outside its private-path DMA',
  oracle: 'dma-liveness',
  minimal: [
    { op: 'tdi_accept', dev: 0 },
    { op: 'alloc_coherent', dev: 0, bytes: 4096 },
    { op: 'dma', dev: 0, buf: 0, len: 64, write: false },
  ],
});
