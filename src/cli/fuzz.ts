import { availableParallelism } from 'node:os';
import { writeFileSync } from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { type Bucket, type CampaignStats, runCampaign } from '../engine/campaign.ts';
import type { CampaignJob } from '../engine/case-job.ts';
import { formatMetrics } from '../engine/metrics.ts';
import { resolveOracles, resolvePolicies } from '../engine/select.ts';
import { parseConfig } from '../ops/config.ts';
import { DEFAULT_STEPS } from '../ops/generate.ts';
import { OP_SPECS } from '../ops/schema.ts';
import type { OpName } from '../ops/types.ts';
import { renderJunit } from '../report/junit.ts';
import { EXIT_FOUND, EXIT_OK, EXIT_USAGE, UsageError } from './errors.ts';
import { duration, positiveInt, shard, type Shard } from './flags.ts';
import { readConfigFlag } from './inputs.ts';

export function fuzzOptions(yargs: Argv) {
  return yargs
    .option('runs', { type: 'string', describe: 'stop after N cases (default 1000 unless --time)', coerce: positiveInt('runs') })
    .option('time', { type: 'string', describe: 'stop after a duration: 30s, 10m, 2h', coerce: duration('time') })
    .option('seed', { type: 'string', describe: 'campaign seed (string or number); default: time-based, printed' })
    .option('arch', { type: 'string', choices: ['snp'], default: 'snp', describe: 'architecture model' })
    .option('host-policy', { type: 'string', describe: 'built-in host policy name or a .ts/.js file (default kvm-iommu-4k)' })
    .option('guest-policy', { type: 'string', describe: 'built-in guest policy name or a .ts/.js file (default linux)' })
    .option('config', { type: 'string', describe: 'case config as a JSON file or inline JSON (repro "config" fields)' })
    .option('oracle', { type: 'string', array: true, describe: 'add a user oracle from a .ts/.js file (repeatable)' })
    .option('only-oracle', { type: 'string', array: true, describe: 'check only these oracles (repeatable)' })
    .option('steps', {
      type: 'string',
      describe: `maximum ops per case (default ${DEFAULT_STEPS}): most cases are short (mean about N/8), one in ten runs all N`,
      coerce: positiveInt('steps'),
    })
    .option('workers', { type: 'string', describe: 'worker threads (default: cores)', coerce: positiveInt('workers') })
    .option('shard', { type: 'string', describe: 'i/n: this machine takes every n-th case seed', coerce: shard('shard') })
    .option('out', { type: 'string', describe: 'directory for findings, one repro file per bucket' })
    .option('json', { type: 'boolean', default: false, describe: 'JSON lines on stdout' })
    .option('junit', { type: 'string', describe: 'write a JUnit XML report, one test case per finding bucket' })
    .option('swarm', { type: 'boolean', default: true, describe: 'swarm testing: each case enables a random subset of op kinds (--no-swarm: all)' })
    .option('weights', { type: 'string', describe: 'pin op kinds and weights, e.g. "dma=30,share=10,host_split=0"' })
    .option('minimize-budget', { type: 'string', describe: 'maximum re-runs when shrinking a finding (default 2000)', coerce: positiveInt('minimize-budget') });
}

function parseWeights(text: string | undefined): Partial<Record<OpName, number>> | undefined {
  if (!text) return undefined;
  const weights: Partial<Record<OpName, number>> = {};
  for (const part of text.split(',')) {
    const [name, value] = part.split('=');
    if (!name || !Object.hasOwn(OP_SPECS, name)) throw new UsageError(`--weights: unknown op "${name ?? ''}"`);
    const weight = Number(value);
    if (value === undefined || !Number.isFinite(weight) || weight < 0) throw new UsageError(`--weights: "${part}" needs a weight >= 0, like ${name}=10`);
    weights[name as OpName] = weight;
  }
  return weights;
}

