import type { CommandModule } from 'yargs';
import { NotImplementedError } from './errors.ts';

export const oraclesCommand: CommandModule = {
  command: 'oracles',
  describe: 'list the built-in oracles with their severity and description',
  handler: () => {
    throw new NotImplementedError('oracles: the oracle set is not built yet');
  },
};
