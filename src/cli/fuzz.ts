import { availableParallelism } from 'node:os';
import type { Argv, CommandModule } from 'yargs';
import { type Bucket, type CampaignStats, runCampaign } from '../engine/campaign.ts';
import type { CampaignJob } from '../engine/case-job.ts';
import { Guide } from '../engine/guided.ts';
import { formatMetrics } from '../engine/metrics.ts';
import { resolveOracles, resolvePolicies } from '../engine/select.ts';
import { formatMs, DEFAULT_CASE_TIMEOUT_MS } from '../engine/watchdog.ts';
import { parseConfig } from '../ops/config.ts';
import { FormatError } from '../ops/errors.ts';
import { DEFAULT_STEPS, WEIGHT_KEYS, type WeightKey } from '../ops/generate.ts';
import { OP_SPECS } from '../ops/schema.ts';
import type { Config, OpName } from '../ops/types.ts';
import { escapeTerminal } from '../report/escape.ts';
import { renderJunit } from '../report/junit.ts';
import { type CorpusFile, loadCorpusDir } from '../repro/corpus-dir.ts';
import { type Repro, encodeRepro, writeFileAtomic } from '../repro/format.ts';
import { EXIT_FOUND, EXIT_OK, EXIT_USAGE, UsageError } from './errors.ts';
import { duration, positiveInt, shard, type Shard } from './flags.ts';
import { readConfigFlag } from './inputs.ts';
import { checkOutputFile, prepareOutputDir } from './outputs.ts';

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
      describe: `maximum ops per case (default ${DEFAULT_STEPS}, at most ${MAX_STEPS}): most cases are short (mean about N/8), one in ten runs all N`,
      coerce: positiveInt('steps', MAX_STEPS, ' ops per case'),
    })
    .option('workers', {
      type: 'string',
      describe: `worker threads (default: cores, at most ${MAX_WORKERS} = ${WORKERS_PER_CORE} per core)`,
      coerce: positiveInt('workers', MAX_WORKERS, ` (${WORKERS_PER_CORE} per core on this machine)`),
    })
    .option('case-timeout', {
      type: 'string',
      describe: `wall-clock budget of one case when plugins run on workers (default ${formatMs(DEFAULT_CASE_TIMEOUT_MS)}); a case past it is a policy-error`,
      coerce: duration('case-timeout'),
    })
    .option('shard', { type: 'string', describe: 'i/n: this machine takes every n-th case seed', coerce: shard('shard') })
    .option('out', { type: 'string', describe: 'directory for findings, one repro file per bucket' })
    .option('corpus', { type: 'string', describe: 'persistent corpus: replayed first, grows with cases that reach new coverage (created if missing)' })
    .option('coverage', {
      type: 'boolean',
      describe: 'coverage-guided: keep cases that reach new abstract situations and mutate them (default: on with --corpus, else off; --no-coverage: every case fresh)',
    })
    .option('json', { type: 'boolean', default: false, describe: 'JSON lines on stdout' })
    .option('junit', { type: 'string', describe: 'write a JUnit XML report, one test case per finding bucket' })
    .option('swarm', { type: 'boolean', default: true, describe: 'swarm testing: each case enables a random subset of op kinds (--no-swarm: all)' })
    .option('weights', { type: 'string', describe: 'pin op kinds and weights, e.g. "dma=30,share=10,host_split=0"; during=N: percent of ops with interleaved DMAs/touches (during=0: none)' })
    .option('minimize-budget', { type: 'string', describe: 'maximum re-runs when shrinking a finding (default 2000)', coerce: positiveInt('minimize-budget') });
}

/**
 * Limits where a larger value is meaningless rather than expensive: 10,000 ops per case is far
 * past where shrinking and explaining stay useful (the default is 64), and more workers than a
 * small multiple of the cores only adds memory (each loads the model and the plugins).
 */
export const MAX_STEPS = 10_000;
export const WORKERS_PER_CORE = 4;
export const MAX_WORKERS = WORKERS_PER_CORE * availableParallelism();

function parseWeights(text: string | undefined, config: Config): Partial<Record<WeightKey, number>> | undefined {
  if (text === undefined) return undefined;
  const weights: Partial<Record<WeightKey, number>> = {};
  for (const part of text.split(',')) {
    const [name, value] = part.split('=');
    if (!name || !(WEIGHT_KEYS as readonly string[]).includes(name)) throw new UsageError(`--weights: unknown op "${name ?? ''}" (op kinds and "during")`);
    const weight = Number(value);
    if (value === undefined || !Number.isFinite(weight) || weight < 0) throw new UsageError(`--weights: "${part}" needs a weight >= 0, like ${name}=10`);
    weights[name as WeightKey] = weight;
  }
  // The generator falls back to DMA-only cases when no kind is left: say so instead.
  const possible = (Object.keys(OP_SPECS) as OpName[]).filter((name) => OP_SPECS[name].actor !== 'adversary' || config.adversary === 'host');
  if (possible.every((name) => weights[name] === 0)) throw new UsageError(`--weights: "${text}" gives every op weight 0, nothing could be generated`);
  return weights;
}

