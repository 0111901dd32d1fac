// vfio-static: the IO page tables mapped once, at VM start, over all of guest RAM with the
// largest page sizes, and never touched again. Models QEMU's VFIO listener (vfio_listener_region_add())
// mapping the VMM's RAM block for a confidential guest before QEMU learnt to follow conversions
// (AMDESE/AMDSEV issue #109, 2023; fixed by "Enable shared device assignment", Chenyi Qiang, lore
// 20250612082747.51539-1-chenyi.qiang@intel.com, which makes VFIO a RamDiscardManager listener).
// When the guest converts a page to shared, KVM and QEMU back it with a new frame, while the
// device still reaches the frame pinned at start: a stale IO mapping (research/amd-snp.md
// section 7, item 4), and trusted devices see no private memory at all.

import { SZ_2M, alignUp } from '../model/size.ts';
import { defineHostPolicy } from './types.ts';

/** Every AMD v1 page size below 2^52 except 512G (amdv1pt_possible_sizes()). */
const AMDV1_PAGE_SIZES: readonly number[] = Array.from({ length: 52 - 12 }, (_, i) => 2 ** (12 + i)).filter((size) => size !== 2 ** 39);

export default defineHostPolicy({
  name: 'vfio-static',
  description: 'IO S2 mapped once at start with the largest sizes, never changed on conversion: stale and mismatched IO mappings',
  ioPageSizes: AMDV1_PAGE_SIZES,
  start(ctx) {
    const len = alignUp(ctx.config.guestMemory, SZ_2M);
    for (const device of ctx.iommu.devices()) ctx.iommu.map(device.id, 0, ctx.vmmFrame(0), len);
  },
  // Its io hook ignores every event, seen or not.
  ioIgnoresUnseen: true,
  io() {
    // VFIO without a RamDiscardManager listener never hears about conversions or TDI changes.
  },
});
