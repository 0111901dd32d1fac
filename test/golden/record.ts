// Golden findings (issue 15, "keep behaviour"): a fixed set of campaign-style runs over every
// built-in pairing, two discard worlds and every planted bug, recorded before the range-level core
// replaced the per-frame one. For each run: the verdict of every generated case (the first
// violation's signature() and step, or clean) and, for the first case of each bucket, what the
// minimizer shrinks it to. test/golden.test.ts checks the committed findings.json against a fresh
// recording; `npm run golden` rewrites it (only where a finding was wrong: say which and why in the
// commit).

import { shrinkToRepro } from '../../src/engine/case-job.ts';
import { type Policies, runCase, signature } from '../../src/engine/run.ts';
import { resolveOracles, resolvePolicies } from '../../src/engine/select.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import { DEFAULT_STEPS, type GenerateOptions, caseSeed, generateCase } from '../../src/ops/generate.ts';
import type { Config, Op } from '../../src/ops/types.ts';
import { guestPolicies, hostPolicies } from '../../src/policies/index.ts';
import { plantedBugs, plantedConfig, plantedPolicies } from '../../bench/planted/index.ts';

/** Cases per run and the minimizer's budget: small enough for the test suite on 2 cores. */
export const GOLDEN_CASES = 24;
export const GOLDEN_SHRINK = 120;

export interface GoldenShrunk {
  case: number;
  signature: string;
  step: number;
  ops: Op[];
}

export interface GoldenRun {
  /** Per case: "clean" or "<signature>@<step>". */
  verdicts: string[];
  shrunk: GoldenShrunk[];
}

export interface GoldenRunSpec {
  label: string;
  config: Config;
  policies: () => Promise<Policies>;
  /** Case i's seed and generation options (default: campaign-style cases at the default --steps). */
  seed?: (i: number) => string;
  generate?: GenerateOptions;
  cases?: number;
}

/** Every run the golden file holds, in a fixed order. */
export function goldenRuns(): GoldenRunSpec[] {
  const runs: GoldenRunSpec[] = [];
  for (const host of Object.keys(hostPolicies)) {
    for (const guest of Object.keys(guestPolicies)) {
      runs.push({ label: `${host} + ${guest}`, config: defaultConfig({ hostPolicy: host, guestPolicy: guest }), policies: () => resolvePolicies(host, guest) });
    }
  }
  for (const discard of ['none', 'in-place'] as const) {
    for (const host of ['vfio-static', 'kvm-iommu-4k', 'quiesce-dma']) {
      const config = defaultConfig({ hostPolicy: host, guestPolicy: 'linux', discard });
      runs.push({ label: `${host} + linux, discard ${discard}`, config, policies: () => resolvePolicies(host, 'linux') });
    }
  }
  // Lost races are rare in campaign-style cases (about 1 in 500): this window of full-length cases
  // with many interleavings holds one (the window test/policies/clean-policies.test.ts uses).
  runs.push({
    label: 'race cut-on-convert + linux-2m-pool',
    config: defaultConfig({ hostPolicy: 'cut-on-convert', guestPolicy: 'linux-2m-pool' }),
    policies: () => resolvePolicies('cut-on-convert', 'linux-2m-pool'),
    seed: (i) => `race/${560 + i}`,
    generate: { steps: 64, fullLength: true, weights: { during: 50 } },
    cases: 40,
  });
  for (const bug of plantedBugs) {
    runs.push({ label: `planted ${bug.flag}`, config: plantedConfig(bug), policies: () => Promise.resolve(plantedPolicies(bug.flag)) });
  }
  return runs;
}

export async function recordRun(spec: GoldenRunSpec): Promise<GoldenRun> {
  const policies = await spec.policies();
  const oracles = await resolveOracles();
  const verdicts: string[] = [];
  const shrunk: GoldenShrunk[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < (spec.cases ?? GOLDEN_CASES); i++) {
    const seed = spec.seed?.(i) ?? caseSeed(`golden/${spec.label}`, i);
    const testCase = generateCase(spec.config, seed, spec.generate ?? { steps: DEFAULT_STEPS });
    const first = runCase(testCase, policies, { oracles }).violations[0];
    if (!first) {
      verdicts.push('clean');
      continue;
    }
    const key = signature(testCase, first);
    verdicts.push(`${key}@${first.step}`);
    if (seen.has(key)) continue;
    seen.add(key);
    const { repro, violation } = shrinkToRepro(testCase, first, { policies, oracles }, GOLDEN_SHRINK);
    shrunk.push({ case: i, signature: signature({ config: repro.config, seed: repro.seed, ops: repro.ops }, violation), step: violation.step, ops: repro.ops });
  }
  return { verdicts, shrunk };
}

export async function recordAll(): Promise<Record<string, GoldenRun>> {
  const out: Record<string, GoldenRun> = {};
  for (const spec of goldenRuns()) out[spec.label] = await recordRun(spec);
  return out;
}
