import type { CommandModule } from 'yargs';
import { builtinOracles } from '../../oracles/index.ts';
import { POLICY_ERROR } from '../engine/run.ts';

export const oraclesCommand: CommandModule = {
  command: 'oracles',
  describe: 'list the built-in oracles with their severity and description',
  builder: (yargs) => yargs.example('$0 oracles', 'names for --only-oracle').example('$0 fuzz --only-oracle io-s2-rmp-size --runs 200', 'then check one of them'),
  handler: () => {
    const width = Math.max(...builtinOracles.map((o) => o.name.length), POLICY_ERROR.length);
    for (const oracle of builtinOracles) console.log(`${oracle.name.padEnd(width)}  ${oracle.severity.padEnd(11)}  ${oracle.description}`);
    console.log(`${POLICY_ERROR.padEnd(width)}  ${'correctness'.padEnd(11)}  a policy threw, looped past the step budget or called hardware with invalid arguments`);
  },
};
