// A frame's 2M region (frame / 512) and its slot in the region's per-2M arrays (frame % 512),
// without `%`. Host pfns sit above 2^31 (guest_memfd at 2^46), and a number read from a
// Float64Array is a double to V8 as well: `x % 512` on a double is a call to fmod, about six times
// the cost of the floor below (bench/README.md, oracle cost), and oracles take it once per frame
// of every touched range. Exact for every non-negative safe integer: 512 is a power of two.

import { FRAMES_PER_2M, offsetIn } from 'cocofuzz/api';

/** The 2M region holding `frame` (a pfn or a gfn, >= 0). */
export const regionOf = (frame: number): number => Math.floor(frame / FRAMES_PER_2M);

/** `frame`'s index in its 2M region's per-frame arrays: frame % 512, for `frame` >= 0. */
export const slotOf = (frame: number): number => offsetIn(frame, FRAMES_PER_2M);
