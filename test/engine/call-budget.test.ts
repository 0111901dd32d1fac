// The primitive-call budget (issue 14, item 14): a case past its budget, or an op past the step
// budget, ends with a deterministic policy-error naming the op and the hook, which shrinks like
// any other finding; and the budget a timed-out case's shrink runs its candidates with.

import { describe, expect, it } from 'vitest';
import { shrinkToRepro } from '../../src/engine/case-job.ts';
import { DEFAULT_CALL_BUDGET, POLICY_HOOKS, STEP_BUDGET, STEP_CALLS_PER_PAGE, defaultCallBudget, stepBudget } from '../../src/engine/call-budget.ts';
import { runCase } from '../../src/engine/run.ts';
import { TIMEOUT_SHRINK_MIN_OP_CALLS, timeoutShrinkBudget } from '../../src/engine/timeout-shrink.ts';
import type { TaskFailure } from '../../src/engine/watchdog.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import type { Op } from '../../src/ops/types.ts';
import { guestPolicies, hostPolicies } from '../../src/policies/index.ts';
import { defineHostPolicy } from '../../src/policies/types.ts';

const config = defaultConfig({});
/** KVM's split, plus 40 RMP reads each time: 4 splits make well over 100 calls. */
const chatty = defineHostPolicy({
  name: 'chatty-split',
  description: 'reads the RMP 40 times before each split',
  split(ctx, request) {
    for (let i = 0; i < 40; i++) ctx.machine.rmpRead(ctx.gmemFrame(request.gpa));
    ctx.kvm.defaultSplit(request);
  },
});
const policies = { host: chatty, guest: guestPolicies.linux! };
const ops: Op[] = [
  { op: 'accept', gpa: 0x200000, size: '2M' },
  { op: 'host_split', gpa: 0x200000 },
  { op: 'touch', gpa: 0x200000, write: false },
  { op: 'host_split', gpa: 0x400000 },
  { op: 'host_sync' },
  { op: 'host_split', gpa: 0x600000 },
  { op: 'host_split', gpa: 0x800000 },
];

describe('the per-case call budget', () => {
  it('is generous by default: the case runs clean', () => {
    expect(runCase({ config, seed: 's', ops }, policies, { oracles: [] }).verdict).toBe('clean');
  });

  it('ends a case past it with a policy-error naming the op and the hook, the same in every run', () => {
    const run = () => runCase({ config, seed: 's', ops }, policies, { oracles: [], callBudget: { case: 100 } });
    const first = run();
    expect(first.violations).toHaveLength(1);
    const violation = first.violations[0]!;
    expect(violation).toMatchObject({ oracle: 'policy-error', details: { policy: 'chatty-split', callBudget: 100, hook: 'host split' } });
    expect(violation.message).toMatch(/^policy chatty-split: call budget exceeded: the case made more than 100 primitive calls, the last in op \d+ \(host_split\), in hook host split$/);
    expect(ops[violation.step]?.op).toBe('host_split');
    expect(run().violations).toEqual(first.violations);
  });

  it('a per-op budget says "step budget exceeded" at the first op that spends it', () => {
    const result = runCase({ config, seed: 's', ops }, policies, { oracles: [], callBudget: { case: 1e6, op: 30 } });
    expect(result.violations[0]).toMatchObject({ oracle: 'policy-error', step: 1, details: { callBudget: 30, hook: 'host split' } });
    expect(result.violations[0]?.message).toContain('step budget exceeded: op 1 (host_split), in hook host split, made more than 30 primitive calls');
  });

  it('an op past it outside any hook names no hook', () => {
    const accepts: Op[] = [0, 0x200000, 0x400000, 0x600000].map((gpa) => ({ op: 'accept', gpa, size: '2M' }));
    const result = runCase({ config, seed: 's', ops: accepts }, policies, { oracles: [], callBudget: { case: 2 } });
    expect(result.violations[0]?.message ?? '').toMatch(/call budget exceeded: the case made more than 2 primitive calls, the last in op \d \(accept\)$/);
    expect(result.violations[0]?.details).not.toHaveProperty('hook');
  });

  it('shrinks like any deterministic finding', () => {
    const budget = { case: 100 };
    const first = runCase({ config, seed: 's', ops }, policies, { oracles: [], callBudget: budget }).violations[0]!;
    const { repro, violation } = shrinkToRepro({ config, seed: 's', ops }, first, { policies, oracles: [] }, 500, [], budget);
    expect(violation.message).toContain('call budget exceeded');
    // Three splits of 40-odd calls each are what it takes; everything else goes.
    expect(repro.ops.length).toBeLessThan(ops.length);
    expect(repro.ops.every((op) => op.op === 'host_split')).toBe(true);
  });
});

