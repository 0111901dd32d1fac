import type { CommandModule } from 'yargs';
import { captureFailingStep, policiesRan } from '../engine/explain.ts';
import { overrideWarnings } from '../engine/replay.ts';
import { resolveReproPlugins } from '../engine/select.ts';
import { escapeTerminal, escapeTerminalLines } from '../report/escape.ts';
import { regionSnapshot, renderExplain } from '../report/explain.ts';
import { verdictCode } from './errors.ts';
import { readRepro } from '../repro/format.ts';
import { type ReproPluginArgs, reproPluginOptions } from './flags.ts';

interface ExplainArgs extends ReproPluginArgs {
  file: string;
}

export const explainCommand: CommandModule<object, ExplainArgs> = {
  command: 'explain <file>',
  describe: 'show the failing step as arrows, the affected 2M region before and after, and the ops',
  builder: (yargs) =>
    reproPluginOptions(yargs.positional('file', { type: 'string', demandOption: true, describe: 'repro file' })).example(
      '$0 explain cocofuzz-out/io-s2-rmp-size-3e6a4f2143.json',
      'arrows, the 2M region before/after, the ops',
    ),
  handler: async (args) => {
    const repro = readRepro(args.file);
    const { policies, oracles } = await resolveReproPlugins(repro, args.oracle, args);
    for (const warning of overrideWarnings(repro, policies, args, 'explaining')) process.stderr.write(`cocofuzz: ${escapeTerminal(args.file)}: warning: ${escapeTerminal(warning)}\n`);
    const found = captureFailingStep(repro, policies, oracles, regionSnapshot);
    process.stdout.write(escapeTerminalLines(renderExplain({ repro, ...found, ran: policiesRan(policies, args) })));
    // As replay: an oracle that threw, with nothing found, is exit 2 (nothing was checked after it).
    process.exitCode = verdictCode(false, found.actual === undefined ? found.oracleErrors.length : 0);
  },
};
