// kvm-iommu-4k: today's upstream pairing. KVM backs private memory with guest_memfd folios of 2M
// where it can and builds 2M RMP and NPT entries (sev_gmem_prepare() / is_large_rmp_possible(),
// sev_gmem_max_mapping_level(); the huge guest_memfd series), while the AMD IOMMU under SNP maps
// 4K pages only (amd_iommu=nohugepages, Joerg Roedel, lore 20240905072240.253313-1-joro@8bytes.org:
// an opt-in; Linux 6.12's amd_iommu_pgsize_bitmap defaults to every size, init.c).
// With SEV-TIO that cannot work: a trusted DMA is checked at the S2 leaf's size, and a 4K S2 leaf
// over a 2M RMP entry fails ("IOMMU pages size forced to 4K + 2M RMPs? Yup, does not work",
// Alexey Kardashevskiy, lore ddeb2bc8-5088-4d16-bea3-91d58a4403e8@amd.com; research/amd-snp.md
// section 7, item 1). Every hook is KVM's default.

import { SZ_4K } from '../model/size.ts';
import { defineHostPolicy } from './types.ts';

export default defineHostPolicy({
  name: 'kvm-iommu-4k',
  description: 'gmem 2M RMP and NPT where possible, IO S2 forced to 4K (amd_iommu=nohugepages, as SEV hosts run today): breaks trusted DMA, S2[4K] vs RMP[2M]',
  ioPageSizes: [SZ_4K],
});
