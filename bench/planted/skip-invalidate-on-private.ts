// Deep: on a conversion to private, the IOMMU driver's flush frees what the unmap detached but
// skips INVALIDATE_IOMMU_PAGES, and VFIO, believing the flush done, unpins the discarded shared
// frame: a device that cached the translation keeps writing into a frame back in the host's free
// pool (DOMAIN.md "QEMU's memory"). The host has no invalidation pending afterwards, so
// iotlb-stale sees the stale entry at the conversion itself; dma-after-free sees the DMA that
// follows (test/oracles/fires.test.ts runs it alone).
import { definePlantedBug } from './types.ts';

const gpa = 0x401000;

export default definePlantedBug({
  flag: 'skip-invalidate-on-private',
  class: 'deep',
  side: 'host',
  description: 'a conversion to private unmaps the shared page and unpins it, but never invalidates the IOTLB',
  oracle: 'iotlb-stale',
  minimal: [
    { op: 'share', gpa, pages: 1 },
    { op: 'dma', dev: 1, iova: gpa, len: 4096, write: true },
    { op: 'unshare', gpa, pages: 1 },
  ],
});
