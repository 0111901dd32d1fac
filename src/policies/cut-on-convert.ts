// cut-on-convert: the IO S2 follows the RMP (follow-rmp.ts: Jason Gunthorpe's plan, lore
// 20260119173734.GL1134360@nvidia.com, 20260128133258.GY1134360@nvidia.com), and a page-size
// change is KVM's: PSMASH the RMP entry, zap the NPT range, then cut the IO leaf to 4K
// (machine.ioSplit) and flush the IOTLB. Nothing stops DMA while it does so: between the PSMASH
// and the cut a trusted DMA anywhere in the 2M region sees `S2[2M] -- [2M] --> RMP[4K] ==> FAIL`,
// and until the flush an IOTLB 2M entry does the same (DOMAIN.md "Races and interleavings"). The
// policy is expected to lose that race; split-then-smash is the other order, quiesce-dma and
// fw-atomic-smash are the hitless ones.

import { FOLLOW_RMP_IO_PAGE_SIZES, followRmpIo } from './follow-rmp.ts';
import { defineHostPolicy } from './types.ts';

export default defineHostPolicy({
  name: 'cut-on-convert',
  description: 'IO S2 follows the RMP: PSMASH, then cut the IO leaf to 4K and flush (not hitless: DMA in between fails)',
  ioPageSizes: FOLLOW_RMP_IO_PAGE_SIZES,
  io: followRmpIo,
  ioIgnoresUnseen: true,
  ioMapsPages: true,
});
