// no-silent-remap keeps no per-GFN arrays for a uniform region: none of its GFNs recorded, or all
// 512 on the frames of a 2M page the guest accepted, in order, frames nothing wrote. The arrays are
// made where a GFN first differs. A region that goes through the whole lifecycle (recorded whole,
// forgotten whole when the guest shares it, recorded whole again when the guest takes it back)
// must still name its frames: the host pointing the NPT elsewhere is found with the frame the
// guest validated, in the incremental check and in the full sweep.

import { describe, expect, it } from 'vitest';
import type { Op } from '../../src/ops/types.ts';
import { gmem, oracleNamed, runSpec } from './cases.ts';

const MB = 1024 * 1024;
const SZ_4K = 4096;
const oracle = oracleNamed('no-silent-remap');

/** The 2M page at 2M accepted, shared whole, taken back, then its NPT leaf pointed at other frames. */
function remappedAfterRoundTrip(roundTrips: number): Op[] {
  const ops: Op[] = [{ op: 'accept', gpa: 2 * MB, size: '2M' }];
  for (let i = 0; i < roundTrips; i++) ops.push({ op: 'share', gpa: 2 * MB, pages: 512 }, { op: 'unshare', gpa: 2 * MB, pages: 512 });
  ops.push({ op: 'hw_unmap', table: 'npt', gpa: 2 * MB, size: '2M' }, { op: 'hw_map', table: 'npt', gpa: 2 * MB, hpa: gmem(4 * MB), size: '2M' });
  return ops;
}

describe('no-silent-remap, uniform regions', () => {
  for (const roundTrips of [0, 1, 2]) {
    for (const fullCheck of [false, true]) {
      it(`names the validated frames after ${roundTrips} round trip(s) to shared (${fullCheck ? 'full sweep' : 'check'})`, () => {
        const ops = remappedAfterRoundTrip(roundTrips);
        const result = runSpec({ host: 'cut-on-convert', guest: 'linux-2m-pool', adversary: true, ops }, [oracle], { fullCheck, allViolations: true });
        const remapped = result.violations.filter((v) => /backing frame changed/.test(v.message));
        // Every page of the 2M page, each with the frame the guest validated.
        expect(remapped).toHaveLength(512);
        expect(remapped.every((v) => v.step === ops.length - 1)).toBe(true);
        expect(remapped.map((v) => v.details?.previousHpa)).toEqual(Array.from({ length: 512 }, (_, i) => gmem(2 * MB) + i * SZ_4K));
      });
    }
  }

  it('stays silent through the same round trips without the remap', () => {
    const ops = remappedAfterRoundTrip(2).slice(0, -2);
    for (const fullCheck of [false, true]) {
      expect(runSpec({ host: 'cut-on-convert', guest: 'linux-2m-pool', adversary: true, ops }, [oracle], { fullCheck, allViolations: true }).violations).toEqual([]);
    }
  });
});
