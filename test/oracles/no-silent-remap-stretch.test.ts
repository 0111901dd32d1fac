// no-silent-remap forgets the pages a step shared stretch by stretch: the records of a 2M page the
// guest accepted name their frames through one reverse number, and sharing part of it unlinks
// exactly that part. The frame right after the shared part must stay linked: the host writing it
// (a write touches the frame, not the GPA) is found through that link.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { Rmp } from '../../src/model/rmp.ts';
import type { Op } from '../../src/ops/types.ts';
import type { View } from '../../src/api.ts';
import { oracleNamed, runSpec } from './cases.ts';

const MB = 1024 * 1024;
const SZ_4K = 4096;
const oracle = oracleNamed('no-silent-remap');
const setup: Op[] = [
  { op: 'accept', gpa: 2 * MB, size: '2M' },
  { op: 'share', gpa: 2 * MB, pages: 256 },
];
/** The share accepts the 2M page itself and splits it in the same step: its other half gets new records at once. */
const splitSetup: Op[] = [{ op: 'share', gpa: 2 * MB, pages: 256 }];

/** The frame behind `gpa` after the setup ops. */
function frameAfterSetup(gpa: number, ops = setup): number {
  let view: View | undefined;
  const spy = { ...oracle, name: 'spy', check: (v: View) => void (view = v) };
  runSpec({ host: 'cut-on-convert', guest: 'linux', ops }, [spy]);
  return view!.npt.iovaToPhys(gpa) ?? view!.host.backingHpa(gpa);
}

/** An RMP that lets the host write assigned frames (the direct-map check passes them). */
function rmpLetsHostWrite(): void {
  vi.spyOn(Rmp.prototype, 'isAssigned').mockReturnValue(false);
  vi.spyOn(Rmp.prototype, 'regionHasAssigned').mockReturnValue(false);
}

describe('no-silent-remap, part of a 2M page shared', () => {
  afterEach(() => vi.restoreAllMocks());

  it('still watches the page right after the shared part, through its frame', () => {
    const gpa = 2 * MB + 256 * SZ_4K;
    const hpa = frameAfterSetup(gpa);
    rmpLetsHostWrite();
    const result = runSpec({ host: 'cut-on-convert', guest: 'linux', adversary: true, ops: [...setup, { op: 'hw_host_write', hpa }] }, [oracle]);
    expect(result.violations[0]).toMatchObject({ oracle: 'no-silent-remap', step: 2 });
    expect(result.violations[0]!.details?.gpa).toBe(gpa);
    expect(result.violations[0]!.message).toMatch(/changed without a guest write ==> FAIL \(content changed behind the guest's back\)/);
  });

  it('watches the pages of a 2M page accepted and split in one step, through their frames', () => {
    const gpa = 2 * MB + 300 * SZ_4K;
    const hpa = frameAfterSetup(gpa, splitSetup);
    rmpLetsHostWrite();
    const result = runSpec({ host: 'cut-on-convert', guest: 'linux', adversary: true, ops: [...splitSetup, { op: 'hw_host_write', hpa }] }, [oracle]);
    expect(result.violations[0]).toMatchObject({ oracle: 'no-silent-remap', step: 1 });
    expect(result.violations[0]!.details?.gpa).toBe(gpa);
  });

  it('stays silent when the host writes a frame of the shared part', () => {
    const hpa = frameAfterSetup(2 * MB + 255 * SZ_4K);
    rmpLetsHostWrite();
    expect(runSpec({ host: 'cut-on-convert', guest: 'linux', adversary: true, ops: [...setup, { op: 'hw_host_write', hpa }] }, [oracle]).violations).toEqual([]);
  });

  // The GFNs a step touched are examined through their GFN ranges; a GFN from elsewhere that names
  // one of the frames the step touched, only through that frame. Here the host remaps the page at
  // 8M onto a frame of the 2M page (reported at once), and the guest later shares that 2M page
  // whole: the step's GFNs are the 2M page's, and the page at 8M loses its frame with them. The
  // check must see it (the end-of-case sweep would too: left out here). A shortcut that passes over
  // a frame region whose frames name only GFNs the step touched must count that GFN among them.
  it('watches a page the host remapped onto a frame of the 2M page when the guest converts the 2M page whole', () => {
    const hpa = frameAfterSetup(2 * MB + 300 * SZ_4K);
    const ops: Op[] = [
      ...setup,
      { op: 'accept', gpa: 8 * MB, size: '2M' },
      { op: 'hw_unmap', table: 'npt', gpa: 8 * MB, size: '2M' },
      { op: 'hw_map', table: 'npt', gpa: 8 * MB, hpa, size: '4K' },
      { op: 'unshare', gpa: 2 * MB, pages: 256 },
      { op: 'share', gpa: 2 * MB, pages: 512 },
    ];
    const checkOnly = { ...oracle, final: undefined };
    const found = runSpec({ host: 'cut-on-convert', guest: 'linux', adversary: true, ops }, [checkOnly], { allViolations: true }).violations;
    expect(found.map((v) => [v.step, v.details?.gpa])).toEqual([
      [4, 8 * MB],
      [6, 8 * MB],
    ]);
    expect(found[1]!.message).toMatch(/RMP entry no longer assigned while the guest holds it validated/);
  });
});
