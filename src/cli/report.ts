// `cocofuzz report DIR`, and `fuzz --html FILE`: the HTML report of a findings directory (its
// campaign.jsonl and repro files) or of the campaign that just ran.

import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { CommandModule } from 'yargs';
import type { Bucket } from '../engine/campaign.ts';
import { bucketOrigin, caseOracleErrorText } from '../report/origin.ts';
import { explainWithMaps } from '../engine/explain.ts';
import { type ReproOverrides, type ReproPlugins, resolveOracles, resolveReproPlugins } from '../engine/select.ts';
import { type Repro, writeFileAtomic } from '../repro/format.ts';
import { escapeTerminal } from '../report/escape.ts';
import { type ReportFinding, renderHtmlReport } from '../report/html.ts';
import { regionOf } from '../report/explain.ts';
import { CAMPAIGN_LOG, type LogLine, readLog } from '../report/jsonl.ts';
import { EXIT_USAGE, UsageError } from './errors.ts';
import { type ReproPluginArgs, reproPluginOptions } from './flags.ts';
import { EMPTY_CORPUS, forEachRepro } from './inputs.ts';
import { checkOutputFile } from './outputs.ts';

export interface HtmlSource {
  log: readonly LogLine[];
  /** The repros to explain, with what the campaign knows about their bucket, and their plugins where already resolved. */
  findings: readonly { repro: Repro; bucket?: Bucket; file?: string; plugins?: ReproPlugins }[];
  oracleFiles: readonly string[];
  /** --host-policy/--guest-policy of `report`: a repro file loads plugins only from its own tree. */
  overrides?: ReproOverrides;
  title: string;
}

async function toFinding(entry: HtmlSource['findings'][number], oracleFiles: readonly string[], overrides: ReproOverrides = {}): Promise<ReportFinding> {
  const { repro, bucket } = entry;
  const { policies, oracles } = entry.plugins ?? (await resolveReproPlugins(repro, oracleFiles, overrides));
  const explained = explainWithMaps(repro, policies, oracles, overrides);
  const violation = explained.violation;
  const where = violation ? regionOf(violation, repro) : undefined;
  // An oracle that threw checked nothing after its step: such a file is neither clean nor fixed.
  const broken = violation ? undefined : explained.oracleErrors[0];
  return {
    oracle: violation?.oracle ?? (broken ? 'oracle-error' : repro.expect?.verdict === 'violation' ? repro.expect.oracle : 'clean'),
    severity: violation?.severity ?? '-',
    message:
      violation?.message ??
      (broken
        ? caseOracleErrorText(broken)
        : repro.expect?.verdict === 'clean'
          ? 'clean, as the file expects'
          : 'no oracle fires on this repro any more'),
    seed: repro.seed,
    ops: repro.ops.length,
    explain: explained.text,
    ...(bucket ? { signature: bucket.signature, hits: bucket.hits, origin: bucketOrigin(bucket) } : {}),
    ...(entry.file ? { file: entry.file } : {}),
    ...(explained.after ? { after: explained.after } : {}),
    ...(explained.before ? { before: explained.before } : {}),
    ...(where ? { gpa: where.gpa } : {}),
  };
}

export async function buildHtml(source: HtmlSource): Promise<string> {
  const findings: ReportFinding[] = [];
  for (const entry of source.findings) findings.push(await toFinding(entry, source.oracleFiles, source.overrides));
  return renderHtmlReport({ title: source.title, log: source.log, findings, generatedAt: new Date() });
}

/** `fuzz --html`: the campaign's own log lines and buckets. */
export async function writeHtmlReport(file: string, campaign: { log: readonly LogLine[]; buckets: readonly Bucket[]; oracleFiles: readonly string[]; title: string }): Promise<void> {
  const html = await buildHtml({
    log: campaign.log,
    findings: campaign.buckets.map((bucket) => ({ repro: bucket.repro, bucket, ...(bucket.file ? { file: bucket.file } : {}) })),
    oracleFiles: campaign.oracleFiles,
    title: campaign.title,
  });
  writeFileAtomic(file, html);
}

interface ReportArgs extends ReproPluginArgs {
  dir: string;
  out?: string;
}

async function report(args: ReportArgs): Promise<number> {
  if (!existsSync(args.dir) || !statSync(args.dir).isDirectory()) throw new UsageError(`${args.dir}: not a directory`);
  // Where the report goes is checked before every repro is explained, as fuzz --html checks it.
  const out = args.out ?? join(args.dir, 'report.html');
  checkOutputFile(args.out !== undefined ? '--out' : '--out (default DIR/report.html)', out);
  await resolveOracles({ files: args.oracle ?? [] });
  const logFile = join(args.dir, CAMPAIGN_LOG);
  const log = existsSync(logFile) ? readLog(logFile) : [];
  const findings: { repro: Repro; file: string; plugins: ReproPlugins }[] = [];
  // Every file is read and its policies and oracles resolved before anything is written: a
  // directory with a file that cannot be reported gets no report that silently leaves it out
  // (exit 2, as replay), and the report runs each file with what was resolved here.
  const bad = await forEachRepro([args.dir], async (file, repro) => {
    findings.push({ repro, file, plugins: await resolveReproPlugins(repro, args.oracle ?? [], args) });
  }, EMPTY_CORPUS);
  if (bad > 0) return EXIT_USAGE;
  const start = log.find((l) => l.type === 'start');
  const title = start ? `cocofuzz: ${String(start.hostPolicy)} + ${String(start.guestPolicy)}, seed ${String(start.seed)}` : `cocofuzz: ${args.dir}`;
  writeFileAtomic(out, await buildHtml({ log, findings, oracleFiles: args.oracle ?? [], overrides: args, title }));
  process.stdout.write(`cocofuzz: report of ${findings.length} repro file(s)${log.length > 0 ? ' and the campaign log' : ''} written to ${escapeTerminal(out)}\n`);
  return 0;
}

export const reportCommand: CommandModule<object, ReportArgs> = {
  command: 'report <dir>',
  describe: 'write a self-contained HTML report of a findings directory (campaign.jsonl and repro files)',
  builder: (yargs) =>
    reproPluginOptions(yargs)
      .positional('dir', { type: 'string', demandOption: true, describe: 'findings directory (fuzz --out, default ./cocofuzz-out)' })
      .option('out', { type: 'string', describe: 'the HTML file to write (default DIR/report.html)' })
      .example('$0 report cocofuzz-out', 'write cocofuzz-out/report.html')
      .example('$0 report found/ --out nightly.html', 'a report of another directory, to a named file'),
  handler: async (args) => {
    process.exitCode = await report(args);
  },
};
