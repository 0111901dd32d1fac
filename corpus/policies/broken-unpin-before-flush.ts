// A deliberately broken host policy (for the dma-after-free oracle's tests): the IOMMU driver
// gathers IO unmaps until the host's flush point, as iommupt does, but VFIO releases the pins of
// the unmapped pages at once instead of after the flush (VFIO type1 unpins after
// iommu_iotlb_sync(): vfio_unmap_unpin()). A discarded shared frame goes back to the host while
// the IOTLB still translates to it.

import { defineHostPolicy } from 'cocofuzz';

export default defineHostPolicy({
  name: 'broken-unpin-before-flush',
  description: 'IO unmap releases the pins at once and leaves the IOTLB flush to host_sync: DMA into freed frames',
  io(ctx, event) {
    if (event.kind !== 'unmap') return ctx.iommu.defaultIo(event);
    for (const dev of event.devices) {
      ctx.iommu.unmap(dev, event.gpa, event.len);
      ctx.iommu.releasePins(dev);
    }
  },
});
