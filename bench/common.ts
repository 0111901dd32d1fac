// What the benchmarks share: the fixed workload, the machine description, small statistics
// helpers, and running a bench task in a child process (for peak memory, and to use both cores).

import { spawn } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Oracle } from '../src/api.ts';
import type { Policies } from '../src/engine/run.ts';
import { resolveOracles, resolvePolicies } from '../src/engine/select.ts';
import { DEFAULT_STEPS, type GenerateOptions, caseSeed, generateCase } from '../src/ops/generate.ts';
import { defaultConfig } from '../src/ops/config.ts';
import type { Case, Config } from '../src/ops/types.ts';

/**
 * The fixed workload: the default config with the 2M-friendly hitless policy pair, campaign-style
 * cases at the default --steps (most cases short, a tenth that long). cut-on-convert loses the race
 * of DOMAIN.md "Races and interleavings", so the pair that must stay clean is quiesce-dma. The
 * workload pins `during=0` (WORKLOAD_WEIGHTS) so that ops/s and planted-bug figures measure the
 * model without interleaving; bench/race.ts measures interleaving itself.
 */
export const WORKLOAD_POLICIES = { hostPolicy: 'quiesce-dma', guestPolicy: 'linux-2m-pool' } as const;
export const WORKLOAD_WEIGHTS = { during: 0 } as const;
export const WORKLOAD_STEPS = DEFAULT_STEPS;
export const WORKLOAD_SEED = 'bench-2026';

export function workloadConfig(overrides: Record<string, unknown> = {}): Config {
  return defaultConfig({ ...WORKLOAD_POLICIES, ...overrides });
}

export function workloadCases(config: Config, seed: string, from: number, count: number, options: Partial<GenerateOptions> = {}): Case[] {
  const cases: Case[] = [];
  for (let i = from; i < from + count; i++) cases.push(generateCase(config, caseSeed(seed, i), { steps: WORKLOAD_STEPS, swarm: true, weights: WORKLOAD_WEIGHTS, ...options }));
  return cases;
}

export interface Engine {
  policies: Policies;
  oracles: Oracle[];
}

/** The built-in policies of the workload and every built-in oracle. */
export async function workloadEngine(): Promise<Engine> {
  return { policies: await resolvePolicies(WORKLOAD_POLICIES.hostPolicy, WORKLOAD_POLICIES.guestPolicy), oracles: await resolveOracles() };
}

export interface MachineInfo {
  node: string;
  v8: string;
  cpu: string;
  cores: number;
  platform: string;
  memoryGiB: number;
  date: string;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    node: process.version,
    v8: process.versions.v8,
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    date: new Date().toISOString(),
  };
}

// ---- statistics ------------------------------------------------------------------------------

export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

export function mean(values: readonly number[]): number | undefined {
  return values.length === 0 ? undefined : values.reduce((sum, v) => sum + v, 0) / values.length;
}

/**
 * Median time to detection with misses censored at the budget: a miss counts as "later than the
 * budget", so the median is undefined (Infinity) once half the trials or more miss.
 */
export function censoredMedian(found: readonly (number | undefined)[]): number {
  const values = found.map((v) => v ?? Number.POSITIVE_INFINITY).sort((a, b) => a - b);
  if (values.length === 0) return Number.POSITIVE_INFINITY;
  const mid = Math.floor(values.length / 2);
  return values.length % 2 === 1 ? (values[mid] ?? Infinity) : ((values[mid - 1] ?? Infinity) + (values[mid] ?? Infinity)) / 2;
}

/** Restricted mean time to detection (area under the survival curve up to the budget): misses count as the budget. */
export function restrictedMean(found: readonly (number | undefined)[], budget: number): number {
  if (found.length === 0) return budget;
  return found.reduce((sum: number, v) => sum + Math.min(v ?? budget, budget), 0) / found.length;
}

/**
 * The one-sided lower confidence bound (level 1 - alpha) on the mean of a Poisson count of which
 * `observed` were seen: the mu with P(X >= observed | mu) = alpha. With detections as the count
 * and ops run as the exposure it bounds the detection hazard from below.
 */
export function poissonLowerBound(observed: number, alpha = 0.05): number {
  if (observed <= 0) return 0;
  const tail = (mu: number): number => {
    // P(X >= observed) = 1 - sum_{k < observed} e^-mu mu^k / k!
    let term = Math.exp(-mu);
    let sum = term;
    for (let k = 1; k < observed; k++) {
      term *= mu / k;
      sum += term;
    }
    return 1 - sum;
  };
  let lo = 0;
  let hi = observed + 10 * Math.sqrt(observed) + 10;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (tail(mid) < alpha) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** A stable 32-bit seed from a label (FNV-1a), for fc.check. */
export function seed32(label: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) {
    hash ^= label.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash | 0;
}

export const round = (value: number, digits = 0): number => {
  if (!Number.isFinite(value)) return value;
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
};

/** Let timers and output through between measurements. */
export const breathe = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// ---- child processes -------------------------------------------------------------------------

const RUN_TS = fileURLToPath(new URL('../bin/run-ts.js', import.meta.url));
const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url));

export interface ChildResult<T> {
  result: T;
  /** Peak resident set size of the child, in bytes (process.resourceUsage().maxRSS). */
  maxRss: number;
  wallMs: number;
}

/**
 * Run one task of bench/child.ts in a fresh Node process with --expose-gc; the child answers with
 * one JSON line on stdout. Used for the scale benchmark (each size gets a clean heap and its own
 * maxRSS) and to spread the planted-bug trials over the cores.
 */
export function runChild<T>(task: unknown): Promise<ChildResult<T>> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    // The condition as in `npm run bench`: the oracles' `cocofuzz/api` from src/, not a dist/ that
    // may be stale or missing.
    const child = spawn(process.execPath, [...(process.env.BENCH_CHILD_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CHILD_PROF}`] : []), '--expose-gc', '--conditions=cocofuzz-source', RUN_TS, CHILD], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => (out += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0) {
        reject(new Error(`bench child exited with ${code}: ${line.slice(0, 500)}`));
        return;
      }
      try {
        const parsed = JSON.parse(line) as { result: T; maxRss: number };
        resolve({ result: parsed.result, maxRss: parsed.maxRss, wallMs: performance.now() - started });
      } catch (error) {
        reject(new Error(`bench child answered something that is not JSON: ${line.slice(0, 200)} (${String(error)})`));
      }
    });
    child.stdin.end(JSON.stringify(task));
  });
}
