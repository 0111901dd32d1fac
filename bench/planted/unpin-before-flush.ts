// Interleaving: the IO unmap releases the VFIO pins at once and leaves the IOTLB flush to the
// host's flush point; between the two, a device still holding the translation reaches a frame
// that nothing pins any more (VFIO type1 unpins only after iommu_iotlb_sync(): vfio_unmap_unpin()).
import { definePlantedBug } from './types.ts';

const gpa = 0x401000;

export default definePlantedBug({
  flag: 'unpin-before-flush',
  class: 'interleaving',
  side: 'host',
  description: 'an IO unmap releases the pins before the IOTLB flush, which waits for host_sync',
  oracle: 'dma-after-free',
  minimal: [
    { op: 'share', gpa, pages: 1 },
    { op: 'dma', dev: 1, iova: gpa, len: 4096, write: true },
    { op: 'unshare', gpa, pages: 1 },
    { op: 'dma', dev: 1, iova: gpa, len: 4096, write: true },
  ],
});
