// Where the simulated host keeps guest memory in host physical address space. The host actor
// decides (src/host/backing.ts explains why shared frames are separate); the constants live here
// so that the generator can aim a hostile host's raw ops at the frames that matter.

/** guest_memfd frames: HPA = GMEM_BASE + GPA. */
export const GMEM_BASE = 2 ** 46;
/** The VMM's RAM block (what a VFIO map at start pins); conversion frames come after it. */
export const VMM_RAM_BASE = 2 ** 47;
