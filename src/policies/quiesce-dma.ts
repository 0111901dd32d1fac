// quiesce-dma: the IO S2 follows the RMP (follow-rmp.ts) and a page-size change happens with DMA
// quiesced, as Jason Gunthorpe's plan requires (lore 20260128133258.GY1134360@nvidia.com): stall
// every device that can reach the 2M region (its S2 maps part of it or its IOTLB caches it),
// PSMASH, zap the NPT, cut the IO leaf and flush the IOTLB, then resume. A DMA that arrives in
// between waits in the IOMMU and runs after the resume, against tables that agree again.

import { FOLLOW_RMP_IO_PAGE_SIZES, devicesReaching, followRmpIo } from './follow-rmp.ts';
import type { HostContext, SmashRequest } from './types.ts';
import { defineHostPolicy } from './types.ts';

/** Stall, change both sides the non-atomic way, flush, resume. */
export function quiescedSmash(ctx: HostContext, request: SmashRequest): void {
  const stalled = devicesReaching(ctx, request.gpa, request.devices);
  for (const dev of stalled) ctx.machine.dmaStall(dev);
  ctx.kvm.defaultSmash(request);
  for (const dev of stalled) ctx.machine.dmaResume(dev);
}

export default defineHostPolicy({
  name: 'quiesce-dma',
  description: 'IO S2 follows the RMP; a page-size change stalls the devices reaching the region, PSMASHes, cuts, flushes, resumes (hitless)',
  ioPageSizes: FOLLOW_RMP_IO_PAGE_SIZES,
  io: followRmpIo,
  ioIgnoresUnseen: true,
  ioMapsPages: true,
  smash: quiescedSmash,
});
