// Buckets per bug: run campaign-style cases (generateCase + runCase, default --steps) for every
// built-in failing pairing and every planted bug, and count the distinct signature() buckets of
// their first violations (and of what each first finding shrinks to). One bug should give one
// bucket; a pairing gives as many as it has distinct bugs.
//
//   node bin/run-ts.js bench/buckets.ts [--cases 300] [--shrink 300]

import { parseArgs } from 'node:util';
import type { Violation } from '../src/api.ts';
import { shrinkToRepro } from '../src/engine/case-job.ts';
import { type Policies, runCase, signature } from '../src/engine/run.ts';
import { resolveOracles, resolvePolicies } from '../src/engine/select.ts';
import { defaultConfig } from '../src/ops/config.ts';
import { DEFAULT_STEPS, caseSeed, generateCase } from '../src/ops/generate.ts';
import type { Case, Config } from '../src/ops/types.ts';
import { plantedBugs, plantedConfig, plantedPolicies } from './planted/index.ts';

const { values } = parseArgs({ options: { cases: { type: 'string', default: '300' }, shrink: { type: 'string', default: '300' } } });
const cases = Number.parseInt(values.cases ?? '300', 10);
const shrinkBudget = Number.parseInt(values.shrink ?? '300', 10);
const oracles = await resolveOracles();

function buckets(label: string, config: Config, policies: Policies): void {
  const counts = new Map<string, number>();
  let shrunk = 0;
  for (let i = 0; i < cases; i++) {
    const testCase: Case = generateCase(config, caseSeed(`buckets/${label}`, i), { steps: DEFAULT_STEPS });
    const first: Violation | undefined = runCase(testCase, policies, { oracles }).violations[0];
    if (!first) continue;
    const key = signature(testCase, first);
    const seen = counts.has(key);
    counts.set(key, (counts.get(key) ?? 0) + 1);
    // Shrink the first finding of each bucket, as a campaign does, and count where it lands.
    if (!seen && shrinkBudget > 0) {
      const { repro, violation } = shrinkToRepro(testCase, first, { policies, oracles }, shrinkBudget);
      const after = signature({ config: repro.config, seed: repro.seed, ops: repro.ops }, violation);
      if (after !== key) {
        counts.set(`${after} (shrunk from ${key})`, 0);
        shrunk++;
      }
    }
  }
  const failing = [...counts.values()].reduce((a, b) => a + b, 0);
  console.log(`${label}: ${failing}/${cases} cases fail, ${counts.size} bucket(s)${shrunk ? ` (${shrunk} moved by shrinking)` : ''}`);
  for (const [key, n] of [...counts].sort((a, b) => b[1] - a[1])) console.log(`    ${String(n).padStart(4)}  ${key}`);
}

const pairings: [string, string][] = [
  ['kvm-iommu-4k', 'linux'],
  ['kvm-iommu-4k', 'linux-2m-pool'],
  ['vfio-static', 'linux'],
  ['vfio-static', 'linux-2m-pool'],
  ['kvm-4k', 'double-validate'],
  ['cut-on-convert', 'double-validate'],
];
for (const [host, guest] of pairings) {
  buckets(`${host} + ${guest}`, defaultConfig({ hostPolicy: host, guestPolicy: guest }), await resolvePolicies(host, guest));
}
for (const bug of plantedBugs) buckets(`planted ${bug.flag}`, plantedConfig(bug), plantedPolicies(bug.flag));
