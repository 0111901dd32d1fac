// Where the simulated host keeps guest memory in host physical address space. The host actor
// decides (src/host/backing.ts explains why shared frames are separate); the constants live here
// so that the generator can aim a hostile host's raw ops at the frames that matter.

/** guest_memfd frames: HPA = GMEM_BASE + GPA. */
export const GMEM_BASE = 2 ** 46;
/** The VMM's RAM block (what a VFIO map at start pins); conversion frames come after it. */
export const VMM_RAM_BASE = 2 ** 47;

/**
 * The guest's first 1 MiB never reaches its page allocator: reserve_real_mode()
 * (arch/x86/realmode/init.c) memblock_reserve(0, SZ_1M)s it "unconditionally", for the real-mode
 * trampoline and BIOS areas. The guest cannot convert it on a kernel user's behalf.
 */
export const LOW_RESERVED = 1024 * 1024;
