import type { CommandModule } from 'yargs';
import { NotImplementedError } from './errors.ts';

export const policiesCommand: CommandModule = {
  command: 'policies',
  describe: 'list the built-in host and guest policies',
  handler: () => {
    throw new NotImplementedError('policies: the policies are not built yet');
  },
};
