// Issue 13: RMPUPDATE FAIL_OVERLAP is transient. It is returned while another CPU's RMP procedure
// holds the same 2M region; in the model that is the #NPF of an interleaved touch whose handler
// must prepare (RMPUPDATE) a frame of a region the op is rebuilding. The handler's retry runs
// after the op returns (Interleaving), as Linux's rmpupdate() loops until the other CPU is done.

import { describe, expect, it } from 'vitest';
import type { Step } from '../../src/api.ts';
import { runCase } from '../../src/engine/run.ts';
import { resolveOracles, resolvePolicies } from '../../src/engine/select.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import { generateCase } from '../../src/ops/generate.ts';
import { RMPUPDATE_FAIL_OVERLAP } from '../../src/model/types.ts';
import { plantedBug, plantedConfig, plantedPolicies } from '../../bench/planted/index.ts';

const overlapped = (step: Step) => step.calls.filter((call) => call.during !== undefined && call.prim === 'rmpupdate' && call.result === RMPUPDATE_FAIL_OVERLAP);

describe('RMPUPDATE FAIL_OVERLAP between two CPUs', () => {
  it('a touch faulting into a region the host rebuilds with RMPUPDATEs gets FAIL_OVERLAP, and its handler retries after the op', async () => {
    // A host that answers a SIZEM fault by unassigning the 2M entry and assigning 512 4K entries
    // (a non-atomic procedure): a touch between those calls finds its frame unassigned.
    const bug = plantedBug('sizem-rmpupdate-rebuild')!;
    const policies = plantedPolicies(bug.flag);
    const oracles = await resolveOracles();
    const testCase = generateCase(plantedConfig(bug), 'overlap/12', { steps: 64, fullLength: true, weights: { during: 50 } });
    const steps: Step[] = [];
    const result = runCase(testCase, policies, { oracles, allViolations: true, onStep: (step) => steps.push(step) });
    const step = steps.find((s) => overlapped(s).length > 0);
    expect(step).toBeDefined();
    const call = overlapped(step!)[0]!;
    // The contended call belongs to a touch that ran between the op's own RMPUPDATEs of that region.
    const record = step!.interleaved!.find((r) => r.entry === call.during)!;
    expect(record.op.op).toBe('touch');
    expect(record.deferred).toBe(true);
    const region = Math.floor(Number(call.args.hpa) / 2 ** 21);
    const own = step!.calls.filter((c) => c.during === undefined && c.prim === 'rmpupdate' && Math.floor(Number(c.args.hpa) / 2 ** 21) === region);
    expect(own.length).toBeGreaterThan(1);
    expect(step!.calls.indexOf(call)).toBeGreaterThan(step!.calls.indexOf(own[0]!));
    expect(step!.calls.indexOf(call)).toBeLessThan(step!.calls.indexOf(own[own.length - 1]!));
    // Transient: the case goes on; no policy error, and no step records a persistent overlap.
    expect(result.violations.filter((v) => v.oracle === 'policy-error')).toEqual([]);
    expect(steps.flatMap((s) => s.calls).filter((c) => c.during === undefined && c.result === RMPUPDATE_FAIL_OVERLAP)).toEqual([]);
  });

  it('hitless built-in policies never meet it: their RMP work leaves every private page assigned', async () => {
    const policies = await resolvePolicies('split-then-smash', 'linux-2m-pool');
    const config = defaultConfig({ hostPolicy: 'split-then-smash', guestPolicy: 'linux-2m-pool' });
    let touches = 0;
    for (let i = 0; i < 30; i++) {
      const testCase = generateCase(config, `overlap/${i}`, { steps: 64, fullLength: true, weights: { during: 50 } });
      touches += testCase.ops.flatMap((op) => op.during ?? []).filter((d) => d.op.op === 'touch').length;
      runCase(testCase, policies, { oracles: [], onStep: (step) => expect(overlapped(step)).toEqual([]) });
    }
    expect(touches).toBeGreaterThan(50);
  });
});
