// The `during` contract (DESIGN.md "Operations", DOMAIN.md "Races and interleavings"): interleaved
// DMAs and touches run between the outer op's own recorded calls, the hardware primitives a
// hitless host needs, the one smash decision point, and the four host policies in the race.

import { describe, expect, it } from 'vitest';
import type { Step } from '../../src/api.ts';
import { runCase } from '../../src/engine/run.ts';
import { resolveOracles, resolvePolicies } from '../../src/engine/select.ts';
import { Machine } from '../../src/model/machine.ts';
import { PSMASH_OK } from '../../src/model/types.ts';
import type { Case, During, Op } from '../../src/ops/types.ts';
import { defineHostPolicy, hostPolicies } from '../../src/policies/index.ts';
import { interleavedItems } from '../../src/report/interleaving.ts';
import { SZ_2M, SZ_4K, bareEnv, makeConfig, makeWorld, run } from '../helpers/world.ts';

const oracles = await resolveOracles();
const readBuf = (after: number, write = false): During => ({ after, op: { op: 'dma', dev: 0, buf: 0, len: 4096, write } });

/** A trusted device in RUN with a coherent buffer at GPA 0x100000 (above the reserved low 1 MiB) in a 2M region that is 2M in the RMP and in its S2. */
const SETUP: Op[] = [
  { op: 'tdi_accept', dev: 0 },
  { op: 'alloc_coherent', dev: 0, bytes: 8192 },
];
/** Sharing one other page of that region makes the host smash its 2M RMP entry. */
const shareWith = (during: During[]): Op => ({ op: 'share', gpa: 0x103000, pages: 1, during });

function raceCase(host: string, during: During[]): Case {
  return { config: makeConfig({ hostPolicy: host, guestPolicy: 'linux-2m-pool' }), seed: 'race', ops: [...SETUP, shareWith(during)] };
}

async function verdict(host: string, during: During[]) {
  const testCase = raceCase(host, during);
  return runCase(testCase, await resolvePolicies(host, 'linux-2m-pool'), { oracles });
}

function shareStep(host: string, during: During[]): Step {
  const world = makeWorld({ hostPolicy: host, guestPolicy: 'linux-2m-pool' });
  run(world, SETUP);
  return world.apply(shareWith(during), 2);
}

const own = (step: Step): string[] => step.calls.filter((c) => c.during === undefined).map((c) => c.prim);

