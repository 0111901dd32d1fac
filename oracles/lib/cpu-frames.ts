// The frame the guest's CPU reaches at a GPA: the NPT translation, or, while the host has zapped
// the NPT leaf, the frame the host backs the GPA with (the next access faults the leaf back in
// from that backing: KVM's #NPF path, kvm_tdp_page_fault(), kvm_gmem_get_pfn() for private
// memory). no-silent-remap, bounce-integrity and swiotlb-shared ask page by page; the NPT leaf of the last answer
// is kept (LeafCache), so a walk costs once per leaf. npt-iommu-coherence asks the same question
// of shared pages only, through HostView.sharedHpa: a private backing frame is not where a device
// should reach a shared page.

import { SZ_4K, type View } from 'cocofuzz/api';
import { LeafCache } from './leaf-cache.ts';

export class CpuFrames {
  /** Whether the last hpa() answered from the NPT (else from the host's backing, or nothing). */
  viaNpt = false;
  private readonly npt = new LeafCache();
  /** The answer of the last hpa(). */
  private last = -1;

  /** The tables changed (a new step): drop the kept leaf. */
  forget(): void {
    this.npt.forget();
  }

  /** The HPA the CPU reaches at `gpa`, or -1 where neither the NPT nor the host's backing maps it. */
  hpa(view: View, gpa: number): number {
    const viaNpt = this.npt.translate(view.npt, gpa);
    this.viaNpt = viaNpt >= 0;
    this.last = this.viaNpt ? viaNpt : view.host.backingHpa(gpa);
    return this.last;
  }

  /**
   * After hpa() of GFN `gfn` found a frame: the end (a GFN, at most `end`) of the run from `gfn`
   * that hpa() answers the same way, 4K further per page: over the NPT leaves that continue the
   * translation (a 2M range the host split into 4K leaves in place is one run), or, where the NPT
   * has no leaf, to its next leaf or the end of the host's backing run.
   */
  linearEnd(view: View, gfn: number, end: number): number {
    if (this.viaNpt) {
      const leaf = this.npt.leaf;
      // The kept leaf answers without a walk when the run ends inside it.
      if (leaf.iova + leaf.size >= end * SZ_4K) return end;
      return view.npt.linearEnd(gfn * SZ_4K, end * SZ_4K, this.last) / SZ_4K;
    }
    return Math.min(view.npt.nextMapped(gfn * SZ_4K, end * SZ_4K) / SZ_4K, view.host.backingRunEnd(gfn, end));
  }
}