function formatElapsed(ms: number): string {
  const s = Math.floor(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

function statusLine(stats: CampaignStats): string {
  const elapsed = Date.now() - stats.startedAt;
  const rate = elapsed > 0 ? Math.round((stats.ops * 1000) / elapsed) : 0;
  return `cases ${stats.cases} | ${rate} ops/s | buckets ${stats.buckets.size} (${stats.findings} hits) | ${formatElapsed(elapsed)}`;
}

interface FuzzArgs {
  runs?: number;
  time?: number;
  seed?: string;
  hostPolicy?: string;
  guestPolicy?: string;
  config?: string;
  oracle?: string[];
  onlyOracle?: string[];
  steps?: number;
  workers?: number;
  shard?: Shard;
  out?: string;
  json: boolean;
  junit?: string;
  swarm: boolean;
  weights?: string;
  minimizeBudget?: number;
}

async function fuzz(args: FuzzArgs): Promise<number> {
  const raw = { ...readConfigFlag(args.config), arch: 'snp' } as Record<string, unknown>;
  if (args.hostPolicy) raw.hostPolicy = args.hostPolicy;
  if (args.guestPolicy) raw.guestPolicy = args.guestPolicy;
  const config = parseConfig(raw);
  const seed = args.seed ?? Date.now().toString(36);
  const job: CampaignJob = {
    config,
    seed,
    generate: { steps: args.steps ?? DEFAULT_STEPS, swarm: args.swarm, ...(args.weights ? { weights: parseWeights(args.weights) } : {}) },
    oracleFiles: args.oracle ?? [],
    onlyOracles: args.onlyOracle ?? [],
    minimizeBudget: args.minimizeBudget ?? 2000,
    shard: args.shard ?? { index: 0, count: 1 },
  };
  // Load every plugin here first: a bad one is a one-line usage error before any work starts.
  await resolvePolicies(config.hostPolicy, config.guestPolicy);
  await resolveOracles({ files: job.oracleFiles, only: job.onlyOracles });

  const tty = process.stderr.isTTY === true && !args.json;
  const say = (line: string): void => {
    process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
  };
  if (!args.json) {
    process.stderr.write(`cocofuzz: seed ${seed}, host ${config.hostPolicy}, guest ${config.guestPolicy}, ${args.workers ?? availableParallelism()} worker(s)\n`);
  }
  let stopping = false;
  const onSigint = (): void => {
    if (stopping) process.exit(130);
    stopping = true;
    process.stderr.write('\ncocofuzz: interrupted, finishing the cases in flight (Ctrl-C again to quit now)\n');
  };
  process.on('SIGINT', onSigint);
  let lastStatus = 0;
  const stats = await runCampaign({
    job,
    ...(args.runs !== undefined ? { runs: args.runs } : args.time === undefined ? { runs: 1000 } : {}),
    ...(args.time !== undefined ? { timeMs: args.time } : {}),
    workers: args.workers ?? availableParallelism(),
    ...(args.out ? { out: args.out } : {}),
    shouldStop: () => stopping,
    onBucket: (bucket: Bucket) => {
      if (args.json) {
        process.stdout.write(
          `${JSON.stringify({
            type: 'finding',
            oracle: bucket.oracle,
            signature: bucket.signature,
            case: bucket.firstCase,
            seed: bucket.repro.seed,
            step: bucket.violation.step,
            message: bucket.violation.message,
            ops: bucket.repro.ops.length,
            shrunkFrom: bucket.shrunkFrom,
            ...(bucket.file ? { file: bucket.file } : {}),
          })}\n`,
        );
      } else {
        if (tty) process.stderr.write('\r\x1b[K');
        process.stdout.write(
          `finding: ${bucket.oracle} at step ${bucket.violation.step}: ${bucket.violation.message}\n  case ${bucket.firstCase} (${bucket.repro.seed}), shrunk ${bucket.shrunkFrom} -> ${bucket.repro.ops.length} ops${bucket.file ? `, saved to ${bucket.file}` : ''}\n`,
        );
      }
    },
    onCase: (_outcome, current) => {
      if (args.json) return;
      const now = Date.now();
      if (now - lastStatus >= (tty ? 250 : 10_000)) {
        lastStatus = now;
        say(statusLine(current));
      }
    },
  });
  process.off('SIGINT', onSigint);
  const buckets = [...stats.buckets.values()];
  if (args.junit) {
    writeFileSync(args.junit, renderJunit(buckets, { cases: stats.cases, seed, hostPolicy: config.hostPolicy, guestPolicy: config.guestPolicy }));
  }
  for (const error of stats.oracleErrors) {
    process.stderr.write(`${tty ? '\r\x1b[K' : ''}cocofuzz: oracle error: ${error.oracle} threw at step ${error.step}: ${error.message}\n`);
  }
  if (args.json) {
    const hits = Object.fromEntries(buckets.map((b) => [b.signature, b.hits]));
    process.stdout.write(
      `${JSON.stringify({ type: 'summary', seed, cases: stats.cases, ops: stats.ops, buckets: buckets.length, findings: stats.findings, hits, oracleErrors: stats.oracleErrors.length, metrics: stats.metrics.mean() })}\n`,
    );
  } else {
    if (tty) process.stderr.write('\r\x1b[K');
    process.stderr.write(`${statusLine(stats)}\nefficiency (mean per case): ${formatMetrics(stats.metrics.mean())}\n`);
    if (buckets.length > 0 && !args.out) process.stderr.write('cocofuzz: pass --out DIR to save a repro file per finding\n');
  }
  if (buckets.length > 0) return EXIT_FOUND;
  return stats.oracleErrors.length > 0 ? EXIT_USAGE : EXIT_OK;
}

export const fuzzCommand: CommandModule<object, FuzzArgs> = {
  command: 'fuzz',
  describe: 'generate and run cases until --runs or --time; shrink and save what fails',
  builder: fuzzOptions,
  handler: async (args) => {
    process.exitCode = await fuzz(args);
  },
};