describe('during: where interleaved ops run', () => {
  it('counts only the outer op own calls: after K runs between its call K and K+1', () => {
    const step = shareStep('cut-on-convert', [readBuf(2)]);
    expect(own(step).slice(0, 5)).toEqual(['pvalidate', 'psmash', 'npt_unmap', 'io_split', 'iommu_flush']);
    // The DMA's call sits right after the PSMASH and carries its entry index.
    const at = step.calls.findIndex((c) => c.during === 0);
    expect(step.calls[at - 1]?.prim).toBe('psmash');
    expect(step.calls[at]?.prim).toBe('dma');
    expect(step.calls[at + 1]?.prim).toBe('npt_unmap');
    expect(step.interleaved).toEqual([{ entry: 0, after: 2, ranAfter: 2, op: readBuf(2).op }]);
    expect(step.dmas[0]?.during).toBe(0);
  });

  it('runs after=0 before the first call, K >= n after the last, equal K in array order, even when the op is skipped', () => {
    const step = shareStep('cut-on-convert', [readBuf(1000), readBuf(0), { after: 0, op: { op: 'dma', dev: 1, iova: 0x103000, len: 64, write: false } }]);
    expect(step.calls[0]?.during).toBe(1);
    expect(step.calls[1]?.during).toBe(2);
    expect(step.calls[step.calls.length - 1]?.during).toBe(0);
    expect(step.interleaved?.map((r) => r.entry)).toEqual([1, 2, 0]);
    const world = makeWorld({ hostPolicy: 'cut-on-convert', guestPolicy: 'linux-2m-pool' });
    const skipped = world.apply({ op: 'free_coherent', buf: 0, during: [{ after: 3, op: { op: 'dma', dev: 1, iova: 0, len: 64, write: false } }] }, 0);
    expect(skipped.skipped).toBe('no live coherent buffer');
    expect(skipped.interleaved?.[0]?.ranAfter).toBe(0);
    expect(skipped.calls.map((c) => c.prim)).toEqual(['dma']);
  });

  it('resolves buf/map references when the inner op runs', () => {
    const world = makeWorld({ hostPolicy: 'cut-on-convert', guestPolicy: 'linux-2m-pool' });
    run(world, [{ op: 'tdi_accept', dev: 0 }]);
    // The buffer this op allocates is not live yet before its calls, and is after them.
    const step = world.apply({ op: 'alloc_coherent', dev: 0, bytes: 4096, during: [readBuf(0), readBuf(1000)] }, 1);
    expect(step.interleaved?.map((r) => r.skipped)).toEqual(['no live coherent buffer', undefined]);
    expect(step.dmas).toHaveLength(1);
    // Created by this op: its pages are being converted, where a DMA may fail.
    expect(step.converting?.objects).toEqual([{ kind: 'buf', id: 0 }]);
  });

  it('skips a DMA into an object the CPU owns while the op runs (DMA API)', () => {
    const world = makeWorld({ hostPolicy: 'cut-on-convert', guestPolicy: 'linux-2m-pool' });
    run(world, [{ op: 'map_single', dev: 1, bytes: 4096, dir: 'bidirectional' }]);
    const step = world.apply({ op: 'sync', map: 0, during: [{ after: 1, op: { op: 'dma', dev: 1, map: 0, len: 64, write: true } }] }, 1);
    expect(step.interleaved?.[0]?.skipped).toBe('the CPU owns map 0 while the op runs (DMA API)');
  });

  it('an interleaved touch never accepts, and its #NPF is handled after the op returns', () => {
    const world = makeWorld({ hostPolicy: 'cut-on-convert', guestPolicy: 'linux-2m-pool' });
    run(world, SETUP);
    const unaccepted = world.apply({ op: 'host_sync', during: [{ after: 0, op: { op: 'touch', gpa: 0x1000000, write: false } }] }, 2);
    expect(unaccepted.interleaved?.[0]?.skipped).toMatch(/not accepted/);
    // Between the PSMASH and the NPT zap, a touch of another page of the region faults (NPT 2M
    // over RMP 4K); the host resolves it only once the share returned.
    const step = world.apply(shareWith([{ after: 2, op: { op: 'touch', gpa: 0x5000, write: false } }]), 3);
    const record = step.interleaved?.[0];
    expect(record?.deferred).toBe(true);
    const touchCalls = step.calls.filter((c) => c.during === 0).map((c) => c.prim);
    expect(touchCalls[0]).toBe('guest_access');
    expect(touchCalls[touchCalls.length - 1]).toBe('guest_access');
    // Nothing of the host's fault handling ran inside the share: its own calls are as without the touch.
    expect(own(step)).toEqual(own(shareStep('cut-on-convert', [])));
    expect(step.guestErrors).toBeUndefined();
  });
});

