import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { type Bucket, type CampaignStats, campaignCoverage, runCampaign } from '../engine/campaign.ts';
import { type CampaignJob, globalCase, jobCallBudget } from '../engine/case-job.ts';
import { formatMetrics } from '../engine/metrics.ts';
import { runCase, signature } from '../engine/run.ts';
import { resolveOracles, resolvePolicies } from '../engine/select.ts';
import { DEFAULT_CASE_TIMEOUT_MS, formatMs } from '../engine/watchdog.ts';
import { DEFAULT_CALL_BUDGET, MAX_CALL_BUDGET, STEP_CALLS_PER_PAGE } from '../engine/call-budget.ts';
import { formatOp } from '../ops/codec.ts';
import { parseConfig } from '../ops/config.ts';
import { FormatError } from '../ops/errors.ts';
import { DEFAULT_STEPS, MAX_STEPS, WEIGHT_KEYS, type WeightKey } from '../ops/generate.ts';
import { OP_SPECS } from '../ops/schema.ts';
import type { Config, OpName } from '../ops/types.ts';
import { escapeTerminal } from '../report/escape.ts';
import { CAMPAIGN_LOG, CampaignLog, type LogLine, encodeLogLine, logLine } from '../report/jsonl.ts';
import { renderJunit } from '../report/junit.ts';
import { oracleErrorText } from '../report/origin.ts';
import { type CorpusFile, loadCorpusDir } from '../repro/corpus-dir.ts';
import { Guide } from '../engine/guided.ts';
import { renderSarif } from '../report/sarif.ts';
import { type Repro, encodeRepro, writeFileAtomic } from '../repro/format.ts';
import { writeHtmlReport } from './report.ts';
import { UsageError, exitNow, verdictCode } from './errors.ts';
import { duration, nonNegativeInt, positiveInt, shard, type Shard } from './flags.ts';
import { readConfigFlag } from './inputs.ts';
import { checkOutputFile, checkOutputDir, prepareOutputDir, replayFlags } from './outputs.ts';
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
    .option('oracle', { type: 'string', array: true, nargs: 1, describe: 'add a user oracle from a .ts/.js file (repeatable)' })
    .option('only-oracle', { type: 'string', array: true, nargs: 1, describe: 'check only these oracles (repeatable)' })
    .option('steps', {
      type: 'number',
      describe: `maximum ops per case (default ${DEFAULT_STEPS}, at most ${MAX_STEPS}): most cases are short (mean about N/8), one in ten runs all N`,
      coerce: positiveInt('steps', MAX_STEPS, ' ops per case'),
    })
    .option('workers', {
      type: 'number',
      describe: `worker threads (default: cores, at most ${MAX_WORKERS} = ${WORKERS_PER_CORE} per core)`,
      coerce: positiveInt('workers', MAX_WORKERS, ` (${WORKERS_PER_CORE} per core on this machine)`),
    })
    .option('case-timeout', {
      type: 'string',
      describe: `wall-clock budget of one case when plugins run on workers (default ${formatMs(DEFAULT_CASE_TIMEOUT_MS)}); a case past it is a policy-error`,
      coerce: duration('case-timeout'),
    })
    .option('shard', { type: 'string', describe: 'i/n: this machine takes every n-th case seed', coerce: shard('shard') })
    .option('out', { type: 'string', describe: `directory for findings (one repro file per bucket) and campaign.jsonl (default ./${DEFAULT_OUT}, made at the first finding)` })
    .option('max-findings', { type: 'number', describe: 'stop once N buckets are found (same result for any --workers)', coerce: positiveInt('max-findings') })
    .option('case', { type: 'number', describe: 'run only global case K of --seed (seed S/K) and print it with its verdict', coerce: nonNegativeInt('case') })
    .option('corpus', { type: 'string', describe: 'persistent corpus: replayed first, grows with cases that reach new coverage (created if missing)' })
    .option('coverage', {
      type: 'boolean',
      describe: 'coverage-guided: keep cases that reach new abstract situations and mutate them (default: on with --corpus, else off; --no-coverage: every case fresh)',
    })
    .option('json', { type: 'boolean', default: false, describe: 'JSON lines on stdout (README "JSON lines")' })
    .option('junit', { type: 'string', describe: 'write a JUnit XML report, one test case per finding bucket' })
    .option('sarif', { type: 'string', describe: 'write a SARIF 2.1.0 log for code scanning, one result per bucket' })
    .option('html', { type: 'string', describe: 'write a self-contained HTML report: plots, each bucket explained, 2M region maps' })
    .option('swarm', { type: 'boolean', default: true, describe: 'swarm testing: each case enables a random subset of op kinds (--no-swarm: all)' })
    .option('weights', {
      type: 'string',
      describe: 'pin op kinds and weights, e.g. "dma=30,share=10,host_split=0" (kinds: cocofuzz ops); during=N: percent of ops with interleaved DMAs/touches (during=0: none)',
    })
    .option('minimize-budget', { type: 'number', describe: 'maximum re-runs when shrinking a finding (default 2000)', coerce: positiveInt('minimize-budget') })
    .option('call-budget', {
      type: 'number',
      describe: `most primitive calls one case may make (default ${DEFAULT_CALL_BUDGET} plus ${STEP_CALLS_PER_PAGE} per 4K page of the swiotlb pool, at most ${MAX_CALL_BUDGET}); a case past it is a deterministic policy-error naming the op and hook`,
      coerce: positiveInt('call-budget', MAX_CALL_BUDGET, ' primitive calls per case'),
    })
    .example('$0 fuzz --time 30s', 'fuzz the default pairing (kvm-iommu-4k + linux) for 30 seconds')
    .example('$0 fuzz --host-policy ./my-host.ts --guest-policy linux-2m-pool --runs 500 --seed ci', 'a user policy, reproducible by seed')
    .example('$0 fuzz --time 1h30m --shard 2/8 --max-findings 1 --junit j.xml --sarif s.sarif --html r.html', 'one nightly shard: stop at the first bucket, CI reports')
    .example('$0 fuzz --seed night --case 17', 'case 17 of campaign "night" alone (seed night/17)')
    .example('$0 fuzz --host-policy quiesce-dma --weights during=40 --runs 500', 'more DMAs and touches racing the host\'s steps');
}

