// Start-up as users pay it (issue 15's last done-when): the installed CLI and its worker threads run
// the compiled JavaScript in dist/bundle/ (bin/cocofuzz.js, watchdog.ts's worker.js), so these figures
// are taken from dist/, rebuilt first when it was built from other sources than the checkout's.
// - CLI start: `node bin/cocofuzz.js oracles`, spawned several times, wall clock to exit (median),
//   and the child's own CPU time (bench/cpu-on-exit.js), which a busy machine disturbs far less.
// - Worker start: a campaign worker thread (WatchedWorker, compiled) from construction to ready:
//   its module graph loaded and its runner prepared (median of several, one after another).

import { spawn, spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { distIsCurrent } from '../scripts/source-digest.js';
import type { CampaignJob } from '../src/engine/case-job.ts';
import { PROGRESS, WORKER_HEAP_MB, withoutSourceCondition } from '../src/engine/watchdog.ts';
import { median, round, WORKLOAD_SEED, WORKLOAD_STEPS, workloadConfig } from './common.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WORKER_URL = new URL('../dist/bundle/worker.js', import.meta.url);

/**
 * dist/ as `npm run build` makes it from the current sources: rebuilt (and said so) when missing or
 * built from other sources (scripts/source-digest.js), so the start-up figures never measure stale
 * JavaScript.
 */
export function ensureDist(): 'fresh' | 'rebuilt' {
  if (distIsCurrent()) return 'fresh';
  const r = spawnSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm run build failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`);
  return 'rebuilt';
}

/** The campaign job of the bench workload (worker scaling and worker start-up). */
export function workloadJob(): CampaignJob {
  return {
    config: workloadConfig(),
    seed: `${WORKLOAD_SEED}/campaign`,
    generate: { steps: WORKLOAD_STEPS, swarm: true, weights: { during: 0 } },
    oracleFiles: [],
    onlyOracles: [],
    minimizeBudget: 200,
    shard: { index: 0, count: 1 },
  };
}

export interface StartupResult {
  dist: 'fresh' | 'rebuilt';
  /** Wall clock spawn to exit; cpu: the process's own CPU time (less disturbed by neighbours). */
  cli: { command: string; medianMs: number; samplesMs: number[]; medianCpuMs: number };
  worker: { medianMs: number; samplesMs: number[] };
}

const CPU_ON_EXIT = new URL('./cpu-on-exit.js', import.meta.url).href;

/** Wall clock from spawn to exit, and the child's own CPU time (cpu-on-exit.js), in ms. */
function spawnMs(args: string[]): Promise<{ wall: number; cpu: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, ['--import', CPU_ON_EXIT, ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
    let err = '';
    let cpu = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => (err += chunk));
    const fd3 = child.stdio[3] as NodeJS.ReadableStream;
    fd3.setEncoding('utf8');
    fd3.on('data', (chunk: string) => (cpu += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const wall = performance.now() - started;
      if (code !== 0) return reject(new Error(`${args.join(' ')} exited with ${code}: ${err.trim()}`));
      const used = JSON.parse(cpu || '{"user":0,"system":0}') as { user: number; system: number };
      resolve({ wall, cpu: (used.user + used.system) / 1000 });
    });
  });
}

export async function benchStartup(options: { spawns: number; workers: number }): Promise<StartupResult> {
  const dist = ensureDist();
  const cli = join(ROOT, 'bin/cocofuzz.js');
  await spawnMs([cli, 'oracles']); // warm the file cache, not counted
  const cliMs: number[] = [];
  const cliCpuMs: number[] = [];
  for (let i = 0; i < options.spawns; i++) {
    const { wall, cpu } = await spawnMs([cli, 'oracles']);
    cliMs.push(round(wall, 1));
    cliCpuMs.push(round(cpu, 1));
  }

  // The worker as WatchedWorker starts it (src/engine/watchdog.ts), from dist/bundle/: the bundle
  // exports no watchdog, so its options are spelled here.
  const job = workloadJob();
  const workerMs: number[] = [];
  for (let i = 0; i <= options.workers; i++) {
    const started = performance.now();
    const worker = new Worker(WORKER_URL, {
      workerData: { job, progress: new SharedArrayBuffer(4 * Object.keys(PROGRESS).length) },
      execArgv: withoutSourceCondition(process.execArgv),
      resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
      stdout: false,
      stderr: false,
    });
    await new Promise<void>((resolve, reject) => {
      worker.once('message', (message: { ready?: boolean }) => (message.ready === true ? resolve() : reject(new Error('the worker did not start'))));
      worker.once('error', reject);
    });
    const ms = performance.now() - started;
    worker.postMessage(null);
    await worker.terminate();
    if (i > 0) workerMs.push(round(ms, 1)); // the first one warms the file cache
  }
  return {
    dist,
    cli: { command: 'cocofuzz oracles', medianMs: round(median(cliMs) ?? 0, 1), samplesMs: cliMs, medianCpuMs: round(median(cliCpuMs) ?? 0, 1) },
    worker: { medianMs: round(median(workerMs) ?? 0, 1), samplesMs: workerMs },
  };
}
