// no-silent-remap re-reads content tokens only where memory was written since its last pass
// (MemoryView.regionsWrittenSince), and records the pages of frames never written without reading
// their tokens. Both shortcuts must keep the verdicts: a frame the host wrote before the guest
// accepted it is recorded with its real tokens (a step that then writes next to it and looks at it
// finds nothing changed), and a write behind the guest's back in such a step is still found.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { Rmp } from '../../src/model/rmp.ts';
import type { Op } from '../../src/ops/types.ts';
import type { View } from '../../src/api.ts';
import { oracleNamed, runSpec } from './cases.ts';

const MB = 1024 * 1024;
const SZ_4K = 4096;
const oracle = oracleNamed('no-silent-remap');
const accept: Op = { op: 'accept', gpa: 2 * MB, size: '2M' };

/** The frame behind `gpa` once the guest accepted the 2M page at 2M. */
function frameOf(gpa: number): number {
  let view: View | undefined;
  const spy = { ...oracle, name: 'spy', check: (v: View) => void (view = v) };
  runSpec({ host: 'cut-on-convert', guest: 'linux', ops: [accept] }, [spy]);
  return view!.npt.iovaToPhys(gpa) ?? view!.host.backingHpa(gpa);
}

/** A step that looks at every page of the 2M page (PSMASH touches its 512 frames) while the guest writes one of them. */
function smashWhileWriting(gpa: number): Op {
  const base = frameOf(2 * MB);
  return { op: 'hw_psmash', hpa: base, during: [{ after: 0, op: { op: 'touch', gpa, write: true } }] };
}

describe('no-silent-remap, content re-read only where memory was written', () => {
  afterEach(() => vi.restoreAllMocks());

  it('records the real tokens of a frame written before the guest accepted it', () => {
    const hpa = frameOf(2 * MB + 5 * SZ_4K);
    const ops: Op[] = [{ op: 'hw_host_write', hpa }, accept, smashWhileWriting(2 * MB + 6 * SZ_4K)];
    const result = runSpec({ host: 'cut-on-convert', guest: 'linux', adversary: true, ops }, [oracle]);
    expect(frameOf(2 * MB + 5 * SZ_4K)).toBe(hpa);
    expect(result.violations).toEqual([]);
  });

  it('finds the host writing a validated page in a step where the guest writes the page next to it', () => {
    const hpa = frameOf(2 * MB + 5 * SZ_4K);
    vi.spyOn(Rmp.prototype, 'isAssigned').mockReturnValue(false);
    vi.spyOn(Rmp.prototype, 'regionHasAssigned').mockReturnValue(false);
    const ops: Op[] = [accept, { op: 'hw_host_write', hpa, during: [{ after: 0, op: { op: 'touch', gpa: 2 * MB + 6 * SZ_4K, write: true } }] }];
    const result = runSpec({ host: 'cut-on-convert', guest: 'linux', adversary: true, ops }, [oracle]);
    expect(result.violations[0]).toMatchObject({ oracle: 'no-silent-remap', step: 1 });
    expect(result.violations[0]!.details?.gpa).toBe(2 * MB + 5 * SZ_4K);
  });
});
