import type { CommandModule } from 'yargs';
import { explainRepro } from '../engine/explain.ts';
import { resolveReproOracles, resolveReproPolicies } from '../engine/select.ts';
import { readRepro } from '../repro/format.ts';
import { type PolicyOverride, policyOverrideOptions, withPolicies } from './inputs.ts';

interface ExplainArgs extends PolicyOverride {
  file: string;
  oracle?: string[];
}

export const explainCommand: CommandModule<object, ExplainArgs> = {
  command: 'explain <file>',
  describe: 'show the failing step as arrows, the affected 2M region before and after, and the ops',
  builder: (yargs) =>
    yargs
      .positional('file', { type: 'string', demandOption: true, describe: 'repro file' })
      .option('oracle', { type: 'string', array: true, describe: 'add a user oracle from a .ts/.js file (repeatable)' })
      .options(policyOverrideOptions)
      .example('$0 explain cocofuzz-out/io-s2-rmp-size-3e6a4f2143.json', 'arrows, the 2M region before/after, the ops'),
  handler: async (args) => {
    const repro = withPolicies(readRepro(args.file), args);
    const policies = await resolveReproPolicies(repro);
    const oracles = await resolveReproOracles(repro, { files: args.oracle ?? [] });
    process.stdout.write(explainRepro(repro, policies, oracles));
  },
};
