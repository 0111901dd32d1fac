// double-validate: a guest that shares a page without rescinding its validation first, and
// validates it twice after converting it back. Models the bug fixed in project-oak/oak PR #4218
// ("Don't pvalidate memory twice"; research/amd-snp.md section 7, item 8). The
// conversion-order oracle must catch it: a PSC to shared of a page still validated, and a
// PVALIDATE that finds the page already validated (status 255, NOUPDATE).

import { defineGuestPolicy } from './types.ts';

export default defineGuestPolicy({
  name: 'double-validate',
  description: 'skips the rescind before sharing and validates again after unsharing (oak PR 4218): must be caught',
  conversionSteps(_ctx, request) {
    if (request.purpose === 'accept') return ['psc', 'validate'];
    return request.to === 'shared' ? ['psc'] : ['psc', 'validate', 'validate'];
  },
});
