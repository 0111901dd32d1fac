import type { CommandModule } from 'yargs';
import { NotImplementedError } from './errors.ts';

export const minimizeCommand: CommandModule = {
  command: 'minimize <file>',
  describe: 'shrink a repro file further and write the result',
  builder: (yargs) =>
    yargs
      .positional('file', { type: 'string', describe: 'repro file' })
      .option('out', { type: 'string', describe: 'where to write the result (default: FILE.min.json)' }),
  handler: () => {
    throw new NotImplementedError('minimize: the engine is not built yet');
  },
};
