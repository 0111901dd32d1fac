// Intel VT-d second stage, after generic_pt fmt/vtdss.h.
import type { PageTableFormat } from '../format.ts';

export const vtdss: PageTableFormat = {
  name: 'vtdss',
  granuleLg2: 12,
  bitsPerLevel: 9,
  // vtdss_pt_possible_sizes(): PS=1 leaves exist at levels 0-2 only, no contiguous entries.
  leafLg2ByLevel: [[12], [21], [30]],
  maxTopLevel: 4,
  // The AGAW fixes the depth: top level 2, 3 or 4 for a 39, 48 or 57-bit VA.
  dynamicTop: false,
  vaBits: { default: 48, min: 39, max: 57, choices: [39, 48, 57] },
  maxOaBits: 52,
};
