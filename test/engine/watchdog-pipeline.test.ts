// A campaign keeps two cases in flight on each worker (campaign.ts PIPELINE): the second waits in
// the worker's message queue while the first runs. These tests hold the watchdog to what that
// needs: answers in order, and a case that waited behind one that hung answered `requeue` (it
// never ran) rather than charged with the hang. The
// campaign-level runs (every case recorded once, whichever worker died) are in
// test/cli-robustness.test.ts and test/cli-timeout.test.ts.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CampaignJob } from '../../src/engine/case-job.ts';
import { WatchedWorker, watchdogViolation } from '../../src/engine/watchdog.ts';
import { defaultConfig } from '../../src/ops/config.ts';

const dir = mkdtempSync(join(os.tmpdir(), 'cocofuzz-pipeline-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
// start() runs once as the VM starts, so every case under this policy hangs while its world boots.
const hangsAtStart = join(dir, 'hangs-at-start.mjs');
writeFileSync(hangsAtStart, "export default { name: 'hangs-at-start', description: 'loops when the VM starts', start() { for (;;) {} } };\n");

function job(hostPolicy: string): CampaignJob {
  return { config: defaultConfig({ hostPolicy }), seed: 'pipeline', generate: { steps: 8 }, oracleFiles: [], onlyOracles: [], minimizeBudget: 0, shard: { index: 0, count: 1 } };
}

describe('a worker with two cases in flight', () => {
  it('answers them in order, each with its own outcome', async () => {
    const worker = new WatchedWorker(job('quiesce-dma'));
    try {
      await worker.ready;
      const first = worker.run({ kind: 'case', index: 0 }, 60_000);
      const second = worker.run({ kind: 'case', index: 1 }, 60_000);
      expect(worker.inFlight).toBe(2);
      const answers = await Promise.all([first, second]);
      expect(answers.map((answer) => (answer.ok ? (answer.message.outcome as { index: number }).index : answer))).toEqual([0, 1]);
      expect(worker.inFlight).toBe(0);
      expect(worker.alive).toBe(true);
    } finally {
      worker.close();
    }
  }, 60_000);

  it('a case that waited behind one that hung never ran: it answers requeue, the hung one the timeout', async () => {
    const worker = new WatchedWorker(job(hangsAtStart));
    try {
      await worker.ready;
      const first = worker.run({ kind: 'case', index: 0 }, 500);
      const second = worker.run({ kind: 'case', index: 1 }, 500);
      expect(await first).toMatchObject({ ok: false, failure: { kind: 'timeout', op: -1, hook: 'host start' } });
      expect(await second).toEqual({ ok: false, requeue: true });
      expect(worker.alive).toBe(false);
      expect(worker.inFlight).toBe(0);
    } finally {
      worker.close();
    }
  }, 60_000);

  it('closing a worker that holds cases answers them requeue (none finished), and no timer fires later', async () => {
    const worker = new WatchedWorker(job(hangsAtStart));
    await worker.ready;
    const first = worker.run({ kind: 'case', index: 0 }, 200);
    const second = worker.run({ kind: 'case', index: 1 }, 200);
    worker.close();
    expect(await Promise.all([first, second])).toEqual([
      { ok: false, requeue: true },
      { ok: false, requeue: true },
    ]);
    expect(worker.inFlight).toBe(0);
  }, 60_000);
});

describe('a worker that runs out of memory', () => {
  // A 1 TiB guest with a 16G pool under kvm-4k keeps ~35 MB of heap after boot (and more while
  // booting); a 16 MB heap cannot hold it. No plugin is loaded, so the verdict must not blame one.
  it('says the config is too large, not that a plugin allocates without bound, when no plugin is loaded', async () => {
    const config = defaultConfig({ hostPolicy: 'kvm-4k', guestMemory: 2 ** 40, vtom: 2 ** 40, swiotlb: 16 * 2 ** 30 });
    const worker = new WatchedWorker({ ...job('kvm-4k'), config }, 16);
    try {
      await worker.ready;
      const result = await worker.run({ kind: 'case', index: 0 }, 10 * 60_000);
      if (result.ok || !('failure' in result)) throw new Error(`expected a failure, got ${JSON.stringify(result).slice(0, 200)}`);
      expect(result.failure.kind).toBe('memory');
      const builtIn = watchdogViolation(result.failure, false).message;
      expect(builtIn).toContain('while the world booted: the worker ran out of memory (heap limit 16 MB) (no plugin is loaded: the world of this config is too large');
      expect(builtIn).not.toContain('a plugin that');
      expect(watchdogViolation(result.failure, true).message).toContain('(a plugin that never returns, exits or allocates without bound)');
    } finally {
      worker.close();
    }
  });
});
