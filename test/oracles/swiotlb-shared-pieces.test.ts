// swiotlb-shared judges the pages of a live slot range piece by piece (a run of page flags, CPU
// translation and RMP entries) and looks page by page only at a piece that fails: a frame
// assigned in the middle of a bounce buffer must be reported at that page and only there, and
// the pages around it stay silent.

import { describe, expect, it } from 'vitest';
import type { View } from '../../src/api.ts';
import { oracleNamed, runSpec } from './cases.ts';

const SZ_4K = 4096;
const oracle = oracleNamed('swiotlb-shared');
const map = { op: 'map_single', dev: 1, bytes: 4 * SZ_4K, dir: 'to_device' } as const;

/** The bounce buffer's pages and the frames behind them, after the map. */
function bouncePages(): { gpa: number; hpa: number }[] {
  const pages: { gpa: number; hpa: number }[] = [];
  const seen = { view: undefined as View | undefined };
  const spy = {
    ...oracle,
    name: 'spy',
    check(view: View) {
      seen.view = view;
    },
  };
  runSpec({ host: 'cut-on-convert', guest: 'linux', ops: [map] }, [spy]);
  const view = seen.view!;
  const mapping = view.guest.mappings[0]!;
  expect(mapping.tlbAddr).toBeDefined();
  const first = Math.floor(mapping.tlbAddr! / SZ_4K) * SZ_4K;
  for (let gpa = first; gpa < mapping.tlbAddr! + mapping.bytes; gpa += SZ_4K) {
    const hpa = view.npt.iovaToPhys(gpa) ?? view.host.backingHpa(gpa);
    pages.push({ gpa, hpa });
  }
  return pages;
}

describe('swiotlb-shared, piece by piece', () => {
  it('reports an assigned frame in the middle of a live bounce buffer at that page only', () => {
    const pages = bouncePages();
    expect(pages.length).toBeGreaterThanOrEqual(4);
    const victim = pages[2]!;
    const result = runSpec(
      {
        host: 'cut-on-convert',
        guest: 'linux',
        adversary: true,
        // Assigned first: the map then makes the buffer's pages required, and the check judges
        // them as one range, not through the frame the step touched.
        ops: [{ op: 'hw_rmpupdate', hpa: victim.hpa, assigned: true, asid: 1, gpa: 0x7000_0000, size: '4K' }, map],
      },
      [oracle],
    );
    // The findings of the step that fired (the end-of-case sweep would repeat it).
    const findings = result.violations.filter((v) => v.oracle === 'swiotlb-shared');
    expect(findings.map((v) => [v.step, v.details?.gpa])).toEqual([[1, victim.gpa]]);
    expect(findings[0]!.message).toMatch(/RMP\[4K\] at hpa .* is assigned .*FAIL \(memory an untrusted device uses is not shared\)/);
  });

  it('stays silent over the same buffer when no frame is assigned', () => {
    const result = runSpec({ host: 'cut-on-convert', guest: 'linux', adversary: true, ops: [map, map] }, [oracle], { allViolations: true });
    expect(result.violations).toEqual([]);
  });
});
