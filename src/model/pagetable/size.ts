// Address arithmetic on plain JS numbers. Addresses reach 2^52, so the 32-bit bitwise
// operators would truncate them: everything here is exact double arithmetic on powers of two
// (division and multiplication by 2^n are exact, and Math.floor of an exact quotient is exact).

// Alignment and size notation are shared with the rest of the model (../size.ts).
export { alignDown, formatSize, isAligned, offsetIn } from '../size.ts';

const POW2: readonly number[] = Array.from({ length: 64 }, (_, n) => 2 ** n);

/** 2^lg2, from a table (no Math.pow on hot paths). */
export function pow2(lg2: number): number {
  return POW2[lg2] ?? 2 ** lg2;
}

/** lg2 of a power of two, or -1 for anything else. */
export function exactLg2(value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) return -1;
  const lg2 = Math.round(Math.log2(value));
  return pow2(lg2) === value ? lg2 : -1;
}
