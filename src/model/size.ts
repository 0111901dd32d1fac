// Addresses and sizes are plain numbers of bytes: physical addresses reach 2^52, past the 32 bits
// that JavaScript's bitwise operators keep, so everything here is arithmetic (/, %, Math.floor).

export const SZ_2K = 2048;
export const SZ_4K = 4096;
export const SZ_2M = 2 * 1024 * 1024;
export const SZ_1G = 1024 * 1024 * 1024;
/** 4K frames in a 2M region: the span of one 2M RMP entry. */
export const FRAMES_PER_2M = 512;

/**
 * 4K frame numbers (host pfns and guest gfns) lie below this: addresses stay below 2^52. A walk
 * of everything run by run (RmpView.runEnd, GuestView.pageRunEnd) goes from 0 to here; the run
 * questions jump over untouched memory.
 */
export const FRAME_LIMIT = 2 ** 40;

export type PageSize = '4K' | '2M';

export const pageBytes = (size: PageSize): number => (size === '2M' ? SZ_2M : SZ_4K);

export const pfnOf = (addr: number): number => Math.floor(addr / SZ_4K);
export const addrOf = (pfn: number): number => pfn * SZ_4K;
/**
 * `value % alignment` for a power-of-two `alignment` and `value` >= 0, without `%`. Host addresses
 * and pfns sit above 2^31 (guest_memfd at 2^46, GMEM_BASE), where V8 holds numbers as doubles and
 * `%` on a double is a call to fmod: 3-10x the cost of this floor in a micro-benchmark, on the
 * path of every primitive. Exact for every safe integer: dividing by a power of two is exact.
 */
export const offsetIn = (value: number, alignment: number): number => value - Math.floor(value / alignment) * alignment;
/** `alignment` a power of two, as every page and table size is. */
export const isAligned = (value: number, alignment: number): boolean => offsetIn(value, alignment) === 0;
export const alignDown = (value: number, alignment: number): number => value - offsetIn(value, alignment);
export const alignUp = (value: number, alignment: number): number => alignDown(value + alignment - 1, alignment);
/** The 2M-aligned frame whose RMP entry decides the page size of `pfn` (`pfn & ~511`). */
export const pfn2M = (pfn: number): number => pfn - offsetIn(pfn, FRAMES_PER_2M);

const UNITS: Record<string, number> = { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** "4K", "2M", "64M", "1T", a decimal byte count or a hex string; undefined when malformed. */
export function parseSize(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isSafeInteger(text) && text >= 0 ? text : undefined;
  const match = /^(\d+)([KMGT])?$/i.exec(text.trim());
  if (match) {
    const value = Number(match[1]) * (match[2] ? (UNITS[match[2].toUpperCase()] ?? 1) : 1);
    return Number.isSafeInteger(value) ? value : undefined;
  }
  return parseAddress(text);
}

/** A hex ("0x200000") or decimal address; undefined when malformed or not below 2^52 (52-bit physical addresses). */
export function parseAddress(text: string | number): number | undefined {
  const value = typeof text === 'number' ? text : /^0x[0-9a-f]+$/i.test(text) ? Number.parseInt(text, 16) : /^\d+$/.test(text) ? Number(text) : Number.NaN;
  return Number.isSafeInteger(value) && value >= 0 && value < 2 ** 52 ? value : undefined;
}

export const hex = (value: number): string => `0x${value.toString(16)}`;

/** 4096 -> "4K", 2097152 -> "2M", 3 -> "3": the notation of DOMAIN.md and the repro format. */
export function formatSize(bytes: number): string {
  for (const [unit, scale] of [['E', 1024 ** 6], ['P', 1024 ** 5], ['T', 1024 ** 4], ['G', 1024 ** 3], ['M', 1024 ** 2], ['K', 1024]] as const) {
    if (bytes >= scale && bytes % scale === 0) return `${bytes / scale}${unit}`;
  }
  return String(bytes);
}
