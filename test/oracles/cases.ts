// Helpers for the oracle tests: run hand-written or generated cases through the real world with
// named (or fixture) policies and a chosen set of oracles.

import type { Oracle } from '../../src/api.ts';
import { runCase, type RunResult } from '../../src/engine/run.ts';
import { GMEM_BASE } from '../../src/host/backing.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import type { Case, Op } from '../../src/ops/types.ts';
import { guestPolicies, hostPolicies } from '../../src/policies/index.ts';
import type { GuestPolicy, HostPolicy } from '../../src/policies/types.ts';
import { builtinOracles } from '../../oracles/index.ts';

/** The guest_memfd frame of a GPA (src/host/backing.ts): where adversary ops aim. */
export const gmem = (gpa: number): number => GMEM_BASE + gpa;

export function oracleNamed(name: string): Oracle {
  const oracle = builtinOracles.find((o) => o.name === name);
  if (oracle === undefined) throw new Error(`no built-in oracle ${name}`);
  return oracle;
}

export interface CaseSpec {
  host: string | HostPolicy;
  guest: string | GuestPolicy;
  ops: Op[];
  adversary?: boolean;
  config?: Record<string, unknown>;
}

function hostOf(host: string | HostPolicy): HostPolicy {
  if (typeof host !== 'string') return host;
  const policy = hostPolicies[host];
  if (policy === undefined) throw new Error(`no host policy ${host}`);
  return policy;
}

function guestOf(guest: string | GuestPolicy): GuestPolicy {
  if (typeof guest !== 'string') return guest;
  const policy = guestPolicies[guest];
  if (policy === undefined) throw new Error(`no guest policy ${guest}`);
  return policy;
}

export function caseOf(spec: CaseSpec): Case {
  const host = hostOf(spec.host);
  const guest = guestOf(spec.guest);
  const config = defaultConfig({ hostPolicy: host.name, guestPolicy: guest.name, ...(spec.adversary ? { adversary: 'host' } : {}), ...spec.config });
  return { config, seed: 'oracle-test', ops: spec.ops };
}

export function runSpec(spec: CaseSpec, oracles: readonly Oracle[], options: { fullCheck?: boolean; allViolations?: boolean } = {}): RunResult {
  return runCase(caseOf(spec), { host: hostOf(spec.host), guest: guestOf(spec.guest) }, { oracles, ...options });
}

/** The verdict in the terms the property test compares: verdict, first step, and the oracles that fired there. */
export function verdictOf(result: RunResult): string {
  if (result.verdict === 'clean') return 'clean';
  const step = result.violations[0]?.step ?? -2;
  const fired = [...new Set(result.violations.filter((v) => v.step === step).map((v) => v.oracle))].sort();
  return `violation at step ${step}: ${fired.join(', ')}`;
}

/** Each oracle's first violation step in a run with allViolations: what incremental and full checks must agree on. */
export function firstSteps(result: RunResult): Record<string, number> {
  const first: Record<string, number> = {};
  for (const violation of result.violations) {
    const step = violation.step < 0 ? Number.MAX_SAFE_INTEGER : violation.step;
    if (!(violation.oracle in first) || step < (first[violation.oracle] ?? Infinity)) first[violation.oracle] = step;
  }
  return first;
}

export { builtinOracles, hostOf, guestOf };
