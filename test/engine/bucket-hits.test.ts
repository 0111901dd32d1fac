// A bucket's hits are the violations of its failing cases, as the summary's `hits` counts them
// (README: `perBucket` is signature -> hits; hits = oracle violations in the failing cases).
import { describe, expect, it } from 'vitest';
import type { Oracle } from '../../src/api.ts';
import { runCampaign } from '../../src/engine/campaign.ts';
import { resolveGuestPolicy, resolveHostPolicy } from '../../src/engine/select.ts';
import { defaultConfig } from '../../src/ops/config.ts';

describe('bucket hits', () => {
  it('count violations, not failing cases: two oracles firing at one step make two hits of one bucket', async () => {
    const config = defaultConfig({ hostPolicy: 'kvm-4k', guestMemory: '64M' });
    const always = (name: string): Oracle => ({ name, description: name, severity: 'correctness', check: () => [{ message: 'always' }] });
    const stats = await runCampaign({
      job: { config, seed: 'hits', generate: { steps: 4 }, oracleFiles: [], onlyOracles: [], minimizeBudget: 10, shard: { index: 0, count: 1 } },
      runs: 5,
      workers: 1,
      runner: { policies: { host: await resolveHostPolicy('kvm-4k'), guest: await resolveGuestPolicy('linux') }, oracles: [always('first'), always('second')] },
    });
    const buckets = [...stats.buckets.values()];
    expect(stats.findings).toBe(5);
    expect(stats.hits).toBe(10);
    expect(buckets).toHaveLength(1);
    expect(buckets[0]!.hits).toBe(stats.hits);
  });
});
