// cut-on-convert: the IO S2 follows the RMP. Models Jason Gunthorpe's plan from the iommupt map
// thread (lore 20260119173734.GL1134360@nvidia.com, 20260128133258.GY1134360@nvidia.com): the VMM
// tracks the RMP's granularity and has iommupt cut (or grow) IO page sizes to match, 2M where the
// RMP entry is 2M and 4K where it was smashed, with the split done atomically while DMA is
// quiesced (AMD's alternative is a firmware call that swaps the IOPDE and smashes the RMP with
// DMA stalled: Alexey Kardashevskiy, lore e8cb2549-6a17-47ce-8e9f-96c576890262@amd.com), and the
// IOTLB invalidated before the page-state change completes. Ops never interleave with DMA in the
// simulator, so "quiesced" is what machine.ioSplit() (an atomic leaf split) provides; the flush
// right after it is what keeps the IOTLB from holding a 2M translation over 4K RMP entries.

import { SZ_2M, SZ_4K } from '../model/size.ts';
import { defineHostPolicy } from './types.ts';

export default defineHostPolicy({
  name: 'cut-on-convert',
  description: 'IO S2 follows the RMP: 2M leaves over 2M entries, cut to 4K where smashed, IOTLB flushed before the PSC completes',
  ioPageSizes: [SZ_4K, SZ_2M],
  io(ctx, event) {
    switch (event.kind) {
      case 'map':
        for (const dev of event.devices) {
          if (event.shared) ctx.iommu.map(dev, event.gpa, event.hpa, event.len);
          else ctx.iommu.mapFollowingRmp(dev, event.gpa, event.hpa, event.len);
        }
        return;
      case 'unmap':
        for (const dev of event.devices) {
          ctx.iommu.cut(dev, event.gpa, event.len, SZ_4K);
          ctx.iommu.unmap(dev, event.gpa, event.len);
          ctx.iommu.flush(dev);
        }
        return;
      case 'smash':
        // The RMP entry went 4K: cut the IO leaf over it to match, then flush the 2M IOTLB entry.
        for (const dev of event.devices) {
          const leaf = ctx.machine.device(dev).s2.leafAt(event.gpa);
          if (leaf === undefined || leaf.size < SZ_2M) continue;
          ctx.machine.ioSplit(dev, leaf.iova, SZ_4K);
          ctx.iommu.flush(dev);
        }
        return;
      case 'attach':
        ctx.iommu.mirror(event.dev, { followRmp: true });
        return;
    }
  },
});