function formatElapsed(ms: number): string {
  const s = Math.floor(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

function statusLine(stats: CampaignStats, guide: Guide | undefined): string {
  const elapsed = Date.now() - stats.startedAt;
  const rate = elapsed > 0 ? Math.round((stats.ops * 1000) / elapsed) : 0;
  const coverage = guide ? ` | coverage ${guide.coverage} | corpus ${guide.size}` : '';
  return `cases ${stats.cases} | ${rate} ops/s | buckets ${stats.buckets.size} (${stats.findings} hits)${coverage} | ${formatElapsed(elapsed)}`;
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
  caseTimeout?: number;
  swarm: boolean;
  coverage?: boolean;
  corpus?: string;
  weights?: string;
  minimizeBudget?: number;
}

/** A repro that could not be saved (or was not asked to be), on stdout so that it is not lost. */
function unsaved(writeError: string | undefined, repro: Repro): string {
  const why = writeError ? `could not save the repro (${escapeTerminal(writeError)}); here it is:` : 'repro:';
  return `  ${why}\n${encodeRepro(repro)}`;
}

async function fuzz(args: FuzzArgs): Promise<number> {
  const raw = { arch: 'snp', ...readConfigFlag(args.config) } as Record<string, unknown>;
  if (args.hostPolicy !== undefined) raw.hostPolicy = args.hostPolicy;
  if (args.guestPolicy !== undefined) raw.guestPolicy = args.guestPolicy;
  let config: Config;
  try {
    config = parseConfig(raw);
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
    const flag = error.field === 'config.hostPolicy' && args.hostPolicy !== undefined ? '--host-policy' : error.field === 'config.guestPolicy' && args.guestPolicy !== undefined ? '--guest-policy' : '--config';
    throw new UsageError(`${flag}: ${error.message}`);
  }
  // Where results go is checked before any work: a campaign must not run for an hour and then
  // fail to write them.
  if (args.out !== undefined) prepareOutputDir('--out', args.out);
  if (args.junit !== undefined) checkOutputFile('--junit', args.junit);
  // Off unless asked for or a corpus is kept: measured on the planted bugs, guidance does not yet
  // find them sooner than plain swarm generation (bench/README.md), and the signal costs ops/s.
  args.coverage ??= args.corpus !== undefined;
  if (args.corpus !== undefined && !args.coverage) throw new UsageError('--corpus needs coverage (drop --no-coverage): the corpus keeps the cases that reach new coverage');
  if (args.corpus !== undefined) prepareOutputDir('--corpus', args.corpus);
  let replay: CorpusFile[] = [];
  try {
    if (args.corpus !== undefined) replay = loadCorpusDir(args.corpus, config);
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
    throw new UsageError(`--corpus: ${error.message}`);
  }
  const seed = args.seed ?? Date.now().toString(36);
  const job: CampaignJob = {
    config,
    seed,
    generate: { steps: args.steps ?? DEFAULT_STEPS, swarm: args.swarm, ...(args.weights !== undefined ? { weights: parseWeights(args.weights, config) } : {}) },
    oracleFiles: args.oracle ?? [],
    onlyOracles: args.onlyOracle ?? [],
    minimizeBudget: args.minimizeBudget ?? 2000,
    shard: args.shard ?? { index: 0, count: 1 },
    ...(args.coverage ? { coverage: true } : {}),
  };
  const guide = args.coverage ? new Guide(job, args.corpus) : undefined;
  // Load every plugin here first: a bad one is a one-line usage error before any work starts.
  await resolvePolicies(config.hostPolicy, config.guestPolicy, {
    host: args.hostPolicy !== undefined ? '--host-policy' : '--config: config.hostPolicy',
    guest: args.guestPolicy !== undefined ? '--guest-policy' : '--config: config.guestPolicy',
  });
  await resolveOracles({ files: job.oracleFiles, only: job.onlyOracles });

  const tty = process.stderr.isTTY === true && !args.json;
  const say = (line: string): void => {
    process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
  };
  if (!args.json) {
    process.stderr.write(`cocofuzz: ${escapeTerminal(`seed ${seed}, host ${config.hostPolicy}, guest ${config.guestPolicy}`)}, ${args.workers ?? availableParallelism()} worker(s)\n`);
  }
  // SIGINT and SIGTERM (a CI job's timeout, a scheduler) both finish the cases in flight, write
  // what was found and exit with the verdict; a second signal quits at once.
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(signal === 'SIGTERM' ? 143 : 130);
    stopping = true;
    process.stderr.write(`\ncocofuzz: ${signal === 'SIGTERM' ? 'terminated' : 'interrupted'}, finishing the cases in flight (${signal === 'SIGTERM' ? 'SIGTERM' : 'Ctrl-C'} again to quit now)\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let lastStatus = 0;
  const stats = await runCampaign({
    job,
    ...(args.runs !== undefined ? { runs: args.runs } : args.time === undefined ? { runs: 1000 } : {}),
    ...(args.time !== undefined ? { timeMs: args.time } : {}),
    workers: args.workers ?? availableParallelism(),
    ...(args.out ? { out: args.out } : {}),
    ...(args.caseTimeout !== undefined ? { caseTimeoutMs: args.caseTimeout } : {}),
    shouldStop: () => stopping,
    ...(guide ? { guide } : {}),
    ...(replay.length > 0 ? { replay } : {}),
    onOracleError: (error) => {
      const saved = error.file && !error.writeError ? `, repro saved to ${error.file}` : '';
      process.stderr.write(
        `${tty ? '\r\x1b[K' : ''}cocofuzz: oracle error: ${escapeTerminal(`${error.oracle} threw at step ${error.step} of case ${error.case}: ${error.message}`)}${escapeTerminal(saved)} (reported once per oracle)\n`,
      );
      if (error.writeError || (!args.out && !args.json)) process.stdout.write(unsaved(error.writeError, error.repro));
    },
    onBucket: (bucket: Bucket) => {
      if (args.json) {
        process.stdout.write(
          `${JSON.stringify({
            type: 'finding',
            oracle: bucket.oracle,
            signature: bucket.signature,
            case: bucket.firstCase,
            ...(bucket.replayOf !== undefined ? { corpusFile: bucket.replayOf } : {}),
            seed: bucket.repro.seed,
            step: bucket.violation.step,
            message: bucket.violation.message,
            ops: bucket.repro.ops.length,
            shrunkFrom: bucket.shrunkFrom,
            ...(bucket.violation.details?.nondeterministic !== undefined ? { nondeterministic: true } : {}),
            ...(bucket.file && !bucket.writeError ? { file: bucket.file } : {}),
            ...(bucket.writeError ? { writeError: bucket.writeError, repro: JSON.parse(encodeRepro(bucket.repro)) as unknown } : {}),
          })}\n`,
        );
      } else {
        if (tty) process.stderr.write('\r\x1b[K');
        const saved = bucket.file && !bucket.writeError ? `, saved to ${bucket.file}` : '';
        const origin = bucket.replayOf !== undefined ? `corpus file ${bucket.replayOf}` : `case ${bucket.firstCase} (${bucket.repro.seed})`;
        const nondeterministic = bucket.violation.details?.nondeterministic !== undefined ? ' [not deterministic]' : '';
        process.stdout.write(
          `${escapeTerminal(`finding: ${bucket.oracle} at step ${bucket.violation.step}${nondeterministic}: ${bucket.violation.message}`)}\n  ${escapeTerminal(`${origin}, shrunk ${bucket.shrunkFrom} -> ${bucket.repro.ops.length} ops${saved}`)}\n`,
        );
        if (bucket.writeError) process.stdout.write(unsaved(bucket.writeError, bucket.repro));
      }
    },
    onCase: (_outcome, current) => {
      if (args.json) return;
      const now = Date.now();
      if (now - lastStatus >= (tty ? 250 : 10_000)) {
        lastStatus = now;
        say(statusLine(current, guide));
      }
    },
  });
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  const buckets = [...stats.buckets.values()];
  if (args.junit) {
    try {
      writeFileAtomic(args.junit, renderJunit(buckets, { cases: stats.cases, seed, hostPolicy: config.hostPolicy, guestPolicy: config.guestPolicy }));
    } catch (error) {
      // The findings are printed above; a report that cannot be written must not turn exit 1 into 3.
      process.stderr.write(`cocofuzz: --junit: cannot write "${escapeTerminal(args.junit)}": ${escapeTerminal((error as Error).message)}\n`);
    }
  }
  if (args.json) {
    const hits = Object.fromEntries(buckets.map((b) => [b.signature, b.hits]));
    process.stdout.write(
      `${JSON.stringify({ type: 'summary', seed, cases: stats.cases, ops: stats.ops, buckets: buckets.length, findings: stats.findings, hits, oracleErrors: stats.oracleErrors.length, metrics: stats.metrics.mean(), ...(guide ? { coverage: guide.coverage, corpus: guide.size, replayed: stats.replayed } : {}) })}\n`,
    );
  } else {
    if (tty) process.stderr.write('\r\x1b[K');
    process.stderr.write(`${statusLine(stats, guide)}\nefficiency (mean per case): ${formatMetrics(stats.metrics.mean())}\n`);
    if (buckets.length > 0 && !args.out) process.stderr.write('cocofuzz: pass --out DIR to save a repro file per finding\n');
  }
  for (const problem of guide?.writeErrors ?? []) process.stderr.write(`cocofuzz: --corpus: could not save ${escapeTerminal(problem)}\n`);
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
