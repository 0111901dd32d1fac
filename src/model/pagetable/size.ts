// Address arithmetic on plain JS numbers. Addresses reach 2^52, so the 32-bit bitwise
// operators would truncate them: everything here is exact double arithmetic on powers of two
// (division and multiplication by 2^n are exact, and Math.floor of an exact quotient is exact).

const POW2: readonly number[] = Array.from({ length: 64 }, (_, n) => 2 ** n);

/** 2^lg2, from a table (no Math.pow on hot paths). */
export function pow2(lg2: number): number {
  return POW2[lg2] ?? 2 ** lg2;
}

/** True when `value` is a multiple of the power of two `size`. */
export function isAligned(value: number, size: number): boolean {
  return Math.floor(value / size) * size === value;
}

/** `value` rounded down to a multiple of the power of two `size`. */
export function alignDown(value: number, size: number): number {
  return Math.floor(value / size) * size;
}

/** `value` rounded up to a multiple of the power of two `size`. */
export function alignUp(value: number, size: number): number {
  return Math.ceil(value / size) * size;
}

/** lg2 of a power of two, or -1 for anything else. */
export function exactLg2(value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) return -1;
  const lg2 = Math.round(Math.log2(value));
  return pow2(lg2) === value ? lg2 : -1;
}

const UNITS = ['', 'K', 'M', 'G', 'T', 'P', 'E'] as const;

/** A size as the kernel and our repro files write it: "4K", "2M", "1G", "512G", "4096K"... */
export function formatSize(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (unit < UNITS.length - 1 && value >= 1024 && value % 1024 === 0) {
    value /= 1024;
    unit++;
  }
  return `${value}${UNITS[unit] ?? ''}`;
}
