// What a page table format declares to the shared algorithm in pagetable.ts, in the spirit of
// generic_pt's fmt/*.h headers: the format states its geometry and which leaf sizes each level
// can hold, and the one walker (pt_iter.h / iommu_pt.h there, pagetable.ts here) does the work.

/** Description of one radix IO page table format. Level 0 holds the smallest pages
 *  (generic_pt numbering, the reverse of ARM's). */
export interface PageTableFormat {
  readonly name: string;
  /** lg2 of the smallest item, PT_GRANULE_LG2SZ (12 for 4K tables). */
  readonly granuleLg2: number;
  /** lg2 of the items per table, the VA bits one level decodes (9 for 512-entry tables). */
  readonly bitsPerLevel: number;
  /**
   * Leaf sizes (lg2) each level can hold, pt_possible_sizes() per level; index = level. A size
   * above the level's item size is a contiguous entry: 2^(lg2 - itemLg2) replicated items in
   * one table (amdv1's NextLevel=7 encoding). Levels past the end hold no leaves.
   */
  readonly leafLg2ByLevel: readonly (readonly number[])[];
  /** PT_MAX_TOP_LEVEL: the highest level a top table may have. */
  readonly maxTopLevel: number;
  /**
   * PT_FEAT_DYNAMIC_TOP: the tree starts at `startingLevel` and map grows it (increase_top()
   * in iommu_pt.h). Without it the top level follows from the VA width.
   */
  readonly dynamicTop: boolean;
  /** Top level a dynamic-top table starts with (amdv1: 2, a 39-bit VA like io_pgtable). */
  readonly startingLevel?: number;
  /** VA widths the format accepts: an explicit list, or any width in [min, max]. */
  readonly vaBits: {
    readonly default: number;
    readonly min: number;
    readonly max: number;
    readonly choices?: readonly number[];
  };
  /** Output address width (max_oasz_lg2). */
  readonly maxOaBits: number;
}

/** lg2 of the size of one item at `level` (pt_table_item_lg2sz()). */
export function itemLg2(format: PageTableFormat, level: number): number {
  return format.granuleLg2 + format.bitsPerLevel * level;
}

/** The level whose table spans at least 2^vaBits: the fixed top of a non-dynamic format. */
export function topLevelForVaBits(format: PageTableFormat, vaBits: number): number {
  return Math.max(0, Math.ceil((vaBits - format.granuleLg2) / format.bitsPerLevel) - 1);
}

/** Every leaf size lg2 the format can hold at some level, ascending. */
export function allLeafLg2(format: PageTableFormat): number[] {
  return [...new Set(format.leafLg2ByLevel.flat())].sort((a, b) => a - b);
}

/** Throws unless `vaBits` is a width the format accepts. */
export function checkVaBits(format: PageTableFormat, vaBits: number): void {
  const { min, max, choices } = format.vaBits;
  const ok = Number.isInteger(vaBits) && vaBits >= min && vaBits <= max && (choices === undefined || choices.includes(vaBits));
  if (!ok) {
    const allowed = choices ? choices.join(', ') : `${min}..${max}`;
    throw new Error(`vaBits ${vaBits} is not supported by page table format ${format.name} (allowed: ${allowed})`);
  }
}

/** Sizes from lg2 `from` to lg2 `to` inclusive, skipping `except`: a level's contiguous range. */
export function lg2Range(from: number, to: number, except: readonly number[] = []): number[] {
  const out: number[] = [];
  for (let lg2 = from; lg2 <= to; lg2++) if (!except.includes(lg2)) out.push(lg2);
  return out;
}
