// The iommu_iotlb_gather of the model: invalidation ranges and the freelist of table pages,
// both completed by sync() (the driver's iotlb_sync).
import type { InvalidationRange } from './types.ts';

export class Gather {
  // Parallel arrays so that adding a range on the unmap path allocates nothing.
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  /** Ids of detached table pages, released only after the flush (gather->freelist). */
  readonly freelist: number[] = [];

  /**
   * iommu_iotlb_gather_add_range() widens one range; we keep a list instead, merging a range
   * into the last one when they touch or overlap, so a caller sees what was really unmapped.
   */
  addRange(iova: number, len: number): void {
    const end = iova + len;
    const last = this.starts.length - 1;
    if (last >= 0) {
      const lastStart = this.starts[last] ?? 0;
      const lastEnd = this.ends[last] ?? 0;
      if (iova <= lastEnd && end >= lastStart) {
        this.starts[last] = Math.min(lastStart, iova);
        this.ends[last] = Math.max(lastEnd, end);
        return;
      }
    }
    this.starts.push(iova);
    this.ends.push(end);
  }

  /** No range gathered. */
  get empty(): boolean {
    return this.starts.length === 0;
  }

  /** The ranges gathered so far, without taking them (what iotlb_sync would invalidate now). */
  ranges(): InvalidationRange[] {
    return this.starts.map((iova, i) => ({ iova, len: (this.ends[i] ?? iova) - iova }));
  }

  takeRanges(): InvalidationRange[] {
    const out = this.starts.map((iova, i) => ({ iova, len: (this.ends[i] ?? iova) - iova }));
    this.starts.length = 0;
    this.ends.length = 0;
    return out;
  }
}