describe('the race (DOMAIN.md "Races and interleavings")', () => {
  it('cut-on-convert: a DMA after the PSMASH and before io_split sees S2[2M] over RMP[4K] and dma-liveness reports it', async () => {
    for (const after of [2, 3]) {
      const result = await verdict('cut-on-convert', [readBuf(after, true)]);
      expect(result.violations[0]?.oracle).toBe('dma-liveness');
      expect(result.violations[0]?.message).toContain(`interleaved after call ${after} of share`);
      expect(result.violations[0]?.message).toContain('S2[2M] -- [2M] --> RMP[4K] ==> FAIL (size mismatch)');
    }
    // Before the PSMASH and after the flush the tables agree.
    for (const after of [0, 1, 5, 1000]) expect((await verdict('cut-on-convert', [readBuf(after)])).verdict).toBe('clean');
  });

  it('cut-on-convert: the IOTLB keeps the old 2M translation until the flush', async () => {
    const testCase = raceCase('cut-on-convert', [readBuf(4)]);
    testCase.ops.splice(2, 0, { op: 'dma', dev: 0, buf: 0, len: 64, write: false });
    const result = runCase(testCase, await resolvePolicies('cut-on-convert', 'linux-2m-pool'), { oracles });
    expect(result.violations[0]?.message).toContain('S2[2M] (IOTLB) -- [2M] --> RMP[4K]');
  });

  it('split-then-smash: a DMA after the cut and the flush, before the PSMASH, sees S2[4K] over RMP[2M]', async () => {
    const step = shareStep('split-then-smash', []);
    expect(own(step).slice(0, 5)).toEqual(['pvalidate', 'io_split', 'iommu_flush', 'psmash', 'npt_unmap']);
    const result = await verdict('split-then-smash', [readBuf(3)]);
    expect(result.violations[0]?.message).toContain('S2[4K] -- [4K] --> RMP[2M] ==> FAIL (size mismatch)');
  });

  it.each(['quiesce-dma', 'fw-atomic-smash'])('%s: a DMA at every point of the change succeeds', async (host) => {
    const during = Array.from({ length: 16 }, (_, k) => readBuf(k, k % 2 === 0));
    const result = await verdict(host, during);
    expect(result.verdict).toBe('clean');
  });

  it('quiesce-dma: a stalled device DMA waits and runs at dma_resume, after the flush', () => {
    const step = shareStep('quiesce-dma', [readBuf(3)]);
    const prims = step.calls.map((c) => `${c.prim}${c.during === undefined ? '' : `[${c.during}]`}`);
    expect(prims.slice(0, 9)).toEqual(['pvalidate', 'dma_stall', 'psmash', 'npt_unmap', 'io_split', 'iommu_flush', 'dma_resume', 'dma[0]', 'pvalidate']);
    expect(step.interleaved?.[0]).toMatchObject({ after: 3, ranAfter: 7, waited: true });
    expect(step.dmas[0]?.result.ok).toBe(true);
  });

  it('quiesce-dma: the DMAs a stalled device held drain at dma_resume before one issued right after it', () => {
    // A write held by the stall, then a read issued after the resume (after 7): the read must not
    // pass the device's earlier posted write.
    const step = shareStep('quiesce-dma', [readBuf(3, true), readBuf(7)]);
    const prims = step.calls.map((c) => `${c.prim}${c.during === undefined ? '' : `[${c.during}]`}`);
    expect(prims.slice(6, 9)).toEqual(['dma_resume', 'dma[0]', 'dma[1]']);
    expect(step.dmas.map((d) => d.write)).toEqual([true, false]);
  });

  it('fw-atomic-smash: one firmware call changes the RMP, the IO leaf and the IOTLB', () => {
    const step = shareStep('fw-atomic-smash', []);
    expect(own(step).slice(0, 3)).toEqual(['pvalidate', 'fw_smash', 'npt_unmap']);
  });

  it('dma-liveness exempts the pages the op converts', async () => {
    // A DMA into the very page being shared may fail: the guest must not DMA there meanwhile.
    const testCase: Case = {
      config: makeConfig({ hostPolicy: 'cut-on-convert', guestPolicy: 'linux-2m-pool' }),
      seed: 'exempt',
      ops: [...SETUP, { op: 'share', gpa: 0x103000, pages: 1, during: [{ after: 9, op: { op: 'dma', dev: 0, buf: 0, offset: 0x3000 - 0x2000, len: 64, write: false } }] }],
    };
    const step = shareStep('cut-on-convert', []);
    expect(step.converting?.gfns).toContainEqual({ start: 0x103, end: 0x104 });
    const result = runCase(testCase, await resolvePolicies('cut-on-convert', 'linux-2m-pool'), { oracles, allViolations: true });
    expect(result.violations.filter((v) => v.oracle === 'dma-liveness')).toEqual([]);
  });
});

