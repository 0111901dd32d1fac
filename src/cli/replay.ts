import type { CommandModule } from 'yargs';
import { NotImplementedError } from './errors.ts';

export const replayCommand: CommandModule = {
  command: 'replay <files..>',
  describe: 'run repro files (or directories of them) deterministically',
  builder: (yargs) =>
    yargs
      .positional('files', { type: 'string', array: true, describe: 'repro files or directories' })
      .option('check', { type: 'boolean', default: false, describe: "compare each verdict with the file's expect" })
      .option('trace', { type: 'boolean', default: false, describe: 'print every step' })
      .option('json', { type: 'boolean', default: false, describe: 'JSON lines on stdout' }),
  handler: () => {
    throw new NotImplementedError('replay: the engine is not built yet');
  },
};
