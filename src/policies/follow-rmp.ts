// The IO side shared by the host policies whose S2 follows the RMP (cut-on-convert and the three
// that change page sizes in another order or hitlessly): Jason Gunthorpe's plan from the iommupt
// map thread (lore 20260119173734.GL1134360@nvidia.com, 20260128133258.GY1134360@nvidia.com). The
// VMM tracks the RMP's granularity and has iommupt cut (or grow) IO page sizes to match: 2M leaves
// over 2M RMP entries, 4K leaves where an entry was smashed, and the IOTLB invalidated before a
// page-state change completes. The policies differ only in how a smash orders the RMP, the IO
// leaf and the IOTLB (their `smash` hooks).

import { cutDownPath } from '../model/cut-path.ts';
import { SZ_2M, SZ_4K } from '../model/size.ts';
import type { HostContext, IoEvent } from './types.ts';

/** IO page sizes of the devices' S2: 2M leaves are what makes trusted DMA over 2M RMP entries work. */
export const FOLLOW_RMP_IO_PAGE_SIZES: readonly number[] = [SZ_4K, SZ_2M];

/**
 * Cut each device's IO leaf of 2M or more over the region to 4K leaves, then flush its IOTLB. A
 * leaf above 2M (a policy allowing larger IO pages) is first cut to 2M leaves, so that only this
 * region goes to 4K (cut_mapping() cuts down the path to the cut point): cut to 4K whole, the
 * other regions' 2M RMP entries would sit under 4K leaves.
 */
export function cutIoLeaves(ctx: HostContext, gpa: number, devices: readonly number[]): void {
  for (const dev of devices) {
    const s2 = ctx.machine.device(dev).s2;
    const leaf = s2.leafAt(gpa);
    if (leaf === undefined || leaf.size < SZ_2M) continue;
    cutDownPath(s2, gpa, SZ_4K, (iova, size) => ctx.machine.ioSplit(dev, iova, size));
    ctx.iommu.flush(dev);
  }
}

/** The devices whose S2 maps part of the 2M region at `gpa` or whose IOTLB caches it. */
export function devicesReaching(ctx: HostContext, gpa: number, devices: readonly number[]): number[] {
  return devices.filter((dev) => {
    const device = ctx.machine.device(dev);
    return device.s2.nextMapped(gpa, gpa + SZ_2M) < gpa + SZ_2M || device.iotlb.overlaps(gpa, SZ_2M);
  });
}

/** The `io` hook: the S2 follows the RMP; a `smash` cuts the IO leaf after the PSMASH. */
export function followRmpIo(ctx: HostContext, event: IoEvent): void {
  switch (event.kind) {
    case 'map':
      for (const dev of event.devices) {
        if (event.shared) ctx.iommu.map(dev, event.gpa, event.hpa, event.len);
        else ctx.iommu.mapFollowingRmp(dev, event.gpa, event.hpa, event.len);
      }
      return;
    case 'unmap':
      for (const dev of event.devices) {
        ctx.iommu.cut(dev, event.gpa, event.len, SZ_4K);
        ctx.iommu.unmap(dev, event.gpa, event.len);
        ctx.iommu.flush(dev);
      }
      return;
    case 'smash':
      // The RMP entry went 4K: cut the IO leaf over it to match, then flush the 2M IOTLB entry.
      cutIoLeaves(ctx, event.gpa, event.devices);
      return;
    case 'attach':
      ctx.iommu.mirror(event.dev, { followRmp: true });
      return;
  }
}
