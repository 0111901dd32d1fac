// Boundary: the guest's rescind loop skips 2M PSC entries, so a whole 2M region goes to the host
// still validated (only 2M-aligned, 512-page conversions hit it).
import { definePlantedBug } from './types.ts';

export default definePlantedBug({
  flag: 'rescind-skipped-for-2m',
  class: 'boundary',
  side: 'guest',
  description: 'no PVALIDATE rescind before a PSC to shared that contains a 2M entry',
  oracle: 'conversion-order',
  minimal: [{ op: 'share', gpa: 0x400000, pages: 512 }],
});
