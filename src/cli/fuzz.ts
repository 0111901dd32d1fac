import { availableParallelism } from 'node:os';
import type { Argv, CommandModule } from 'yargs';
import { type Bucket, type CampaignStats, runCampaign } from '../engine/campaign.ts';
import { type CampaignJob, globalCase } from '../engine/case-job.ts';
import { formatMetrics } from '../engine/metrics.ts';
import { runCase, signature } from '../engine/run.ts';
import { resolveOracles, resolvePolicies } from '../engine/select.ts';
import { formatOp } from '../ops/codec.ts';
import { parseConfig } from '../ops/config.ts';
import { OP_SPECS } from '../ops/schema.ts';
import type { OpName } from '../ops/types.ts';
import { writeFileAtomic } from '../repro/format.ts';
import { CampaignLog, type LogLine, encodeLogLine, logLine } from '../report/jsonl.ts';
import { renderJunit } from '../report/junit.ts';
import { renderSarif } from '../report/sarif.ts';
import { writeHtmlReport } from './report.ts';
import { EXIT_FOUND, EXIT_OK, EXIT_USAGE, UsageError } from './errors.ts';
import { duration, nonNegativeInt, positiveInt, shard, type Shard } from './flags.ts';
import { readConfigFlag } from './inputs.ts';
import { packageVersion } from './version.ts';

/** Findings go here unless --out says otherwise (libFuzzer writes crash-<hash> to the cwd). */
export const DEFAULT_OUT = 'cocofuzz-out';

export function fuzzOptions(yargs: Argv) {
  return yargs
    .option('runs', { type: 'number', describe: 'stop after N cases (default 1000 unless --time)', coerce: positiveInt('runs') })
    .option('time', { type: 'string', describe: 'stop after a duration: 30s, 10m, 2h, 1h30m', coerce: duration('time') })
    .option('seed', { type: 'string', describe: 'campaign seed (string or number); default: time-based, printed' })
    .option('arch', { type: 'string', choices: ['snp'], default: 'snp', describe: 'architecture model' })
    .option('host-policy', { type: 'string', describe: 'built-in host policy name or a .ts/.js file (default kvm-iommu-4k)' })
    .option('guest-policy', { type: 'string', describe: 'built-in guest policy name or a .ts/.js file (default linux)' })
    .option('config', { type: 'string', describe: 'case config as a JSON file or inline JSON (repro "config" fields, README "Config")' })
    .option('oracle', { type: 'string', array: true, describe: 'add a user oracle from a .ts/.js file (repeatable)' })
    .option('only-oracle', { type: 'string', array: true, describe: 'check only these oracles (repeatable)' })
    .option('steps', { type: 'number', describe: 'maximum ops per case (default 64)', coerce: positiveInt('steps') })
    .option('workers', { type: 'number', describe: 'worker threads (default: cores)', coerce: positiveInt('workers') })
    .option('shard', { type: 'string', describe: 'i/n: this machine takes every n-th case seed', coerce: shard('shard') })
    .option('out', { type: 'string', describe: `directory for findings (one repro file per bucket) and campaign.jsonl (default ./${DEFAULT_OUT}, made at the first finding)` })
    .option('max-findings', { type: 'number', describe: 'stop once N buckets are found (same result for any --workers)', coerce: positiveInt('max-findings') })
    .option('case', { type: 'number', describe: 'run only global case K of --seed (seed S/K) and print it with its verdict', coerce: nonNegativeInt('case') })
    .option('json', { type: 'boolean', default: false, describe: 'JSON lines on stdout (README "JSON lines")' })
    .option('junit', { type: 'string', describe: 'write a JUnit XML report, one test case per finding bucket' })
    .option('sarif', { type: 'string', describe: 'write a SARIF 2.1.0 log for code scanning, one result per bucket' })
    .option('html', { type: 'string', describe: 'write a self-contained HTML report: plots, each bucket explained, 2M region maps' })
    .option('swarm', { type: 'boolean', default: true, describe: 'swarm testing: each case enables a random subset of op kinds (--no-swarm: all)' })
    .option('weights', { type: 'string', describe: 'pin op kinds and weights, e.g. "dma=30,share=10,host_split=0" (kinds: cocofuzz ops)' })
    .option('minimize-budget', { type: 'number', describe: 'maximum re-runs when shrinking a finding (default 2000)', coerce: positiveInt('minimize-budget') })
    .example('$0 fuzz --time 30s', 'fuzz the default pairing (kvm-iommu-4k + linux) for 30 seconds')
    .example('$0 fuzz --host-policy ./my-host.ts --guest-policy linux-2m-pool --runs 500 --seed ci', 'a user policy, reproducible by seed')
    .example('$0 fuzz --time 1h30m --shard 2/8 --max-findings 1 --junit j.xml --sarif s.sarif --html r.html', 'one nightly shard: stop at the first bucket, CI reports')
    .example('$0 fuzz --seed night --case 17', 'case 17 of campaign "night" alone (seed night/17)');
}

