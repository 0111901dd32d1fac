// The oracle lifecycle of API v2: boot(view) once per case before the first op (its findings
// reported with the first step, its throw an oracle error), checkCoversFinal skipping the
// end-of-case sweep of a clean case only, and the Step's ranges next to the lazy per-frame arrays.

import { describe, expect, it } from 'vitest';
import { SZ_2M, SZ_4K, type Oracle, type Step, type View } from '../../src/api.ts';
import { runCase } from '../../src/engine/run.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import type { Op } from '../../src/ops/types.ts';
import { guestPolicies, hostPolicies } from '../../src/policies/index.ts';

const config = defaultConfig({ hostPolicy: 'cut-on-convert', guestPolicy: 'linux-2m-pool' });
const policies = { host: hostPolicies['cut-on-convert']!, guest: guestPolicies['linux-2m-pool']! };
const ops: Op[] = [
  { op: 'accept', gpa: SZ_2M, size: '2M' },
  { op: 'touch', gpa: SZ_2M, write: true },
  { op: 'host_sync' },
];

/** An oracle that logs its lifecycle calls into `log`. */
function logging(log: string[], extra: Partial<Oracle> = {}): Oracle {
  return {
    name: 'logging',
    description: 'logs its calls',
    severity: 'correctness',
    boot: () => void log.push('boot'),
    check: (_view, step) => void log.push(`check ${step.index}`),
    final: () => void log.push('final'),
    ...extra,
  };
}

describe('oracle lifecycle', () => {
  it('boots each oracle once per case, before the first step, on the booted world', () => {
    const log: string[] = [];
    let bootView: View | undefined;
    let checkView: View | undefined;
    const oracle = logging(log, {
      boot: (view) => {
        bootView = view;
        log.push(`boot: ${[...view.guest.pages()].length > 0 ? 'booted' : 'empty'}`);
      },
      check: (view, step) => {
        checkView = view;
        log.push(`check ${step.index}`);
      },
    });
    runCase({ config, seed: 's', ops }, policies, { oracles: [oracle] });
    expect(log).toEqual(['boot: booted', 'check 0', 'check 1', 'check 2', 'final']);
    expect(bootView).toBe(checkView);
  });

  it('reports what boot finds with the first step, ahead of its checks, and a boot that throws as an oracle error', () => {
    const finds = logging([], { boot: () => [{ message: 'wrong at boot' }], check: (_v, step) => (step.index === 0 ? [{ message: 'wrong at 0' }] : []) });
    const result = runCase({ config, seed: 's', ops }, policies, { oracles: [finds], allViolations: true });
    expect(result.violations.map((v) => [v.step, v.message])).toEqual([
      [0, 'wrong at boot'],
      [0, 'wrong at 0'],
    ]);
    const throws = logging([], { name: 'throws', boot: () => { throw new Error('no boot'); } });
    const log: string[] = [];
    const result2 = runCase({ config, seed: 's', ops }, policies, { oracles: [throws, logging(log)] });
    expect(result2.oracleErrors).toEqual([{ oracle: 'throws', step: 0, message: 'no boot' }]);
    expect(log).toEqual(['boot', 'check 0', 'check 1', 'check 2', 'final']);
  });

  it('skips the end-of-case sweep of checkCoversFinal only in a clean case with steps', () => {
    const clean: string[] = [];
    runCase({ config, seed: 's', ops }, policies, { oracles: [logging(clean, { checkCoversFinal: true })] });
    expect(clean).not.toContain('final');

    // Another oracle's finding: every sweep runs (allViolations).
    const found: string[] = [];
    const fires: Oracle = { name: 'fires', description: 'x', severity: 'correctness', check: (_v, step) => (step.index === 1 ? [{ message: 'x' }] : []) };
    runCase({ config, seed: 's', ops }, policies, { oracles: [logging(found, { checkCoversFinal: true }), fires], allViolations: true });
    expect(found).toContain('final');

    // --full-check sweeps after every step instead of checking.
    const full: string[] = [];
    runCase({ config, seed: 's', ops }, policies, { oracles: [logging(full, { checkCoversFinal: true })], fullCheck: true });
    expect(full).toEqual(['boot', 'final', 'final', 'final']);

    // No step: only the sweep can judge the booted world.
    const empty: string[] = [];
    runCase({ config, seed: 's', ops: [] }, policies, { oracles: [logging(empty, { checkCoversFinal: true })] });
    expect(empty).toEqual(['boot', 'final']);
  });

  it('hands the step its touched frames as ranges; the per-frame arrays expand only when read', () => {
    const steps: Step[] = [];
    runCase({ config, seed: 's', ops }, policies, { oracles: [], onStep: (step) => steps.push(step) });
    const accept = steps[0]!;
    // The 2M accept: one range of 512 guest frames, however many primitives reached it.
    expect(accept.gfnRanges).toContainEqual({ start: SZ_2M / SZ_4K, end: (2 * SZ_2M) / SZ_4K });
    for (const step of steps) {
      expect(Object.keys(step)).not.toContain('frames');
      expect(step.gfns).toEqual(step.gfnRanges.flatMap((r) => Array.from({ length: r.end - r.start }, (_, i) => r.start + i)));
      expect(step.frames).toEqual(step.frameRanges.flatMap((r) => Array.from({ length: r.end - r.start }, (_, i) => r.start + i)));
    }
  });
});
