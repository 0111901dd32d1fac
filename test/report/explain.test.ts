import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { explainRepro } from '../../src/engine/explain.ts';
import { resolveOracles, resolveReproPolicies } from '../../src/engine/select.ts';
import { readRepro } from '../../src/repro/format.ts';
import { arrow } from '../../src/report/arrows.ts';

const corpusFile = (name: string): string => fileURLToPath(new URL(`../../corpus/${name}`, import.meta.url));

async function explain(name: string): Promise<string> {
  const repro = readRepro(corpusFile(name));
  return explainRepro(repro, await resolveReproPolicies(repro), await resolveOracles());
}

describe('explain', () => {
  it("draws DOMAIN.md's four seed cases", () => {
    expect(arrow({ s1: 4096, s2: 2 ** 21, checked: '2M', rmp: '2M', ok: true })).toBe('S1[4K] -> S2[2M] -- [2M] --> RMP[2M]  ==> OK');
    expect(arrow({ s2: 4096, checked: '4K', rmp: '2M', ok: false, reason: 'size mismatch' })).toBe('S2[4K] -- [4K] --> RMP[2M]  ==> FAIL (size mismatch)');
    expect(arrow({ s2: 2 ** 21, checked: '2M', rmp: '4K', ok: false })).toBe('S2[2M] -- [2M] --> RMP[4K]  ==> FAIL');
    expect(arrow({ s2: 2 ** 22, checked: '2M', rmp: '2M', ok: true })).toBe('S2[4M] -- [2M] --> RMP[2M]  ==> OK');
  });

  it('shows the failing DMA, the region before and after, and the ops', async () => {
    const text = await explain('kvm-iommu-4k-trusted-dma.json');
    // The case's own verdict comes first; the file's expected oracle fires later and is explained.
    expect(text).toContain('verdict: io-s2-rmp-size (correctness) at step 1');
    expect(text).toContain('the file expects: dma-liveness at step 3; it fires too, after the verdict above');
    expect(text).toContain('explained below: dma-liveness (liveness) at step 3');
    expect(text).toContain('  S2[4K] -- [4K] --> RMP[2M]  ==> FAIL (size mismatch)');
    expect(text).toMatch(/RMP\s+@0x400000200000: 2M assigned asid 1 gpa 0x200000 validated \(unchanged\)/);
    expect(text).toMatch(/IO S2 dev0\s+512 x 4K/);
    expect(text).toMatch(/>\s+3 {2}dma dev=0 buf=0 len=4096 write=true/);
  });

  it('names every config field that changes the case: cpus always, vtom, dmaMask and adversary when not the default', async () => {
    expect(await explain('double-validate.json')).toContain('config: host cut-on-convert, guest double-validate, 64M guest (2M backing), swiotlb 4M, 2 cpus, dev0 untrusted s2\n');
    const repro = readRepro(corpusFile('double-validate.json'));
    const changed = { ...repro, config: { ...repro.config, vtom: 0x2000000, adversary: 'host' as const, devices: [{ ...repro.config.devices[0]!, dmaMask: 32 }] } };
    const text = explainRepro(changed, await resolveReproPolicies(changed), await resolveOracles());
    expect(text).toContain(', 2 cpus, vtom 0x2000000, dev0 untrusted s2 dmaMask 32, adversary host\n');
  });

  it('pairs rows by table when the backing appears with the step, and draws no arrow without a translation', async () => {
    const repro = readRepro(corpusFile('double-validate.json'));
    const text = explainRepro({ ...repro, expect: { verdict: 'violation', oracle: 'conversion-order', step: 0 } }, await resolveReproPolicies(repro), await resolveOracles());
    expect(text).toMatch(/RMP\s+no backing frame yet\n\s+-> @0x[0-9a-f]+: 4K entries/);
    expect(text).toContain('==> FAULT (not present)   [npf at 0x800000, to the host]');
    expect(text).not.toContain(' --> RMP[-]');
  });

  it('shows the race inside the failing op: numbered calls, the interleaved DMA between them, the sizes it saw', async () => {
    const text = await explain('race-cut-on-convert-psmash-first.json');
    expect(text).toContain('verdict: dma-liveness (liveness) at step 2');
    expect(text).toContain('interleaved after call 2 of share');
    expect(text).toMatch(/inside step 2 .*\n {4}1 pvalidate 0x103000 \| 2 psmash 0x[0-9a-f]+ \| <-- during\[0\] dma dev 0 iova 0x100000: S2\[2M\] -- \[2M\] --> RMP\[4K\] {2}==> FAIL \(size mismatch\) \| 3 npt_unmap 0x0 \| 4 io_split 0x0/);
    expect(text).toMatch(/>\s+2 {2}share gpa=0x103000 pages=1 during=\[after 2: dma dev=0 buf=0 len=4096 write=true\]/);
  });

  it("prints the verdict the case gives when the file's expect says otherwise", async () => {
    const violating = readRepro(corpusFile('double-validate.json'));
    const policies = await resolveReproPolicies(violating);
    const oracles = await resolveOracles();
    const saysClean = explainRepro({ ...violating, expect: { verdict: 'clean' } }, policies, oracles);
    expect(saysClean).toContain('verdict: conversion-order (security) at step 0');
    expect(saysClean).toContain('the file expects: clean; this case is not');
    const clean = readRepro(corpusFile('clean-kvm-4k-linux.json'));
    const saysViolation = explainRepro({ ...clean, expect: { verdict: 'violation', oracle: 'io-s2-rmp-size', step: 1 } }, await resolveReproPolicies(clean), oracles);
    expect(saysViolation).toContain('verdict: clean (no oracle fired)');
    expect(saysViolation).toContain('the file expects: io-s2-rmp-size at step 1; this case does not give it');
  });

  it('an IO S2 leaf over an unassigned RMP entry reads as such in the arrow, with its reason', async () => {
    // vfio-static in the hugetlb world: the static map points at the VMM's RAM block, which the
    // RMP never assigns to the guest (README, "Discard worlds").
    const { defaultConfig } = await import('../../src/ops/config.ts');
    const repro = { title: '', config: defaultConfig({ hostPolicy: 'vfio-static', guestMemory: '64M', discard: 'none' }), seed: 'u', ops: [{ op: 'tdi_accept' as const, dev: 0 }] };
    const text = explainRepro(repro, await resolveReproPolicies(repro), await resolveOracles());
    expect(text).toMatch(/verdict: io-s2-rmp-size .*\n.*RMP\[unassigned\].*FAIL \(not assigned\)/);
    expect(text).toMatch(/\n {2}S2\[[^\]]+\] -- \[2M\] --> RMP\[-\] {2}==> FAIL \(not assigned\)/);
  });

  it('a fault on page after page is one line with the range and the count, not one line a page', async () => {
    const { defaultConfig } = await import('../../src/ops/config.ts');
    const exampleHost = (await import('../../examples/example-host-policy.ts')).default;
    const repro = { title: '', config: defaultConfig({ hostPolicy: 'kvm-iommu-4k' }), seed: 'faults', ops: [{ op: 'alloc_coherent' as const, dev: 0, bytes: 2898371 }, { op: 'tdi_accept' as const, dev: 0 }] };
    const text = explainRepro(repro, { ...(await resolveReproPolicies(repro)), host: exampleHost }, await resolveOracles());
    expect(text).toContain('failing step 1: tdi_accept dev=0');
    // 196 #NPFs of a range faulted in page by page when the TDI is accepted.
    expect(text).toMatch(/==> FAULT \(not present\) {3}\[npf at 0x600000 \.\. 0x6c3000, 196 pages, to the host\]/);
    expect(text.split('\n').filter((line) => line.includes('FAULT')).length).toBeLessThan(5);
  });

  it('a violation the booted world already has is "present at boot", not blamed on the first op', async () => {
    // vfio-static: the swiotlb pool, shared at boot, got new frames while the static map kept the
    // RAM block's (README, "Discard worlds"): the oracle reports it with step 0.
    const text = await explain('vfio-static-stale.json');
    expect(text).toContain('present at boot: the world this config and these policies boot already breaks it (reported with step 0, no op made it)');
    expect(text).not.toContain('failing step 0');
    expect(text).toContain('ops (none needed: the boot alone shows it):');
    // The NPT and the IO S2 disagree; no RMP was checked, so no arrow makes up an RMP check.
    expect(text).not.toContain('--> RMP[');
    // One an op makes is still blamed on it.
    const made = await explain('io-s2-rmp-size-tdi-accept.json');
    expect(made).not.toContain('present at boot');
    expect(made).toMatch(/failing step \d+: /);
  });
});
