import type { CommandModule } from 'yargs';
import { explainRepro } from '../engine/explain.ts';
import { resolveOracles, resolveReproPolicies } from '../engine/select.ts';
import { readRepro } from '../repro/format.ts';

interface ExplainArgs {
  file: string;
  oracle?: string[];
}

export const explainCommand: CommandModule<object, ExplainArgs> = {
  command: 'explain <file>',
  describe: 'show the failing step as arrows, the affected 2M region before and after, and the ops',
  builder: (yargs) =>
    yargs
      .positional('file', { type: 'string', demandOption: true, describe: 'repro file' })
      .option('oracle', { type: 'string', array: true, describe: 'add a user oracle from a .ts/.js file (repeatable)' }),
  handler: async (args) => {
    const repro = readRepro(args.file);
    const policies = await resolveReproPolicies(repro);
    const oracles = await resolveOracles({ files: args.oracle ?? [] });
    process.stdout.write(explainRepro(repro, policies, oracles));
  },
};