/**
 * A limit where a larger value is meaningless rather than expensive: more workers than a small
 * multiple of the cores only adds memory (each loads the model and the plugins).
 */
export const WORKERS_PER_CORE = 4;
export const MAX_WORKERS = WORKERS_PER_CORE * availableParallelism();

function parseWeights(text: string | undefined, config: Config): Partial<Record<WeightKey, number>> | undefined {
  if (text === undefined) return undefined;
  const weights: Partial<Record<WeightKey, number>> = {};
  for (const part of text.split(',')) {
    const at = part.indexOf('=');
    const name = at < 0 ? part : part.slice(0, at);
    const value = at < 0 ? undefined : part.slice(at + 1);
    if (!name || !(WEIGHT_KEYS as readonly string[]).includes(name)) throw new UsageError(`--weights: unknown op "${name}" (op kinds, see cocofuzz ops, and "during")`);
    // Number('') is 0: an empty value (a CI line's unset $PCT) would silently switch the kind off.
    const weight = value === undefined || value.trim() === '' ? Number.NaN : Number(value);
    if (!Number.isFinite(weight) || weight < 0) throw new UsageError(`--weights: "${part}" needs a weight >= 0, like ${name}=10`);
    if (name in weights) throw new UsageError(`--weights: ${name} is given twice in "${text}"`);
    // `during` is a percentage of ops, not a weight among the others.
    if (name === 'during' && weight > 100) throw new UsageError(`--weights: during=${value} is a percentage of ops, from 0 to 100`);
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

/** The status line: cases, speed, coverage (campaignCoverage()), the corpus, buckets and time. */
function statusLine(stats: CampaignStats, guide: Guide | undefined): string {
  const elapsed = Date.now() - stats.startedAt;
  const rate = elapsed > 0 ? Math.round((stats.ops * 1000) / elapsed) : 0;
  const corpus = guide ? ` | corpus ${guide.size}${stats.replayed > 0 ? ` (${stats.replayed} replayed)` : ''}` : '';
  return `cases ${stats.cases} | ${rate} ops/s | coverage ${campaignCoverage(stats, guide)}${corpus} | buckets ${stats.buckets.size} (${stats.findings} failing cases) | ${formatElapsed(elapsed)}`;
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
  caseTimeout?: number;
  sarif?: string;
  html?: string;
  swarm: boolean;
  coverage?: boolean;
  corpus?: string;
  weights?: string;
  minimizeBudget?: number;
  callBudget?: number;
}

/** A repro that could not be saved (or was not asked to be), on stdout so that it is not lost. */
function unsaved(writeError: string | undefined, repro: Repro): string {
  const why = writeError ? `could not save the repro (${escapeTerminal(writeError)}); here it is:` : 'repro:';
  return `  ${why}\n${encodeRepro(repro)}`;
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
    ...(bucket.replayOf !== undefined ? { corpusFile: bucket.replayOf } : {}),
    ...(bucket.violation.details?.nondeterministic !== undefined ? { nondeterministic: true } : {}),
    ...(bucket.file && !bucket.writeError ? { file: bucket.file, kept: bucket.kept === true } : {}),
    ...(bucket.writeError ? { writeError: bucket.writeError, repro: JSON.parse(encodeRepro(bucket.repro)) as unknown } : {}),
  });
}

