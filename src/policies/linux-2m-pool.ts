// linux-2m-pool: a 2M-aligned swiotlb pool, a whole number of 2M, that also serves coherent
// allocations, so no DMA buffer ever splits a 2M RMP entry. Models Vishal Annapurve's "[RFC V1
// 0/5] x86: CVMs: Align memory conversions to 2M granularity" (lore
// 20240112055251.36101-1-vannapurve@google.com: all dma_alloc_* from swiotlb,
// swiotlb_adjust_alignment(SZ_2M)) and Jason Gunthorpe's "same allocator as SWIOTLB and use 2M
// aligned blocks" (seed thread); Alexey Kardashevskiy reports forcing io_tlb_default_mem.for_alloc
// works (lore d185a616-14dc-4697-865a-2729d00f57e3@amd.com). Coherent requests above the
// swiotlb's 256K segment limit take whole 2M-aligned chunks of the pool (SwiotlbPool.allocChunk,
// the proposal's allocator, not Linux's). There is no separate atomic pool: it would be the one
// 4K-converted region left.

import { SZ_2M, alignDown, alignUp } from '../model/size.ts';
import { defineGuestPolicy } from './types.ts';

/** Pages of earlier top-down boot allocations at the very top of low memory. */
const TOP_RESERVED = 5 * 4096;

export default defineGuestPolicy({
  name: 'linux-2m-pool',
  description: '2M-aligned swiotlb pool (whole 2M units) serving coherent allocations too: no smashing from DMA buffers',
  swiotlbPool(_ctx, request) {
    const bytes = alignUp(request.bytes, SZ_2M);
    const top = Math.min(request.guestMemory, 4 * 1024 ** 3);
    return { base: Math.max(0, alignDown(top - TOP_RESERVED - bytes, SZ_2M)), bytes, forAlloc: true };
  },
  atomicPoolBytes() {
    return 0;
  },
  coherentSource(_ctx, request) {
    return request.accepted ? 'private' : 'swiotlb';
  },
});
