// Boundary: a conversion to shared longer than 2M stops one page short and is reported complete.
// Under linux-2m-pool only the boot swiotlb pool is converted in one request that long, so the
// bug sits at the very last page of the pool: only an allocation that reaches the end of the pool
// (a coherent buffer of the pool's size, or the last 2M chunk) hands the device private memory.
import { definePlantedBug } from './types.ts';

export default definePlantedBug({
  flag: 'pool-tail-left-private',
  class: 'boundary',
  side: 'host',
  description: 'a PSC to shared longer than 2M leaves its last page private: the end of the swiotlb pool',
  oracle: 'swiotlb-shared',
  minimal: [{ op: 'alloc_coherent', dev: 1, bytes: 8 * 1024 * 1024 }],
});
