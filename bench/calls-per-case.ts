// How many primitive calls a built-in case makes (issue 14, item 14): the basis of the default
// per-case call budget (run.ts DEFAULT_CALL_BUDGET). Runs N generated cases of every built-in host
// policy with each built-in guest policy, default generation (256 steps, swarm, interleavings), on
// a small and a 1 TiB guest, and prints the largest number of calls one case made (boot aside:
// boot has its own budget) and the largest one op made.
//
//   node bin/run-ts.js bench/calls-per-case.ts [cases per pairing, default 50: 3150 cases, about 25 CPU minutes]

import { globalCase } from '../src/engine/case-job.ts';
import { runCase } from '../src/engine/run.ts';
import { resolveOracles } from '../src/engine/select.ts';
import { DEFAULT_STEPS } from '../src/ops/generate.ts';
import { parseConfig } from '../src/ops/config.ts';
import { guestPolicies, hostPolicies } from '../src/policies/index.ts';

const perPairing = Number(process.argv[2] ?? 50);
const oracles = await resolveOracles({ files: [], only: [] });
const configs = { '64M': {}, '1T': { guestMemory: '1T', swiotlb: '1G' }, 'adversary 64M': { adversary: 'host' } };
let worst = { calls: 0, where: '' };
let worstOp = { calls: 0, where: '' };
let cases = 0;
for (const [label, extra] of Object.entries(configs)) {
  for (const [hostName, host] of Object.entries(hostPolicies)) {
    for (const [guestName, guest] of Object.entries(guestPolicies)) {
      const config = parseConfig({ arch: 'snp', hostPolicy: hostName, guestPolicy: guestName, ...extra });
      for (let k = 0; k < perPairing; k++) {
        const testCase = globalCase({ config, seed: 'calls', generate: { steps: DEFAULT_STEPS, swarm: true } }, k);
        let calls = 0;
        runCase(testCase, { host, guest }, {
          oracles,
          allViolations: true,
          onStep: (step) => {
            calls += step.calls.length;
            if (step.calls.length > worstOp.calls) worstOp = { calls: step.calls.length, where: `${label} ${hostName}+${guestName} case ${k} op ${step.index} (${step.op.op})` };
          },
        });
        cases++;
        if (calls > worst.calls) worst = { calls, where: `${label} ${hostName}+${guestName} case ${k} (${testCase.ops.length} ops)` };
      }
    }
  }
}
console.log(`${cases} cases: most calls in one case ${worst.calls} (${worst.where}); most in one op ${worstOp.calls} (${worstOp.where})`);