describe('one smash decision point', () => {
  const calls: string[] = [];
  const recording = defineHostPolicy({
    ...hostPolicies['cut-on-convert']!,
    name: 'recording',
    smash(ctx, request) {
      calls.push(`${request.cause}:${request.npt}:0x${request.gpa.toString(16)}`);
      ctx.kvm.defaultSmash(request);
    },
  });

  it('owns the SIZEM fault, the partial conversion and host_split, and runs before the PSMASH', () => {
    const world = makeWorld({ hostPolicy: 'cut-on-convert', guestPolicy: 'linux-2m-pool' }, { host: recording });
    // Boot made the guest's pools shared (conversions of their own); from here on:
    calls.length = 0;
    run(world, [
      { op: 'accept', gpa: 0x200000, size: '2M' },
      { op: 'accept', gpa: 0x400000, size: '2M' },
      { op: 'accept', gpa: 0x600000, size: '2M' },
      // A 4K rescind on a 2M entry: SIZEM #NPF.
      { op: 'share', gpa: 0x201000, pages: 1 },
      { op: 'host_split', gpa: 0x600000 },
    ]);
    // A conversion to shared of part of a 2M range the guest did not rescind first (the host's own PSMASH).
    const converted = makeWorld({ hostPolicy: 'cut-on-convert', guestPolicy: 'double-validate' }, { host: recording });
    calls.splice(2);
    run(converted, [
      { op: 'accept', gpa: 0x400000, size: '2M' },
      { op: 'share', gpa: 0x401000, pages: 1 },
    ]);
    expect(calls).toEqual(['fault:zap:0x200000', 'split:split:0x600000', 'convert:zap:0x400000']);
  });

  it('a hook that leaves the entry 2M is seen by the caller; kvm.psmash from the hook is a policy error', async () => {
    const recursive = defineHostPolicy({ ...hostPolicies['cut-on-convert']!, name: 'recursive', smash: (ctx, request) => void ctx.kvm.psmash(request.gpa) });
    const testCase: Case = { config: makeConfig({ hostPolicy: 'cut-on-convert' }), seed: 'r', ops: [{ op: 'accept', gpa: 0x200000, size: '2M' }, { op: 'host_split', gpa: 0x200000 }] };
    const result = runCase(testCase, { host: recursive, guest: (await resolvePolicies('kvm-4k', 'linux')).guest }, { oracles });
    expect(result.violations[0]?.oracle).toBe('policy-error');
    expect(result.violations[0]?.message).toContain('kvm.psmash called from the smash hook');
  });

  it('a device still stalled when its op ends is a policy error', async () => {
    const stuck = defineHostPolicy({ ...hostPolicies['cut-on-convert']!, name: 'stuck', smash: (ctx, request) => {
      ctx.machine.dmaStall(0);
      ctx.kvm.defaultSmash(request);
    } });
    const testCase = raceCase('cut-on-convert', []);
    const result = runCase(testCase, { host: stuck, guest: (await resolvePolicies('kvm-4k', 'linux-2m-pool')).guest }, { oracles });
    expect(result.violations[0]?.oracle).toBe('policy-error');
    expect(result.violations[0]?.message).toMatch(/device 0 still stalled when op share ended/);
  });
});

