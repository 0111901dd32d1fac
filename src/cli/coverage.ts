// `cocofuzz coverage DIR...`: which abstract situations (coverage.ts) a corpus reached and which it
// never did, per table of the region tuple and per op, so a user sees what their policy was never
// exercised on. Each file is replayed with its own policies (or the flags'), exactly as
// `corpus check` does; the features are the ones a campaign collects.

import type { CommandModule } from 'yargs';
import { CoverageTracker, OP_OUTCOMES, TABLE_VALUES, featureTable } from '../engine/coverage.ts';
import { replayRepro } from '../engine/replay.ts';
import { OP_SPECS } from '../ops/schema.ts';
import type { OpName } from '../ops/types.ts';
import type { Repro } from '../repro/format.ts';
import { escapeTerminal, safeJson } from '../report/escape.ts';
import { EXIT_OK, EXIT_USAGE } from './errors.ts';
import { type ReproPluginArgs, reproPluginOptions } from './flags.ts';
import { EMPTY_CORPUS, forEachRepro } from './inputs.ts';

export const pluginSelection = (args: ReproPluginArgs) => ({ files: args.oracle ?? [], hostPolicy: args.hostPolicy, guestPolicy: args.guestPolicy });

/** The features a repro reaches, run as a campaign runs it (stopping at the first violation). */
export async function reproFeatures(repro: Repro, args: ReproPluginArgs): Promise<{ features: Set<string>; verdict: 'clean' | 'violation' }> {
  const tracker = new CoverageTracker();
  const { result } = await replayRepro(repro, pluginSelection(args), { allViolations: false, onStep: (step, view) => tracker.observe(step, view) });
  return { features: tracker.features, verdict: result.verdict };
}

interface CoverageArgs extends ReproPluginArgs {
  dirs: string[];
  json: boolean;
}

/** What the corpus reached, grouped for the report. */
export function coverageReport(features: ReadonlySet<string>) {
  const tables = Object.entries(TABLE_VALUES).map(([table, values]) => ({
    table,
    reached: values.filter((v) => features.has(`${table}=${v}`)),
    never: values.filter((v) => !features.has(`${table}=${v}`)),
  }));
  const ops = (Object.keys(OP_SPECS) as OpName[]).map((op) => {
    const outcomes = [...features].filter((f) => f.startsWith(`op:${op}:`)).map((f) => f.slice(`op:${op}:`.length)).sort();
    const calls = [...features].filter((f) => f.startsWith(`call:${op}:`)).map((f) => f.slice(`call:${op}:`.length)).sort();
    // `never`: the op never ran; `neverOutcomes`: what of the fixed outcomes (OP_OUTCOMES) it never reached.
    return { op, outcomes, calls, never: outcomes.length === 0, neverOutcomes: OP_OUTCOMES.filter((o) => !features.has(`op:${op}:${o}`)) };
  });
  const count = (table: string): number => [...features].filter((f) => featureTable(f) === table).length;
  return { features: features.size, tuples: count('region'), moves: count('move'), tables, ops };
}

async function coverage(args: CoverageArgs): Promise<number> {
  const features = new Set<string>();
  let files = 0;
  const bad = await forEachRepro(args.dirs, async (_file, repro) => {
    // Counted once replayed: a file refused (its JSON, or a plugin outside its tree) adds nothing.
    for (const feature of (await reproFeatures(repro, args)).features) features.add(feature);
    files++;
  }, EMPTY_CORPUS);
  const report = coverageReport(features);
  if (args.json) {
    console.log(safeJson({ files, ...(bad > 0 ? { refused: bad } : {}), ...report }));
    return bad > 0 ? EXIT_USAGE : EXIT_OK;
  }
  const lines = [`${files} file(s)${bad > 0 ? ` (${bad} more refused, see above)` : ''}: ${report.features} features, ${report.tuples} distinct region tuples, ${report.moves} tuple transitions`, '', 'per table (values of the 2M-region tuple):'];
  for (const t of report.tables) lines.push(`  ${t.table.padEnd(16)} reached: ${t.reached.join(', ') || '-'}${t.never.length > 0 ? `   never: ${t.never.join(', ')}` : ''}`);
  lines.push('', 'per op (outcomes; primitive calls with status; the fixed outcomes never reached):');
  for (const o of report.ops) {
    if (o.never) continue;
    lines.push(`  ${o.op.padEnd(16)} ${o.outcomes.join('; ')}`);
    if (o.calls.length > 0) lines.push(`  ${''.padEnd(16)} calls: ${o.calls.join(', ')}`);
    if (o.neverOutcomes.length > 0) lines.push(`  ${''.padEnd(16)} never: ${o.neverOutcomes.join('; ')}`);
  }
  const never = report.ops.filter((o) => o.never).map((o) => o.op);
  if (never.length > 0) lines.push('', `ops never run: ${never.join(', ')}`);
  for (const line of lines) console.log(escapeTerminal(line));
  return bad > 0 ? EXIT_USAGE : EXIT_OK;
}

export const coverageCommand: CommandModule<object, CoverageArgs> = {
  command: 'coverage <dirs..>',
  describe: 'which abstract situations a corpus reached and which it never did, per table and per op',
  builder: (yargs) =>
    reproPluginOptions(yargs)
      .positional('dirs', { type: 'string', array: true, demandOption: true, describe: 'corpus directories or repro files' })
      .option('json', { type: 'boolean', default: false, describe: 'one JSON object on stdout' })
      .example('$0 coverage nightly-corpus/', 'what the nightly corpus exercised, and what it never did'),
  handler: async (args) => {
    process.exitCode = await coverage(args);
  },
};
