// linux: today's Linux SEV-SNP guest, every hook at its default. The swiotlb boot pool is
// allocated page-aligned, not 2M-aligned (swiotlb_memblock_alloc()), and made shared at boot
// (swiotlb_update_mem_attributes()); dma_alloc_coherent() takes non-blocking requests from the
// pre-shared atomic pool (kernel/dma/pool.c) and otherwise converts fresh pages to shared at 4K
// granularity, 2M only for aligned 2M chunks (dma_direct_alloc(), __set_pages_state());
// conversions rescind before sharing and validate after unsharing (arch/x86/coco/sev/core.c);
// accepted TIO devices neither bounce nor decrypt (SEV-TIO phase 2, lore
// 20260225053806.3311234-1-aik@amd.com).

import { defineGuestPolicy } from './types.ts';

export default defineGuestPolicy({
  name: 'linux',
  description: "today's Linux guest: page-aligned swiotlb pool, atomic pool, 4K coherent conversions",
});
