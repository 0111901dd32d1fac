// kvm-4k: every table at 4K. Models KVM's SEV-SNP support as merged in Linux 6.11 (Michael Roth,
// "KVM: SEV: Add support to handle RMP nested page faults" et al.) on guest_memfd without huge
// folios: sev_gmem_prepare() then only ever creates 4K RMP entries, the NPT is capped at 4K by
// sev_gmem_max_mapping_level(), and the AMD IOMMU uses 4K pages under SNP (Joerg Roedel,
// "iommu/amd: Add kernel parameters to limit V1 page-sizes", lore
// 20240905072240.253313-1-joro@8bytes.org). Correct, and the most fragmented layout possible.

import { SZ_4K } from '../model/size.ts';
import { defineHostPolicy } from './types.ts';

export default defineHostPolicy({
  name: 'kvm-4k',
  description: 'RMP, NPT and IO S2 all 4K (KVM SNP on guest_memfd without huge folios): correct, fragmenting',
  ioPageSizes: [SZ_4K],
  // The default private #NPF capped at 4K, as data rather than a hook calling
  // ctx.kvm.defaultPrivateFault(fault, { maxSize: '4K' }): the host then faults pages in as runs.
  privateFaultMaxSize: '4K',
});