/** `--case K`: regenerate global case K of the campaign and run it alone. */
async function runOneCase(job: CampaignJob, k: number, json: boolean): Promise<number> {
  const runner = { policies: await resolvePolicies(job.config.hostPolicy, job.config.guestPolicy), oracles: await resolveOracles({ files: job.oracleFiles, only: job.onlyOracles }) };
  const testCase = globalCase(job, k);
  const result = runCase(testCase, runner.policies, { oracles: runner.oracles, callBudget: jobCallBudget(job, testCase.config) });
  const first = result.violations[0];
  const code = verdictCode(first !== undefined, result.oracleErrors.length);
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
    process.stdout.write(`${escapeTerminal(`case ${k} (seed ${testCase.seed}), ${testCase.ops.length} ops:`)}\n`);
    testCase.ops.forEach((op, i) => process.stdout.write(`${first?.step === i ? '>' : ' '} ${String(i).padStart(3)}  ${formatOp(op)}\n`));
    process.stdout.write(`${escapeTerminal(first ? `verdict: ${first.oracle} at step ${first.step}: ${first.message}` : `verdict: clean (${result.stepsRun} ops run)`)}\n`);
  }
  for (const error of result.oracleErrors) process.stderr.write(`cocofuzz: oracle error: ${escapeTerminal(`${error.oracle} threw at step ${error.step}: ${error.message}`)}\n`);
  return code;
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
  if (args.case !== undefined && args.seed === undefined) throw new UsageError('--case: needs the --seed of the campaign the case comes from');
  // Where results go is checked before any work: a campaign must not run for an hour and then
  // fail to write them. Nothing is made until every flag, plugin and corpus file is checked: a
  // refused command leaves no directory behind.
  if (args.case === undefined) {
    checkOutputDir(args.out !== undefined ? '--out' : `--out (default ./${DEFAULT_OUT})`, args.out ?? DEFAULT_OUT);
    for (const [flag, file] of [['--junit', args.junit], ['--sarif', args.sarif], ['--html', args.html]] as const) if (file !== undefined) checkOutputFile(flag, file);
  }
  // Off unless asked for or a corpus is kept: measured on the planted bugs, guidance does not yet
  // find them sooner than plain swarm generation (bench/README.md), and the signal costs ops/s.
  args.coverage ??= args.corpus !== undefined;
  if (args.corpus !== undefined && !args.coverage) throw new UsageError('--corpus needs coverage (drop --no-coverage): the corpus keeps the cases that reach new coverage');
  if (args.corpus !== undefined && args.case !== undefined) throw new UsageError('--corpus: not with --case (one case is run alone)');
  if (args.coverage && args.case !== undefined) {
    throw new UsageError('--coverage: not with --case (a coverage-guided case derives from the corpus as its campaign grew it: replay its repro file)');
  }
  if (args.corpus !== undefined) checkOutputDir('--corpus', args.corpus);
  const seed = args.seed ?? Date.now().toString(36);
  const job: CampaignJob = {
    config,
    seed,
    generate: { steps: args.steps ?? DEFAULT_STEPS, swarm: args.swarm, ...(args.weights !== undefined ? { weights: parseWeights(args.weights, config) } : {}) },
    oracleFiles: args.oracle ?? [],
    onlyOracles: args.onlyOracle ?? [],
    minimizeBudget: args.minimizeBudget ?? 2000,
    ...(args.callBudget !== undefined ? { callBudget: args.callBudget } : {}),
    shard: args.shard ?? { index: 0, count: 1 },
    ...(args.coverage ? { coverage: true } : {}),
  };
  // Load every plugin here first: a bad one is a one-line usage error before any work starts.
  await resolvePolicies(config.hostPolicy, config.guestPolicy, {
    host: args.hostPolicy !== undefined ? '--host-policy' : '--config: config.hostPolicy',
    guest: args.guestPolicy !== undefined ? '--guest-policy' : '--config: config.guestPolicy',
  });
  const oracles = await resolveOracles({ files: job.oracleFiles, only: job.onlyOracles });
  let replay: CorpusFile[] = [];
  try {
    if (args.corpus !== undefined && existsSync(args.corpus)) replay = loadCorpusDir(args.corpus, config);
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
    throw new UsageError(`--corpus: ${error.message}`);
  }
  // Everything checked: an explicit --out is made now (the default one at the first finding).
  if (args.case === undefined && args.out !== undefined) prepareOutputDir('--out', args.out);
  if (args.corpus !== undefined) prepareOutputDir('--corpus', args.corpus);
  const guide = args.coverage && args.case === undefined ? new Guide(job, args.corpus, replay.length) : undefined;
  if (args.case !== undefined) return runOneCase(job, args.case, args.json);

  const out = args.out ?? DEFAULT_OUT;
  const log = new CampaignLog(out);
  let logError: string | undefined;
  const emit = (line: LogLine): void => {
    if (args.json) process.stdout.write(encodeLogLine(line));
    try {
      log.write(line);
    } catch (error) {
      // A log that cannot be written (disk full) must not lose the findings: said once, at the end.
      logError ??= error instanceof Error ? error.message : String(error);
    }
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
      coverage: guide !== undefined,
      oracles: oracles.map((o) => o.name),
      startedAt: new Date().toISOString(),
    }),
  );
  if (!args.json) process.stderr.write(`${escapeTerminal(`cocofuzz: seed ${seed}, host ${config.hostPolicy}, guest ${config.guestPolicy}, ${workers} worker(s)`)}\n`);
  // SIGINT and SIGTERM (a CI job's timeout, a scheduler) both finish the cases in flight, write
  // what was found and exit with the verdict; a second signal quits at once.
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) exitNow(signal === 'SIGTERM' ? 143 : 130);
    stopping = true;
    process.stderr.write(`\ncocofuzz: ${signal === 'SIGTERM' ? 'terminated' : 'interrupted'}, finishing the cases in flight (${signal === 'SIGTERM' ? 'SIGTERM' : 'Ctrl-C'} again to quit now)\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let lastStatus = Date.now();
  let lastProgress = Date.now();
  const progress = (current: CampaignStats): LogLine =>
    logLine('progress', {
      cases: current.cases,
      ops: current.ops,
      coverage: campaignCoverage(current, guide),
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
    ...(args.caseTimeout !== undefined ? { caseTimeoutMs: args.caseTimeout } : {}),
    shouldStop: () => stopping,
    ...(guide ? { guide } : {}),
    ...(replay.length > 0 ? { replay } : {}),
    onOracleError: (error) => {
      const saved = error.file && !error.writeError ? `, repro saved to ${error.file}` : '';
      process.stderr.write(
        `${tty ? '\r\x1b[K' : ''}cocofuzz: oracle error: ${escapeTerminal(oracleErrorText(error))}${escapeTerminal(saved)} (reported once per oracle)\n`,
      );
      emit(
        logLine('oracle-error', {
          oracle: error.oracle,
          step: error.step,
          case: error.case,
          ...(error.replayOf !== undefined ? { corpusFile: error.replayOf } : {}),
          message: error.message,
          ...(error.file && !error.writeError ? { file: error.file, kept: error.kept === true } : {}),
          ...(error.writeError ? { writeError: error.writeError } : {}),
        }),
      );
      if (error.writeError && !args.json) process.stdout.write(unsaved(error.writeError, error.repro));
    },
    onBucket: (bucket: Bucket) => {
      emit(findingLine(bucket));
      if (!args.json) {
        if (tty) process.stderr.write('\r\x1b[K');
        const saved = bucket.file && !bucket.writeError ? `, ${bucket.kept ? 'already in' : 'saved to'} ${bucket.file}` : '';
        // `--case K` regenerates a case from the seed; a guided case derives from the corpus as
        // the campaign grew it, so only its repro file reproduces it.
        const origin =
          bucket.replayOf !== undefined
            ? `corpus file ${bucket.replayOf}`
            : `case ${bucket.firstCase} (${guide ? 'coverage-guided' : bucket.repro.seed})`;
        const nondeterministic = bucket.violation.details?.nondeterministic !== undefined ? ' [not deterministic]' : '';
        process.stdout.write(
          `${escapeTerminal(`finding: ${bucket.oracle} at step ${bucket.violation.step}${nondeterministic}: ${bucket.violation.message}`)}\n  ${escapeTerminal(`${origin}, shrunk ${bucket.shrunkFrom} -> ${bucket.repro.ops.length} ops${saved}`)}\n`,
        );
        if (bucket.writeError) process.stdout.write(unsaved(bucket.writeError, bucket.repro));
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
        say(statusLine(current, guide));
      }
    },
  });
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  const buckets = [...stats.buckets.values()];
  const elapsedMs = Date.now() - stats.startedAt;
  const code = verdictCode(buckets.length > 0, stats.oracleErrors.length);
  emit(
    logLine('summary', {
      seed,
      cases: stats.cases,
      ops: stats.ops,
      buckets: buckets.length,
      findings: stats.findings,
      hits: stats.hits,
      coverage: campaignCoverage(stats, guide),
      ...(guide ? { corpus: guide.size, replayed: stats.replayed } : {}),
      perBucket: Object.fromEntries(buckets.map((b) => [b.signature, b.hits])),
      oracleErrors: stats.oracleErrors.length,
      elapsedMs,
      stoppedBy: stopping ? 'interrupt' : args.maxFindings !== undefined && buckets.length >= args.maxFindings ? 'max-findings' : args.time !== undefined && (args.runs === undefined || stats.cases < args.runs) ? 'time' : 'runs',
      metrics: stats.metrics.mean(),
      timeline: stats.timeline,
      exit: code,
    }),
  );
  try {
    log.finish(args.out !== undefined);
  } catch (error) {
    logError ??= error instanceof Error ? error.message : String(error);
  }
  if (logError !== undefined) process.stderr.write(`cocofuzz: --out: cannot write ${escapeTerminal(join(out, CAMPAIGN_LOG))}: ${escapeTerminal(logError)}\n`);
  const summary = { cases: stats.cases, seed, hostPolicy: config.hostPolicy, guestPolicy: config.guestPolicy, startedAt: stats.startedAt, elapsedMs };
  // The findings are printed and saved above; a report that cannot be written must not turn exit 1 into 3.
  const report = async (flag: string, file: string | undefined, write: (file: string) => void | Promise<void>): Promise<void> => {
    if (file === undefined) return;
    try {
      await write(file);
    } catch (error) {
      process.stderr.write(`cocofuzz: ${flag}: cannot write "${escapeTerminal(file)}": ${escapeTerminal(error instanceof Error ? error.message : String(error))}\n`);
    }
  };
  await report('--junit', args.junit, (file) => writeFileAtomic(file, renderJunit(buckets, summary, stats.oracleErrors)));
  await report('--sarif', args.sarif, (file) => writeFileAtomic(file, renderSarif(buckets, oracles, { ...summary, version: packageVersion(), baseDir: process.cwd() }, stats.oracleErrors)));
  await report('--html', args.html, (file) =>
    writeHtmlReport(file, { log: log.entries(), buckets, oracleFiles: job.oracleFiles, title: `cocofuzz: ${config.hostPolicy} + ${config.guestPolicy}, seed ${seed}` }),
  );
  if (!args.json) {
    if (tty) process.stderr.write('\r\x1b[K');
    process.stderr.write(`${statusLine(stats, guide)}\nefficiency (mean per case): ${formatMetrics(stats.metrics.mean())}\n`);
    const flags = replayFlags(out, config, job.oracleFiles);
    if (flags.length > 0 && (buckets.length > 0 || stats.oracleErrors.length > 0)) {
      process.stderr.write(`${escapeTerminal(`cocofuzz: plugin files outside ${out}: a repro file never loads them, so replay with ${flags.join(' ')}`)}\n`);
    }
    process.stdout.write(`${escapeTerminal(verdictLine(stats, code))}\n`);
  }
  for (const problem of guide?.writeErrors ?? []) process.stderr.write(`cocofuzz: --corpus: could not save ${escapeTerminal(problem)}\n`);
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