describe('hardware primitives of a hitless host', () => {
  const machine = (): Machine => new Machine({ asid: 1, vtom: 2 ** 30, devices: [{ id: 0, trusted: true, iommu: 's2', ioPageSizes: [SZ_4K, SZ_2M] }] });

  it('dma_stall / dma_resume: a stalled device cannot DMA, double stall or resume is a usage error', () => {
    const m = machine();
    m.dmaStall(0);
    expect(m.device(0).stalled).toBe(true);
    expect(() => m.dma(0, 0, 64, false)).toThrow(/stalled/);
    expect(() => m.dmaStall(0)).toThrow(/already stalled/);
    m.dmaResume(0);
    expect(m.device(0).stalled).toBe(false);
    expect(() => m.dmaResume(0)).toThrow(/not stalled/);
    expect(m.recorder.endStep().calls.map((c) => c.prim)).toEqual(['dma_stall', 'dma_resume']);
  });

  it('fw_smash: PSMASH, the IO leaf split to 4K and the IOTLB invalidated for the region, as one call', () => {
    const m = machine();
    const hpa = 0x4000_0000_0000;
    const gpa = 0x200000;
    m.rmpUpdate(hpa, { assigned: true, asid: 1, gpa, size: '2M' });
    m.ioMap(0, gpa, hpa, SZ_2M);
    m.tdiSetState(0, 'locked');
    m.tdiSetState(0, 'run');
    expect(m.dma(0, gpa + 0x5000, 64, false).ok).toBe(true);
    expect(m.device(0).iotlb.lookup(gpa)?.size).toBe('2M');
    m.recorder.endStep();
    expect(m.fwSmash(hpa, gpa, [0])).toBe(PSMASH_OK);
    expect(m.recorder.endStep().calls.map((c) => c.prim)).toEqual(['fw_smash']);
    expect(m.rmp.entry(hpa / SZ_4K + 5).size).toBe('4K');
    expect(m.device(0).s2.leafAt(gpa + 0x5000)?.size).toBe(SZ_4K);
    expect(m.device(0).iotlb.lookup(gpa)).toBeUndefined();
    expect(m.dma(0, gpa + 0x5000, 64, false).ok).toBe(true);
    // A second one finds a 4K entry: PSMASH fails and nothing else changes.
    expect(m.fwSmash(hpa, gpa, [0])).not.toBe(PSMASH_OK);
    expect(() => m.fwSmash(hpa + SZ_4K, gpa, [0])).toThrow(/aligned/);
  });

  it('fw_smash under an IO leaf above 2M cuts only the smashed region to 4K; the others keep 2M leaves', () => {
    // An S2 with every AMD v1 size (vtom above the 1G mapped here).
    const m = new Machine({ asid: 1, vtom: 2 ** 31, devices: [{ id: 0, trusted: true, iommu: 's2' }] });
    const hpa = 0x4000_0000_0000;
    const SZ_1G = 512 * SZ_2M;
    for (let at = 0; at < SZ_1G; at += SZ_2M) m.rmpUpdate(hpa + at, { assigned: true, asid: 1, gpa: at, size: '2M' });
    expect(m.ioMap(0, 0, hpa, SZ_1G).mapped).toBe(SZ_1G);
    expect(m.device(0).s2.leafAt(0)?.size).toBe(SZ_1G);
    m.tdiSetState(0, 'locked');
    m.tdiSetState(0, 'run');
    const far = 100 * SZ_2M;
    expect(m.fwSmash(hpa, 0, [0])).toBe(PSMASH_OK);
    expect(m.device(0).s2.leafAt(0x5000)?.size).toBe(SZ_4K);
    // A whole-leaf split to 4K would leave the other regions' 2M RMP entries under 4K leaves.
    expect(m.device(0).s2.leafAt(far)?.size).toBe(SZ_2M);
    m.iotlbInvalidate(0);
    expect(m.dma(0, far + 0x3000, 64, true).ok).toBe(true);
  });

  it("the policies' cut helpers (cutIoLeaves, ctx.iommu.cut) cut an IO leaf above 2M down the path only", async () => {
    const { cutIoLeaves } = await import('../../src/policies/follow-rmp.ts');
    const { Iommu } = await import('../../src/host/iommu.ts');
    const SZ_1G = 512 * SZ_2M;
    const fresh = (): Machine => {
      const m = new Machine({ asid: 1, vtom: 2 ** 31, devices: [{ id: 0, trusted: false, iommu: 's2' }] });
      expect(m.ioMap(0, 0, 0x4000_0000_0000, SZ_1G).mapped).toBe(SZ_1G);
      return m;
    };
    const sizes = (m: Machine): Record<number, number> => {
      const count: Record<number, number> = {};
      for (const leaf of m.device(0).s2.leaves(0, SZ_1G)) count[leaf.size] = (count[leaf.size] ?? 0) + 1;
      return count;
    };
    // cutIoLeaves: the region at 0x200000 to 4K, the rest of the 1G in 2M leaves.
    const a = fresh();
    cutIoLeaves({ machine: a, iommu: { flush: (dev: number) => a.iommuFlush(dev) } } as never, SZ_2M, [0]);
    expect(sizes(a)).toEqual({ [SZ_4K]: 512, [SZ_2M]: 511 });
    // iommu.cut of [0x201000, 0x203000) to 4K: only the 2M leaf holding the boundaries is cut.
    const b = fresh();
    new Iommu(b, undefined as never, undefined as never, bareEnv(b)).cut(0, SZ_2M + 0x1000, 0x2000, SZ_4K);
    expect(sizes(b)).toEqual({ [SZ_4K]: 512, [SZ_2M]: 511 });
    // Two io_split calls: the 1G leaf to 2M, the 2M leaf holding the boundary to 4K.
    expect(b.recorder.endStep().calls.filter((c) => c.prim === 'io_split').map((c) => `${Number(c.args.size)}=${String(c.result)}`)).toEqual([`${SZ_2M}=ok`, `${SZ_4K}=ok`]);
    // An S2 without 2M leaves has no 2M step: one io_split to 4K, no failed call recorded.
    const c = new Machine({ asid: 1, vtom: 2 ** 31, devices: [{ id: 0, trusted: false, iommu: 's2', ioPageSizes: [SZ_4K, SZ_1G] }] });
    expect(c.ioMap(0, 0, 0x4000_0000_0000, SZ_1G).mapped).toBe(SZ_1G);
    c.recorder.endStep();
    new Iommu(c, undefined as never, undefined as never, bareEnv(c)).cut(0, SZ_2M + 0x1000, 0x2000, SZ_4K);
    cutIoLeaves({ machine: c, iommu: { flush: (dev: number) => c.iommuFlush(dev) } } as never, SZ_2M, [0]);
    expect(c.recorder.endStep().calls.filter((call) => call.prim === 'io_split').map((call) => `${Number(call.args.size)}=${String(call.result)}`)).toEqual([`${SZ_4K}=ok`]);
    expect(sizes(c)).toEqual({ [SZ_4K]: 262144 });
  });
});

