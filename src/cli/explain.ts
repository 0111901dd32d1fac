import type { CommandModule } from 'yargs';
import { NotImplementedError } from './errors.ts';

export const explainCommand: CommandModule = {
  command: 'explain <file>',
  describe: 'show the failing step as arrows, the affected 2M region before and after, and the ops',
  builder: (yargs) => yargs.positional('file', { type: 'string', describe: 'repro file' }),
  handler: () => {
    throw new NotImplementedError('explain: the engine is not built yet');
  },
};
