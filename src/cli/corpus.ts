import type { CommandModule } from 'yargs';
import { NotImplementedError } from './errors.ts';

export const corpusCommand: CommandModule = {
  command: 'corpus <action> <dirs..>',
  describe: 'validate, merge or prune corpus directories',
  builder: (yargs) =>
    yargs
      .positional('action', { choices: ['check', 'merge', 'prune'] as const, describe: 'what to do' })
      .positional('dirs', { type: 'string', array: true, describe: 'corpus directories' })
      .option('out', { type: 'string', describe: 'merge: destination directory' }),
  handler: () => {
    throw new NotImplementedError('corpus: the engine is not built yet');
  },
};
