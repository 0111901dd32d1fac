// The built-in policies that must fail do fail, on the short sequences of
// test/fixtures/policy-sequences.ts, and the built-in oracles say so.

import { describe, expect, it } from 'vitest';
import { builtinOracles } from '../../oracles/index.ts';
import { createWorld } from '../../src/engine/world.ts';
import { runCase } from '../../src/engine/run.ts';
import { parseConfig } from '../../src/ops/config.ts';
import { guestPolicies, hostPolicies } from '../../src/policies/index.ts';
import { policySequences, type PolicySequence } from '../fixtures/policy-sequences.ts';
import { SZ_2M, SZ_4K, frameOf, run } from '../helpers/world.ts';

function sequence(name: string): PolicySequence {
  const found = policySequences.find((s) => s.name === name);
  if (!found) throw new Error(`no sequence ${name}`);
  return found;
}

function replay(name: string) {
  const seq = sequence(name);
  const config = parseConfig(seq.config);
  const world = createWorld(config, { host: hostPolicies[config.hostPolicy]!, guest: guestPolicies[config.guestPolicy]! }, name);
  return { world, steps: run(world, seq.ops) };
}

describe('kvm-iommu-4k breaks trusted DMA (S2[4K] vs RMP[2M])', () => {
  it('faults a trusted DMA into a private buffer validated at 2M', () => {
    const { world, steps } = replay('kvm-iommu-4k-trusted-dma');
    expect(world.rmp.entry((frameOf(world, SZ_2M)) / SZ_4K)).toMatchObject({ assigned: true, size: '2M', validated: true });
    expect(world.guest.buffers[0]).toMatchObject({ gpa: SZ_2M, source: 'private', shared: false });
    const dma = steps[3]!.dmas[0]!;
    expect(dma.legit).toBe(true);
    expect(dma.result.ok).toBe(false);
    expect(dma.result.faults[0]).toMatchObject({ kind: 'rmp_page_fault', reason: 'size mismatch', s2Size: SZ_4K, checkedSize: '4K', rmpSize: '2M' });
  });

  it('faults the raw DMA of the DESIGN.md example', () => {
    const { steps } = replay('kvm-iommu-4k-trusted-dma-raw');
    expect(steps[2]!.dmas[0]!.result.faults[0]).toMatchObject({ reason: 'size mismatch', s2Size: SZ_4K, rmpSize: '2M' });
  });

  it('works with cut-on-convert on the same sequence', () => {
    const seq = sequence('kvm-iommu-4k-trusted-dma');
    const config = parseConfig({ ...seq.config, hostPolicy: 'cut-on-convert' });
    const world = createWorld(config, { host: hostPolicies['cut-on-convert']!, guest: guestPolicies.linux! }, 'x');
    const steps = run(world, seq.ops);
    expect(steps[3]!.dmas[0]!.result.ok).toBe(true);
    expect(steps[3]!.dmas[0]!.result.pieces[0]).toMatchObject({ s2Size: SZ_2M, checkedSize: '2M', rmpSize: '2M' });
  });
});

describe('vfio-static leaves stale IO mappings', () => {
  it('sends an untrusted DMA to the frame pinned at start, not the one the guest uses', () => {
    const { world, steps } = replay('vfio-static-stale');
    const buffer = world.guest.buffers[0]!;
    expect(buffer).toMatchObject({ gpa: 0x160000, source: 'pages', shared: true });
    const guestFrame = frameOf(world, buffer.gpa);
    const s2Frame = world.devices[0]!.s2.iovaToPhys(buffer.gpa);
    expect(s2Frame).toBeDefined();
    expect(s2Frame).not.toBe(guestFrame);
    // What the guest wrote is not what the device read.
    const written = steps[1]!.guestEvents.find((e) => e.kind === 'access');
    expect(written).toMatchObject({ ok: true, private: false, write: true });
    const dma = steps[2]!.dmas[0]!;
    expect(dma.legit).toBe(true);
    expect(dma.result.ok).toBe(true);
    expect(dma.result.pieces[0]!.hpa).toBe(s2Frame);
    expect(dma.tokens[0]).not.toBe(world.memory.token(guestFrame));
  });

  it('keeps the static mapping after the guest shares a page', () => {
    const { world, steps } = replay('vfio-static-share');
    const gpa = 4 * SZ_2M;
    expect(world.host.backing(gpa)?.shared).toBe(true);
    expect(world.devices[0]!.s2.leafAt(gpa)!.size).toBeGreaterThanOrEqual(SZ_2M);
    expect(steps[2]!.dmas[0]!.result.pieces[0]!.hpa).not.toBe(frameOf(world, gpa));
  });
});

describe('double-validate is caught', () => {
  it('shares without rescinding and validates twice', () => {
    const { steps } = replay('double-validate');
    const gpa = 4 * SZ_2M;
    const share = steps[0]!.guestEvents;
    const psc = share.findIndex((e) => e.kind === 'psc' && e.to === 'shared' && e.gpa === gpa);
    expect(psc).toBeGreaterThanOrEqual(0);
    expect(share.some((e) => e.kind === 'pvalidate' && !e.validate)).toBe(false);
    const validates = steps[1]!.guestEvents.filter((e) => e.kind === 'pvalidate' && e.validate && e.gpa === gpa);
    expect(validates.map((e) => (e.kind === 'pvalidate' ? e.status : -1))).toEqual([0, 255]);
    expect(steps[1]!.guestErrors?.join('\n')).toMatch(/already in that state/);
  });
});

describe('the built-in oracles flag every sequence', () => {
  for (const seq of policySequences) {
    it(`${seq.name}: ${seq.expect.oracle}`, () => {
      const config = parseConfig(seq.config);
      const result = runCase(
        { config, seed: seq.name, ops: seq.ops },
        { host: hostPolicies[config.hostPolicy]!, guest: guestPolicies[config.guestPolicy]! },
        { oracles: builtinOracles, allViolations: true },
      );
      expect(result.oracleErrors).toEqual([]);
      const oracles = new Set(result.violations.filter((v) => v.step <= seq.expect.step).map((v) => v.oracle));
      expect([...oracles]).toContain(seq.expect.oracle);
    });
  }
});