function parseWeights(text: string | undefined): Partial<Record<OpName, number>> | undefined {
  if (!text) return undefined;
  const weights: Partial<Record<OpName, number>> = {};
  for (const part of text.split(',')) {
    const [name, value] = part.split('=');
    if (!name || !Object.hasOwn(OP_SPECS, name)) throw new UsageError(`--weights: unknown op "${name ?? ''}" (see cocofuzz ops)`);
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
  return `cases ${stats.cases} | ${rate} ops/s | coverage ${stats.coverage.size} | buckets ${stats.buckets.size} (${stats.findings} failing cases) | ${formatElapsed(elapsed)}`;
}

/** The last line of every campaign: what a CI log reader looks for. */
export function verdictLine(stats: Pick<CampaignStats, 'findings' | 'hits' | 'cases' | 'buckets'>, code: number): string {
  const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
  return `cocofuzz: ${plural(stats.findings, 'finding')} (${plural(stats.hits, 'hit')}) in ${plural(stats.buckets.size, 'bucket')}, ${plural(stats.cases, 'case')}, exit ${code}`;
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
  maxFindings?: number;
  case?: number;
  json: boolean;
  junit?: string;
  sarif?: string;
  html?: string;
  swarm: boolean;
  weights?: string;
  minimizeBudget?: number;
}

function findingLine(bucket: Bucket): LogLine {
  return logLine('finding', {
    oracle: bucket.oracle,
    severity: bucket.violation.severity,
    signature: bucket.signature,
    case: bucket.firstCase,
    seed: bucket.repro.seed,
    step: bucket.violation.step,
    message: bucket.violation.message,
    ops: bucket.repro.ops.length,
    shrunkFrom: bucket.shrunkFrom,
    ...(bucket.file ? { file: bucket.file, kept: bucket.kept === true } : {}),
  });
}

/** `--case K`: regenerate global case K of the campaign and run it alone. */
async function runOneCase(job: CampaignJob, k: number, json: boolean): Promise<number> {
  const runner = { policies: await resolvePolicies(job.config.hostPolicy, job.config.guestPolicy), oracles: await resolveOracles({ files: job.oracleFiles, only: job.onlyOracles }) };
  const testCase = globalCase(job, k);
  const result = runCase(testCase, runner.policies, { oracles: runner.oracles });
  const first = result.violations[0];
  const code = first ? EXIT_FOUND : EXIT_OK;
  if (json) {
    process.stdout.write(
      encodeLogLine(
        logLine('case', {
          case: k,
          seed: testCase.seed,
          ops: testCase.ops.map((op) => formatOp(op)),
          verdict: first ? { oracle: first.oracle, step: first.step, message: first.message, signature: signature(testCase, first) } : 'clean',
        }),
      ),
    );
  } else {
    process.stdout.write(`case ${k} (seed ${testCase.seed}), ${testCase.ops.length} ops:\n`);
    testCase.ops.forEach((op, i) => process.stdout.write(`${first?.step === i ? '>' : ' '} ${String(i).padStart(3)}  ${formatOp(op)}\n`));
    process.stdout.write(first ? `verdict: ${first.oracle} at step ${first.step}: ${first.message}\n` : `verdict: clean (${result.stepsRun} ops run)\n`);
  }
  for (const error of result.oracleErrors) process.stderr.write(`cocofuzz: oracle error: ${error.oracle} threw at step ${error.step}: ${error.message}\n`);
  return code;
}

async function fuzz(args: FuzzArgs): Promise<number> {
  const raw = { ...readConfigFlag(args.config), arch: 'snp' } as Record<string, unknown>;
  if (args.hostPolicy) raw.hostPolicy = args.hostPolicy;
  if (args.guestPolicy) raw.guestPolicy = args.guestPolicy;
  const config = parseConfig(raw);
  if (args.case !== undefined && args.seed === undefined) throw new UsageError('--case: needs the --seed of the campaign the case comes from');
  const seed = args.seed ?? Date.now().toString(36);
  const job: CampaignJob = {
    config,
    seed,
    generate: { steps: args.steps ?? 64, swarm: args.swarm, ...(args.weights ? { weights: parseWeights(args.weights) } : {}) },
    oracleFiles: args.oracle ?? [],
    onlyOracles: args.onlyOracle ?? [],
    minimizeBudget: args.minimizeBudget ?? 2000,
    shard: args.shard ?? { index: 0, count: 1 },
  };
  // Load every plugin here first: a bad one is a one-line usage error before any work starts.
  await resolvePolicies(config.hostPolicy, config.guestPolicy);
  const oracles = await resolveOracles({ files: job.oracleFiles, only: job.onlyOracles });
  if (args.case !== undefined) return runOneCase(job, args.case, args.json);

  const out = args.out ?? DEFAULT_OUT;
  const log = new CampaignLog(out);
  const emit = (line: LogLine): void => {
    log.write(line);
    if (args.json) process.stdout.write(encodeLogLine(line));
  };
  const workers = args.workers ?? availableParallelism();
  const tty = process.stderr.isTTY === true && !args.json;
  const say = (line: string): void => {
    process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
  };
  emit(
    logLine('start', {
      version: packageVersion(),
      seed,
      hostPolicy: config.hostPolicy,
      guestPolicy: config.guestPolicy,
      workers,
      shard: `${job.shard.index}/${job.shard.count}`,
      ...(args.runs !== undefined ? { runs: args.runs } : {}),
      ...(args.time !== undefined ? { timeMs: args.time } : {}),
      ...(args.maxFindings !== undefined ? { maxFindings: args.maxFindings } : {}),
      steps: job.generate.steps,
      swarm: args.swarm,
      oracles: oracles.map((o) => o.name),
      startedAt: new Date().toISOString(),
    }),
  );
  if (!args.json) process.stderr.write(`cocofuzz: seed ${seed}, host ${config.hostPolicy}, guest ${config.guestPolicy}, ${workers} worker(s)\n`);
  let stopping = false;
  const onSigint = (): void => {
    if (stopping) process.exit(130);
    stopping = true;
    process.stderr.write('\ncocofuzz: interrupted, finishing the cases in flight (Ctrl-C again to quit now)\n');
  };
  process.on('SIGINT', onSigint);
  let lastStatus = Date.now();
  let lastProgress = Date.now();
  const progress = (current: CampaignStats): LogLine =>
    logLine('progress', {
      cases: current.cases,
      ops: current.ops,
      coverage: current.coverage.size,
      buckets: current.buckets.size,
      findings: current.findings,
      elapsedMs: Date.now() - current.startedAt,
    });
  const stats = await runCampaign({
    job,
    ...(args.runs !== undefined ? { runs: args.runs } : args.time === undefined ? { runs: 1000 } : {}),
    ...(args.time !== undefined ? { timeMs: args.time } : {}),
    ...(args.maxFindings !== undefined ? { maxFindings: args.maxFindings } : {}),
    workers,
    out,
    shouldStop: () => stopping,
    onBucket: (bucket: Bucket) => {
      emit(findingLine(bucket));
      if (!args.json) {
        if (tty) process.stderr.write('\r\x1b[K');
        process.stdout.write(
          `finding: ${bucket.oracle} at step ${bucket.violation.step}: ${bucket.violation.message}\n  case ${bucket.firstCase} (${bucket.repro.seed}), shrunk ${bucket.shrunkFrom} -> ${bucket.repro.ops.length} ops, ${bucket.kept ? 'already in' : 'saved to'} ${bucket.file ?? out}\n`,
        );
      }
    },
    onCase: (_outcome, current) => {
      const now = Date.now();
      // The log gets a progress line every 10 s (the report's plots); the terminal more often.
      if (now - lastProgress >= 10_000) {
        lastProgress = now;
        emit(progress(current));
      }
      if (args.json) return;
      if (now - lastStatus >= (tty ? 250 : 10_000)) {
        lastStatus = now;
        say(statusLine(current));
      }
    },
  });
  process.off('SIGINT', onSigint);
  const buckets = [...stats.buckets.values()];
  const elapsedMs = Date.now() - stats.startedAt;
  for (const error of stats.oracleErrors) {
    emit(logLine('oracle-error', { oracle: error.oracle, step: error.step, message: error.message }));
    process.stderr.write(`${tty ? '\r\x1b[K' : ''}cocofuzz: oracle error: ${error.oracle} threw at step ${error.step}: ${error.message}\n`);
  }
  const code = buckets.length > 0 ? EXIT_FOUND : stats.oracleErrors.length > 0 ? EXIT_USAGE : EXIT_OK;
  emit(
    logLine('summary', {
      seed,
      cases: stats.cases,
      ops: stats.ops,
      buckets: buckets.length,
      findings: stats.findings,
      hits: stats.hits,
      coverage: stats.coverage.size,
      perBucket: Object.fromEntries(buckets.map((b) => [b.signature, b.hits])),
      oracleErrors: stats.oracleErrors.length,
      elapsedMs,
      stoppedBy: stopping ? 'interrupt' : args.maxFindings !== undefined && buckets.length >= args.maxFindings ? 'max-findings' : args.runs !== undefined || args.time === undefined ? 'runs' : 'time',
      metrics: stats.metrics.mean(),
      timeline: stats.timeline,
      exit: code,
    }),
  );
  log.finish(args.out !== undefined);
  const summary = { cases: stats.cases, seed, hostPolicy: config.hostPolicy, guestPolicy: config.guestPolicy, startedAt: stats.startedAt, elapsedMs };
  if (args.junit) writeFileAtomic(args.junit, renderJunit(buckets, summary));
  if (args.sarif) writeFileAtomic(args.sarif, renderSarif(buckets, oracles, { ...summary, version: packageVersion(), baseDir: process.cwd() }));
  if (args.html) await writeHtmlReport(args.html, { log: log.entries(), buckets, oracleFiles: job.oracleFiles, title: `cocofuzz: ${config.hostPolicy} + ${config.guestPolicy}, seed ${seed}` });
  if (!args.json) {
    if (tty) process.stderr.write('\r\x1b[K');
    process.stderr.write(`${statusLine(stats)}\nefficiency (mean per case): ${formatMetrics(stats.metrics.mean())}\n`);
    process.stdout.write(`${verdictLine(stats, code)}\n`);
  }
  return code;
}

export const fuzzCommand: CommandModule<object, FuzzArgs> = {
  command: 'fuzz',
  describe: 'generate and run cases until --runs or --time; shrink and save what fails',
  builder: fuzzOptions,
  handler: async (args) => {
    process.exitCode = await fuzz(args);
  },
};
