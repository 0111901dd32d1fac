// Translation page by page without a walk per page: the leaf of the last look-up is kept and
// answers every address inside it (a 2M leaf answers for 512 pages). The tables change between
// steps, so a check starts with forget().

import type { Leaf, PageTableView } from 'cocofuzz/api';

export class LeafCache {
  /** The leaf of the last successful translate() (valid until the next call or forget()). */
  readonly leaf: Leaf = { iova: 0, pa: 0, size: 0 };
  private table: PageTableView | undefined;

  forget(): void {
    this.table = undefined;
  }

  /** The output address of `iova` in `table` (its leaf in `leaf`), or -1 where the table maps nothing. */
  translate(table: PageTableView, iova: number): number {
    const leaf = this.leaf;
    if (this.table !== table || iova < leaf.iova || iova >= leaf.iova + leaf.size) {
      this.table = table.leafInto(iova, leaf) ? table : undefined;
      if (this.table === undefined) return -1;
    }
    return leaf.pa + (iova - leaf.iova);
  }
}
