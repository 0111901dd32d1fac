// IO page table model with Linux iommupt (drivers/iommu/generic_pt) semantics.
export { createPageTable, MODEL_MAX_ADDRESS_BITS } from './pagetable.ts';
export { formatSize } from './size.ts';
export { formats, getFormat, type FormatName } from './formats/index.ts';
export type { PageTableFormat } from './format.ts';
export type {
  InvalidationRange,
  Leaf,
  MapError,
  MapResult,
  PageTable,
  PageTableFormatName,
  PageTableOptions,
  PageTableStats,
  UnmapResult,
} from './types.ts';