describe('the budget a timed-out case is shrunk with', () => {
  const stopped = (calls: number, callsBeforeOp: number, maxOpCalls: number): TaskFailure => ({
    kind: 'timeout',
    op: 5,
    hook: 'host split',
    made: { calls, callsBeforeOp, maxOpCalls },
    message: 'no result after 3s of wall clock',
  });

  it('is a few times the busiest finished op, at least the floor, when the op that hung ran away', () => {
    expect(timeoutShrinkBudget(stopped(90_000, 4000, 2500), {}, defaultConfig())).toEqual({ case: expect.any(Number) as number, op: 10_000 });
    expect(timeoutShrinkBudget(stopped(90_000, 100, 10), {}, defaultConfig())?.op).toBe(TIMEOUT_SHRINK_MIN_OP_CALLS);
  });

  it('is none when the op that hung made too few calls to tell (a loop without primitives)', () => {
    expect(timeoutShrinkBudget(stopped(4500, 4000, 2500), {}, defaultConfig())).toBeUndefined();
    expect(timeoutShrinkBudget({ ...stopped(90_000, 0, 0), op: -1 }, {}, defaultConfig())).toBeUndefined();
  });

  it('numbers every hook of both policy kinds', () => {
    expect(POLICY_HOOKS).toContain('host split');
    expect(POLICY_HOOKS).toContain('guest dmaAttrs');
    expect(new Set(POLICY_HOOKS).size).toBe(POLICY_HOOKS.length);
  });
});

describe('the step budget', () => {
  it('grows with the pages an op names: kvm-4k sharing a quarter of a 1 TiB guest\'s pool is no runaway', () => {
    // 65536 pages at 7 calls a page: past the flat 250000 calls that once called it runaway.
    expect(stepBudget({ op: 'share', gpa: 0, pages: 65536 })).toBe(STEP_BUDGET + STEP_CALLS_PER_PAGE * 65536);
    expect(stepBudget({ op: 'touch', gpa: 0, write: false })).toBe(STEP_BUDGET + STEP_CALLS_PER_PAGE);
    const big = defaultConfig({ guestMemory: '1T', hostPolicy: 'kvm-4k', guestPolicy: 'linux' });
    const share: Op[] = [
      { op: 'share', gpa: 0x1000000000, pages: 65536 },
      { op: 'unshare', gpa: 0x1000000000, pages: 65536 },
    ];
    const result = runCase({ config: big, seed: 's', ops: share }, { host: hostPolicies['kvm-4k']!, guest: guestPolicies.linux! }, { oracles: [] });
    expect(result.violations).toEqual([]);
    expect(result.verdict).toBe('clean');
  });
});

describe('the default case budget', () => {
  it('grows with the swiotlb pool: kvm-4k sharing as many pages as a 8G pool holds, 4K by 4K, is no runaway', () => {
    // The generator shares whole pools (ops/edges.ts): 2M pages at ~7 calls a page, past the flat
    // 10000000 calls that called it a runaway of policy linux at 1 TiB with a 64G pool.
    const big = defaultConfig({ guestMemory: '32G', swiotlb: '8G', hostPolicy: 'kvm-4k', guestPolicy: 'linux' });
    expect(defaultCallBudget(big)).toBe(DEFAULT_CALL_BUDGET + STEP_CALLS_PER_PAGE * 2 ** 21);
    const ops: Op[] = [{ op: 'share', gpa: 0x400000000, pages: 2 ** 21 }];
    const result = runCase({ config: big, seed: 's', ops }, { host: hostPolicies['kvm-4k']!, guest: guestPolicies.linux! }, { oracles: [] });
    expect(result.violations).toEqual([]);
    // The flat budget of before: the same op is a policy-error.
    const flat = runCase({ config: big, seed: 's', ops }, { host: hostPolicies['kvm-4k']!, guest: guestPolicies.linux! }, { oracles: [], callBudget: { case: DEFAULT_CALL_BUDGET } });
    expect(flat.violations[0]?.message).toMatch(/call budget exceeded: the case made more than 10000000 primitive calls, the last in op 0 \(share\)/);
  }, 120_000);
});

describe('the boot budget', () => {
  it('grows with the swiotlb pool: kvm-4k sharing a 4G pool 4K by 4K at boot is no runaway', () => {
    // 1M pages at 7 calls a page: past the flat 5000000 calls that once ended this boot.
    const big = defaultConfig({ guestMemory: '8G', swiotlb: '4G', hostPolicy: 'kvm-4k', guestPolicy: 'linux' });
    const result = runCase({ config: big, seed: 's', ops: [{ op: 'host_sync' }] }, { host: hostPolicies['kvm-4k']!, guest: guestPolicies.linux! }, { oracles: [] });
    expect(result.violations).toEqual([]);
  }, 120_000);
});
