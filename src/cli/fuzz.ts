import type { Argv, CommandModule } from 'yargs';
import { NotImplementedError } from './errors.ts';
import { duration, positiveInt, shard } from './flags.ts';

export function fuzzOptions(yargs: Argv) {
  return yargs
    .option('runs', { type: 'string', describe: 'stop after N cases', coerce: positiveInt('runs') })
    .option('time', { type: 'string', describe: 'stop after a duration: 30s, 10m, 2h', coerce: duration('time') })
    .option('seed', { type: 'string', describe: 'campaign seed (string or number); default: time-based, printed' })
    .option('arch', { type: 'string', choices: ['snp'], default: 'snp', describe: 'architecture model' })
    .option('host-policy', { type: 'string', describe: 'built-in host policy name or a .ts/.js file' })
    .option('guest-policy', { type: 'string', describe: 'built-in guest policy name or a .ts/.js file' })
    .option('oracle', { type: 'string', array: true, describe: 'add a user oracle from a .ts/.js file (repeatable)' })
    .option('only-oracle', { type: 'string', array: true, describe: 'check only these oracles (repeatable)' })
    .option('steps', { type: 'string', describe: 'maximum ops per case', coerce: positiveInt('steps') })
    .option('workers', { type: 'string', describe: 'worker threads (default: cores)', coerce: positiveInt('workers') })
    .option('shard', { type: 'string', describe: 'i/n: this machine takes every n-th case seed', coerce: shard('shard') })
    .option('out', { type: 'string', describe: 'directory for findings, one repro file each' })
    .option('json', { type: 'boolean', default: false, describe: 'JSON lines on stdout' })
    .option('junit', { type: 'string', describe: 'write a JUnit XML report, one test case per finding bucket' });
}

export const fuzzCommand: CommandModule = {
  command: 'fuzz',
  describe: 'generate and run cases until --runs or --time; shrink and save what fails',
  builder: fuzzOptions,
  handler: () => {
    throw new NotImplementedError('fuzz: the engine is not built yet');
  },
};
