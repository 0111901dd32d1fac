// conversion-order judges a run of 4K events (one PSC or PVALIDATE per page of a conversion) as
// one range when none of its pages has anything to report, and event by event otherwise: a run
// with a finding on every page must still report each page, in order.

import { describe, expect, it } from 'vitest';
import { oracleNamed, runSpec } from './cases.ts';

const MB = 1024 * 1024;
const SZ_4K = 4096;

describe('conversion-order, run by run of events', () => {
  it('reports every page of a run of PSCs to shared that the guest still holds validated', () => {
    const result = runSpec({ host: 'cut-on-convert', guest: 'double-validate', ops: [{ op: 'share', gpa: 2 * MB, pages: 4 }] }, [oracleNamed('conversion-order')], {
      allViolations: true,
    });
    const gpas = result.violations.filter((v) => v.step === 0 && /no rescind before sharing/.test(v.message)).map((v) => v.details?.gpa);
    expect(gpas).toEqual([0, 1, 2, 3].map((i) => 2 * MB + i * SZ_4K));
  });

  it('stays silent on the same share by a correct guest', () => {
    const result = runSpec({ host: 'cut-on-convert', guest: 'linux', ops: [{ op: 'share', gpa: 2 * MB, pages: 4 }] }, [oracleNamed('conversion-order')], {
      allViolations: true,
    });
    expect(result.violations).toEqual([]);
  });
});
