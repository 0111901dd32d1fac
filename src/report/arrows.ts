// The notation of the seed discussion (DOMAIN.md): the tables a translation walked, the size the
// check used, and the verdict.
//     S1[4K] -> S2[2M] -- [2M] --> RMP[2M]  ==> OK
//     S2[4K] ------------ [4K] --> RMP[2M]  ==> FAIL (size mismatch)

import type { Fault, PageSize, ViolationDetails } from '../api.ts';
import { formatSize } from '../model/size.ts';

export interface ArrowParts {
  s1?: number;
  s2?: number;
  /** The S2 size is the one the IOTLB cached (the S2 was not walked). */
  iotlb?: boolean;
  npt?: number;
  checked?: PageSize;
  rmp?: PageSize;
  ok: boolean;
  reason?: string;
}

export function arrow(parts: ArrowParts): string {
  const chain: string[] = [];
  if (parts.s1 !== undefined) chain.push(`S1[${formatSize(parts.s1)}] -> `);
  if (parts.s2 !== undefined) chain.push(`S2[${formatSize(parts.s2)}]${parts.iotlb === true ? ' (IOTLB)' : ''}`);
  else if (parts.npt !== undefined) chain.push(`NPT[${formatSize(parts.npt)}]`);
  const checked = parts.checked ? ` -- [${parts.checked}] --> ` : ' --> ';
  const rmp = parts.rmp ? `RMP[${parts.rmp}]` : 'RMP[-]';
  const verdict = parts.ok ? '==> OK' : `==> FAIL${parts.reason ? ` (${parts.reason})` : ''}`;
  return `${chain.join('')}${checked}${rmp}  ${verdict}`;
}

export function faultArrow(fault: Fault): string {
  // A fault before any table gave a size (no translation at all) has nothing to draw.
  if (fault.s1Size === undefined && fault.s2Size === undefined && fault.nptSize === undefined && fault.rmpSize === undefined) {
    return `==> FAULT (${fault.reason})`;
  }
  return arrow({
    ...(fault.s1Size !== undefined ? { s1: fault.s1Size } : {}),
    ...(fault.s2Size !== undefined ? { s2: fault.s2Size } : {}),
    ...(fault.fromIotlb === true ? { iotlb: true } : {}),
    ...(fault.nptSize !== undefined ? { npt: fault.nptSize } : {}),
    ...(fault.s2Size !== undefined ? { checked: fault.s2Size >= 2 * 1024 * 1024 ? '2M' : '4K' } : {}),
    ...(fault.rmpSize !== undefined ? { rmp: fault.rmpSize } : {}),
    ok: false,
    reason: fault.reason,
  });
}

export function detailsArrow(details: ViolationDetails | undefined): string | undefined {
  const sizes = details?.sizes;
  // An arrow is an RMP check: a translation (S2 or NPT) on the left of the RMP entry it met, with
  // its size, or with the size checked and why it failed (an unassigned entry has no size). A
  // finding with neither (an NPT and an IO mapping that disagree, wrong bounce data) checked no
  // RMP, and an arrow would make one up.
  if (!sizes || (sizes.s2 === undefined && sizes.npt === undefined)) return undefined;
  if (sizes.rmp === undefined && (sizes.checked === undefined || typeof details?.reason !== 'string')) return undefined;
  return arrow({
    ...(sizes.s1 !== undefined ? { s1: sizes.s1 } : {}),
    ...(sizes.s2 !== undefined ? { s2: sizes.s2 } : {}),
    ...(details?.fromIotlb === true ? { iotlb: true } : {}),
    ...(sizes.npt !== undefined ? { npt: sizes.npt } : {}),
    ...(sizes.checked !== undefined ? { checked: sizes.checked } : sizes.s2 !== undefined ? { checked: sizes.s2 >= 2 * 1024 * 1024 ? '2M' : '4K' } : {}),
    ...(sizes.rmp !== undefined ? { rmp: sizes.rmp } : {}),
    ok: false,
    ...(typeof details?.reason === 'string' ? { reason: details.reason } : {}),
  });
}
