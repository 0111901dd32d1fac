// A change to the core that must not change behaviour (a range-level rewrite, issue 15): hash
// every step of generated cases over every built-in pairing, in this tree and in a checkout of
// the commit before, and compare. A step's hash covers its calls, faults, guest events, touched
// ranges and the counters after it; a case's adds its violations (every one, allViolations).
// Op counts and hashes are deterministic, so two trees agree to the byte or differ somewhere.
//
//   node --conditions=cocofuzz-source bin/run-ts.js bench/step-hash.ts [cases per pairing] [--lines]
//
// In a checkout of the older commit (`git worktree add /tmp/before HEAD~1`, node_modules linked),
// copy this file into its bench/ and run the same command; with `--lines`, diff the outputs to
// find the first case that differs. Cases alternate the adversary (every third), the in-place
// discard world (every fourth) and interleavings (every other case, `during` weight 20).

import { createHash } from 'node:crypto';
import { runCase } from '../src/engine/run.ts';
import { resolveOracles, resolvePolicies } from '../src/engine/select.ts';
import { defaultConfig } from '../src/ops/config.ts';
import { generateCase } from '../src/ops/generate.ts';
import { guestPolicies, hostPolicies } from '../src/policies/index.ts';

const perPairing = Number.parseInt(process.argv[2] ?? '12', 10);
const lines = process.argv.includes('--lines');
const oracles = await resolveOracles();
const total = createHash('sha256');
let cases = 0;
let violations = 0;
for (const host of Object.keys(hostPolicies)) {
  for (const guest of Object.keys(guestPolicies)) {
    const policies = await resolvePolicies(host, guest);
    for (let i = 0; i < perPairing; i++) {
      const config = defaultConfig({ hostPolicy: host, guestPolicy: guest, ...(i % 3 === 0 ? { adversary: 'host' } : {}), ...(i % 4 === 1 ? { discard: 'in-place' } : {}) });
      const testCase = generateCase(config, `step-hash/${host}/${guest}/${i}`, { steps: 100, ...(i % 2 === 1 ? { weights: { during: 20 } } : {}) });
      const steps = createHash('sha256');
      const result = runCase(testCase, policies, {
        oracles,
        allViolations: true,
        onStep: (step, view) => {
          steps.update(JSON.stringify({ calls: step.calls, faults: step.faults, events: step.guestEvents, frames: step.frameRanges, gfns: step.gfnRanges, counters: view.counters }));
        },
      });
      const line = JSON.stringify({ host, guest, i, verdict: result.verdict, stepsRun: result.stepsRun, steps: steps.digest('hex'), violations: result.violations.map((v) => [v.oracle, v.step, v.message]) });
      total.update(line);
      cases++;
      violations += result.violations.length;
      if (lines) console.log(line);
    }
  }
}
console.log(JSON.stringify({ cases, violations, hash: total.digest('hex') }));
