// The 4K pages (frames or GFNs) a record of calls covers inside a window of one 2M region, without
// visiting every call of a run: a run's calls advance their address by `stride` (CallRun), so the
// calls that reach the window are found by arithmetic (a PSMASH judged against the 253 RMPUPDATEs
// of the same step visits the few that land in its region, not all of them).

import { SZ_4K, argAt, callsIn, type CallRecord } from 'cocofuzz/api';

/**
 * Set `marks[page - first]` to 1 for each 4K page of [first, first + marks.length) that the calls
 * of `record` cover: argument `key` (a byte address) of each call and the `pages` 4K pages from it.
 */
export function markCallPages(record: CallRecord, key: string, pages: number, first: number, marks: Uint8Array): void {
  const n = callsIn(record);
  const end = first + marks.length;
  const start = Math.floor(argAt(record, key, 0) / SZ_4K);
  const strided = 'count' in record && record.strided.includes(key);
  const step = strided ? record.stride / SZ_4K : 0;
  let lo = 0;
  let hi = n;
  // Calls i cover [start + i * step, + pages): keep those that can meet [first, end). Calls whose
  // address does not advance all cover the same pages (one is enough); a stride that is not a
  // positive multiple of 4K visits every call.
  if (step > 0 && Number.isInteger(step)) {
    lo = Math.max(lo, Math.ceil((first - pages + 1 - start) / step));
    hi = Math.min(hi, Math.floor((end - 1 - start) / step) + 1);
  } else if (step === 0) {
    hi = Math.min(n, 1);
  }
  for (let i = lo; i < hi; i++) {
    const page = Math.floor(argAt(record, key, i) / SZ_4K);
    for (let p = Math.max(page, first); p < Math.min(page + pages, end); p++) marks[p - first] = 1;
  }
}
