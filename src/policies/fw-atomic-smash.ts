// fw-atomic-smash: the IO S2 follows the RMP (follow-rmp.ts) and a page-size change is AMD's
// proposed firmware call (Alexey Kardashevskiy, lore e8cb2549-6a17-47ce-8e9f-96c576890262@amd.com;
// weighed against the VMM-driven plan by Jason Gunthorpe, lore 20260128133258.GY1134360@nvidia.com):
// with DMA stalled, the firmware PSMASHes the RMP entry, replaces the IO leaf with 4K leaves and
// invalidates the IOTLB for the region as one step (machine.fwSmash). KVM then zaps (or splits)
// the NPT leaf; a CPU access in between takes an #NPF that KVM resolves, no DMA is involved.

import { FOLLOW_RMP_IO_PAGE_SIZES, followRmpIo } from './follow-rmp.ts';
import { defineHostPolicy } from './types.ts';

export default defineHostPolicy({
  name: 'fw-atomic-smash',
  description: "IO S2 follows the RMP; a page-size change is AMD's proposed firmware call: PSMASH + IO leaf split + IOTLB invalidation as one step (hitless)",
  ioPageSizes: FOLLOW_RMP_IO_PAGE_SIZES,
  io: followRmpIo,
  ioIgnoresUnseen: true,
  ioMapsPages: true,
  smash(ctx, request) {
    if (ctx.machine.fwSmash(request.hpa, request.gpa, request.devices) !== 0) return;
    ctx.kvm.smashNpt(request.gpa, request.npt);
  },
});
