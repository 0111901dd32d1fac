// AMD IOMMU v1 host page table, after generic_pt fmt/amdv1.h: the S2 format of SEV-SNP hosts.
import { lg2Range, type PageTableFormat } from '../format.ts';

// amdv1pt_possible_sizes(): every power of two from the item size up to (but not including)
// the table span, via NextLevel=7 contiguous entries, except 512G (bit 39), which
// amdv1.h leaves out for a hardware erratum. OA is 52 bits, so nothing at or above 2^52.
const leafLg2ByLevel = [
  lg2Range(12, 20), // L0: 4K..1M
  lg2Range(21, 29), // L1: 2M..512M
  lg2Range(30, 38), // L2: 1G..256G
  lg2Range(39, 47, [39]), // L3: 1T..128T (bitmap 0xff0000000000)
  lg2Range(48, 51), // L4: 256T..2P, capped by the 52-bit OA
  [], // L5: the top level holds no leaves
];

export const amdv1: PageTableFormat = {
  name: 'amdv1',
  granuleLg2: 12,
  bitsPerLevel: 9,
  leafLg2ByLevel,
  maxTopLevel: 5,
  // amdv1.h forces PT_FEAT_DYNAMIC_TOP; iommu_amdv1.c starts at level 2 (3 levels, 39-bit VA)
  // like the old io_pgtable.c did.
  dynamicTop: true,
  startingLevel: 2,
  vaBits: { default: 64, min: 21, max: 64 },
  maxOaBits: 52,
};