describe('explain and trace show the interleaving', () => {
  it('numbers the own calls and places the racing DMA between them with the sizes it saw', () => {
    const step = shareStep('cut-on-convert', [readBuf(2, true)]);
    const compact = interleavedItems(step, 'compact').join(' | ');
    expect(compact).toMatch(/^1 pvalidate 0x103000 \| 2 psmash 0x[0-9a-f]+ \| <-- during\[0\] dma dev 0 iova 0x100000: S2\[2M\] -- \[2M\] --> RMP\[4K\] {2}==> FAIL \(size mismatch\) \| 3 npt_unmap 0x0 \| 4 io_split 0x0 \| 5 iommu_flush/);
    const trace = interleavedItems(step, 'trace');
    expect(trace[1]).toMatch(/^ {3}2 psmash\(hpa=0x[0-9a-f]+\) = 0$/);
    expect(trace[2]).toContain('<-- during[0] dma dev 0 iova 0x100000');
  });

  it('marks a DMA that waited for dma_resume and a skipped entry', () => {
    const step = shareStep('quiesce-dma', [readBuf(2), { after: 3, op: { op: 'dma', dev: 1, map: 0, len: 64, write: false } }]);
    const items = interleavedItems(step, 'compact');
    expect(items[items.indexOf('3 psmash 0x400000000000') + 1]).toBe('<-- during[1] dma dev=1 map=0 len=64 write=false: skipped (no live streaming mapping)');
    expect(items.find((i) => i.startsWith('<-- during[0]'))).toContain('(waited for dma_resume) dma dev 0 iova 0x100000: S2[4K] -- [4K] --> RMP[4K]');
    expect(items.indexOf('7 dma_resume')).toBeLessThan(items.findIndex((i) => i.startsWith('<-- during[0]')));
  });
});

describe('generation of during', () => {
  it('attaches interleaved DMAs and touches to ops that make calls; during=0 switches it off and generates as before', async () => {
    const { generateCase } = await import('../../src/ops/generate.ts');
    const config = makeConfig();
    let withDuring = 0;
    for (let i = 0; i < 20; i++) {
      const testCase = generateCase(config, `during/${i}`, { steps: 64 });
      for (const op of testCase.ops) {
        if (op.during === undefined) continue;
        withDuring++;
        expect(op.op).not.toBe('dma');
        for (const entry of op.during) expect(['dma', 'touch']).toContain(entry.op.op);
      }
      const off = generateCase(config, `during/${i}`, { steps: 64, weights: { during: 0 } });
      expect(off.ops.some((op) => op.during !== undefined)).toBe(false);
    }
    expect(withDuring).toBeGreaterThan(20);
    // Every op gets during at 100.
    const all = generateCase(config, 'during/all', { steps: 64, weights: { during: 100 } });
    expect(all.ops.filter((op) => op.op !== 'dma').every((op) => op.during !== undefined)).toBe(true);
    expect(SZ_2M).toBe(2 * 1024 * 1024);
  });
});
