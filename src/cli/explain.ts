import type { CommandModule } from 'yargs';
import { explainRepro } from '../engine/explain.ts';
import { reproOracleFiles, resolveOracles, resolveReproPolicies } from '../engine/select.ts';
import { escapeTerminalLines } from '../report/escape.ts';
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
    const policies = await resolveReproPolicies(repro, args);
    const oracles = await resolveOracles({ files: reproOracleFiles(repro, args.oracle) });
    process.stdout.write(escapeTerminalLines(explainRepro(repro, policies, oracles)));
  },
};
