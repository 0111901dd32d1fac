import type { CommandModule } from 'yargs';
import { shrinkToRepro } from '../engine/case-job.ts';
import { runCase } from '../engine/run.ts';
import { resolveReproOracles, resolveReproPolicies } from '../engine/select.ts';
import { readRepro, writeRepro } from '../repro/format.ts';
import { EXIT_OK, UsageError } from './errors.ts';
import { positiveInt } from './flags.ts';

interface MinimizeArgs {
  file: string;
  out?: string;
  budget?: number;
}

export const minimizeCommand: CommandModule<object, MinimizeArgs> = {
  command: 'minimize <file>',
  describe: 'shrink a repro file further and write the result',
  builder: (yargs) =>
    yargs
      .positional('file', { type: 'string', demandOption: true, describe: 'repro file' })
      .option('out', { type: 'string', describe: 'where to write the result (default: FILE with .min.json)' })
      .option('budget', { type: 'number', describe: 'maximum re-runs (default 5000)', coerce: positiveInt('budget') })
      .example('$0 minimize found/io-s2-rmp-size-3e6a4f2143.json', 'shrink further, write found/io-s2-rmp-size-3e6a4f2143.min.json'),
  handler: async (args) => {
    const repro = readRepro(args.file);
    const policies = await resolveReproPolicies(repro);
    const oracles = await resolveReproOracles(repro);
    const result = runCase(repro, policies, { oracles, allViolations: true });
    const wanted = repro.expect?.verdict === 'violation' ? repro.expect.oracle : undefined;
    const violation = result.violations.find((v) => wanted === undefined || v.oracle === wanted);
    if (!violation) throw new UsageError(`${args.file}: the case does not fail${wanted ? ` with ${wanted}` : ''}, nothing to minimize`);
    const shrunk = shrinkToRepro(repro, violation, { policies, oracles }, args.budget ?? 5000);
    const out = args.out ?? args.file.replace(/(\.min)?\.json$/, '') + '.min.json';
    writeRepro(out, { ...shrunk.repro, title: repro.title || shrunk.repro.title, ...(repro.oracles ? { oracles: repro.oracles } : {}) });
    console.log(`${args.file}: ${repro.ops.length} -> ${shrunk.repro.ops.length} ops, ${violation.oracle} at step ${shrunk.violation.step}; written to ${out}`);
    process.exitCode = EXIT_OK;
  },
};
