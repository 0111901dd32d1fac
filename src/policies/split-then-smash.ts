// split-then-smash: the IO S2 follows the RMP (follow-rmp.ts) and a page-size change takes the
// other non-atomic order: cut the IO leaf to 4K and flush the IOTLB first, then PSMASH the RMP
// entry and zap the NPT. In between a trusted DMA anywhere in the 2M region is checked at 4K
// against the 2M RMP entry: `S2[4K] -- [4K] --> RMP[2M] ==> FAIL` ("after the host splits an IO
// PDE and before it PSMASHes the RMP, DMA into the rest of the 2M range fails", Alexey
// Kardashevskiy, lore e8cb2549-6a17-47ce-8e9f-96c576890262@amd.com). Expected to lose the race.

import { FOLLOW_RMP_IO_PAGE_SIZES, cutIoLeaves, followRmpIo } from './follow-rmp.ts';
import { defineHostPolicy } from './types.ts';

export default defineHostPolicy({
  name: 'split-then-smash',
  description: 'IO S2 follows the RMP: cut the IO leaf and flush, then PSMASH (not hitless: DMA in between fails)',
  ioPageSizes: FOLLOW_RMP_IO_PAGE_SIZES,
  io: followRmpIo,
  ioIgnoresUnseen: true,
  ioMapsPages: true,
  smash(ctx, request) {
    cutIoLeaves(ctx, request.gpa, request.devices);
    // The `smash` event that follows finds the IO leaves already 4K.
    ctx.kvm.defaultSmash(request);
  },
});
