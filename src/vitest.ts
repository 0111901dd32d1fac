// Fuzzing inside a test: `await fuzzProperty({ hostPolicy: myPolicy, runs: 200 })` runs a bounded
// campaign in the test's own process and throws with the shrunk, explained repro when anything
// fires — the failure message is what `cocofuzz explain` would print.

import type { Oracle } from './api.ts';
import { type Bucket, runCampaign } from './engine/campaign.ts';
import type { CampaignJob } from './engine/case-job.ts';
import { explainRepro } from './engine/explain.ts';
import { resolveGuestPolicy, resolveHostPolicy, resolveOracles } from './engine/select.ts';
import { parseConfig } from './ops/config.ts';
import { DEFAULT_STEPS, type WeightKey } from './ops/generate.ts';
import type { GuestPolicy, HostPolicy } from './policies/types.ts';
import { encodeRepro } from './repro/format.ts';

export interface FuzzPropertyOptions {
  /** A built-in policy name, a file, or a policy object (default: the config's). */
  hostPolicy?: string | HostPolicy;
  guestPolicy?: string | GuestPolicy;
  /** Repro "config" fields (guestMemory, devices, ...). */
  config?: Record<string, unknown>;
  /** Extra oracles (objects), added to the built-ins. */
  oracles?: readonly Oracle[];
  /** Restrict to these oracle names. */
  onlyOracles?: readonly string[];
  runs?: number;
  /** Maximum ops per case (default DEFAULT_STEPS, 256). */
  steps?: number;
  seed?: string;
  swarm?: boolean;
  weights?: Partial<Record<WeightKey, number>>;
  /** Directory to write the repro file of a finding into. */
  out?: string;
}

export class FuzzPropertyError extends Error {
  override name = 'FuzzPropertyError';
  constructor(
    message: string,
    readonly bucket: Bucket,
  ) {
    super(message);
  }
}

export async function fuzzProperty(options: FuzzPropertyOptions = {}): Promise<{ cases: number; ops: number }> {
  const hostName = typeof options.hostPolicy === 'object' ? options.hostPolicy.name : options.hostPolicy;
  const guestName = typeof options.guestPolicy === 'object' ? options.guestPolicy.name : options.guestPolicy;
  const config = parseConfig({ arch: 'snp', ...options.config, ...(hostName ? { hostPolicy: hostName } : {}), ...(guestName ? { guestPolicy: guestName } : {}) });
  // Policy objects are used as they are; names and files resolve like the CLI's.
  const policies = {
    host: typeof options.hostPolicy === 'object' ? options.hostPolicy : await resolveHostPolicy(config.hostPolicy),
    guest: typeof options.guestPolicy === 'object' ? options.guestPolicy : await resolveGuestPolicy(config.guestPolicy),
  };
  const builtins = await resolveOracles(options.onlyOracles ? { only: options.onlyOracles.filter((n) => !options.oracles?.some((o) => o.name === n)) } : {});
  const oracles = [...builtins, ...(options.oracles ?? [])];
  const job: CampaignJob = {
    config,
    seed: options.seed ?? 'vitest',
    generate: { steps: options.steps ?? DEFAULT_STEPS, ...(options.swarm === undefined ? {} : { swarm: options.swarm }), ...(options.weights ? { weights: options.weights } : {}) },
    oracleFiles: [],
    onlyOracles: [],
    minimizeBudget: 2000,
    shard: { index: 0, count: 1 },
  };
  let found: Bucket | undefined;
  const stats = await runCampaign({
    job,
    runs: options.runs ?? 100,
    workers: 1,
    runner: { policies, oracles },
    ...(options.out ? { out: options.out } : {}),
    shouldStop: () => found !== undefined,
    onBucket: (bucket) => {
      found ??= bucket;
    },
  });
  if (found) {
    const text = explainRepro(found.repro, policies, oracles);
    throw new FuzzPropertyError(`cocofuzz found ${found.oracle} (case ${found.firstCase}, seed ${found.repro.seed}):\n\n${text}\nrepro file:\n${encodeRepro(found.repro)}`, found);
  }
  return { cases: stats.cases, ops: stats.ops };
}
