// x86-64 first-stage table (VT-d first stage, AMD v2), after generic_pt fmt/x86_64.h.
import type { PageTableFormat } from '../format.ts';

export const x86_64: PageTableFormat = {
  name: 'x86_64',
  granuleLg2: 12,
  bitsPerLevel: 9,
  // 4K PTEs, 2M PDEs with PS, 1G PDPEs with PS.
  leafLg2ByLevel: [[12], [21], [30]],
  maxTopLevel: 4,
  // 4-level (top 3) or 5-level (top 4) paging. The kunit configs also use 47/56-bit ranges.
  // SIGN_EXTEND is not modelled: VAs are unsigned and below 2^vaBits.
  dynamicTop: false,
  vaBits: { default: 48, min: 47, max: 57, choices: [47, 48, 56, 57] },
  maxOaBits: 52,
};
