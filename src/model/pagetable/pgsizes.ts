// Resolves the caller's page size restriction against a format: the domain's pgsize_bitmap.
import { type PageTableFormat, itemLg2 } from './format.ts';
import { exactLg2, formatSize, pow2 } from './size.ts';

/**
 * Leaf sizes (lg2, ascending) a table may use. Follows NS(get_info)() in iommu_pt.h: the
 * union of pt_possible_sizes() over the levels the table can reach (for a dynamic top, every
 * level whose item is below the VA width; otherwise the levels up to the fixed top), with
 * sizes at or above 2^max_oasz hidden. A driver may then shrink domain.pgsize_bitmap; here the
 * caller's `restriction` (a Linux-style bitmap, or a list of byte sizes) does that, and a size
 * the table cannot hold is an error rather than silently dropped.
 */
export function resolvePageSizes(
  format: PageTableFormat,
  topLevel: number,
  vaBits: number,
  restriction: number | readonly number[] | undefined,
): number[] {
  const possible = new Set<number>();
  format.leafLg2ByLevel.forEach((sizes, level) => {
    const reachable = format.dynamicTop ? itemLg2(format, level) < vaBits : level <= topLevel;
    if (!reachable) return;
    for (const lg2 of sizes) if (lg2 < format.maxOaBits) possible.add(lg2);
  });

  if (restriction === undefined) return [...possible].sort((a, b) => a - b);

  const requested = typeof restriction === 'number' ? bitmapToLg2(restriction) : listToLg2(restriction);
  for (const lg2 of requested) {
    if (!possible.has(lg2)) {
      throw new Error(`page size ${formatSize(pow2(lg2))} is not supported by page table format ${format.name} with a ${vaBits}-bit VA`);
    }
  }
  if (requested.length === 0) throw new Error(`empty page size restriction for page table format ${format.name}`);
  return [...new Set(requested)].sort((a, b) => a - b);
}

function bitmapToLg2(bitmap: number): number[] {
  if (!Number.isSafeInteger(bitmap) || bitmap < 0) {
    throw new Error(`page size bitmap ${bitmap} is not a non-negative integer below 2^53`);
  }
  const out: number[] = [];
  // Bit tests by division: a bitmap for sizes above 4G does not fit the 32-bit operators.
  for (let n = 0; n < 53; n++) if (Math.floor(bitmap / pow2(n)) % 2 === 1) out.push(n);
  return out;
}

function listToLg2(sizes: readonly number[]): number[] {
  return sizes.map((size) => {
    const lg2 = exactLg2(size);
    if (lg2 < 0) throw new Error(`page size ${size} is not a power of two`);
    return lg2;
  });
}
