import { dirname, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { shrinkToRepro } from '../engine/case-job.ts';
import { runCase } from '../engine/run.ts';
import { reproOracleFiles, resolveOracles, resolveReproPolicies } from '../engine/select.ts';
import { escapeTerminal } from '../report/escape.ts';
import { readRepro, writeRepro } from '../repro/format.ts';
import { looksLikeFile } from '../repro/plugin-paths.ts';
import { EXIT_OK, UsageError } from './errors.ts';
import { positiveInt, type ReproPluginArgs, reproPluginOptions } from './flags.ts';
import { checkOutputFile, replayFlags } from './outputs.ts';

interface MinimizeArgs extends ReproPluginArgs {
  file: string;
  out?: string;
  budget?: number;
}

export const minimizeCommand: CommandModule<object, MinimizeArgs> = {
  command: 'minimize <file>',
  describe: 'shrink a repro file further and write the result',
  builder: (yargs) =>
    reproPluginOptions(yargs)
      .positional('file', { type: 'string', demandOption: true, describe: 'repro file' })
      .option('out', { type: 'string', describe: 'where to write the result (default: FILE with .min.json)' })
      .option('budget', { type: 'number', describe: 'maximum re-runs (default 5000)', coerce: positiveInt('budget') })
      .example('$0 minimize found/io-s2-rmp-size-3e6a4f2143.json', 'shrink further, write found/io-s2-rmp-size-3e6a4f2143.min.json'),
  handler: async (args) => {
    const repro = readRepro(args.file);
    const out = args.out ?? args.file.replace(/(\.min)?\.json$/, '') + '.min.json';
    checkOutputFile('--out', out);
    const policies = await resolveReproPolicies(repro, args);
    const oracleFiles = reproOracleFiles(repro, args.oracle);
    const oracles = await resolveOracles({ files: oracleFiles });
    const result = runCase(repro, policies, { oracles, allViolations: true });
    const wanted = repro.expect?.verdict === 'violation' ? repro.expect.oracle : undefined;
    const violation = result.violations.find((v) => wanted === undefined || v.oracle === wanted);
    if (!violation) throw new UsageError(`${args.file}: the case does not fail${wanted ? ` with ${wanted}` : ''}, nothing to minimize`);
    const shrunk = shrinkToRepro(repro, violation, { policies, oracles }, args.budget ?? 5000, oracleFiles);
    // The result names the same plugins, spelled relative to where it is written (a policy from
    // the command line is recorded as the one that ran).
    const reproDir = dirname(resolve(args.file));
    const absolute = (named: string, base: string): string => (looksLikeFile(named) ? resolve(base, named) : named);
    const config = {
      ...shrunk.repro.config,
      hostPolicy: args.hostPolicy !== undefined ? absolute(args.hostPolicy, process.cwd()) : absolute(repro.config.hostPolicy, reproDir),
      guestPolicy: args.guestPolicy !== undefined ? absolute(args.guestPolicy, process.cwd()) : absolute(repro.config.guestPolicy, reproDir),
    };
    const minimal = { ...shrunk.repro, config, title: repro.title || shrunk.repro.title, ...(oracleFiles.length > 0 ? { oracles: oracleFiles.map((f) => resolve(f)) } : {}) };
    writeRepro(out, minimal);
    console.log(escapeTerminal(`${args.file}: ${repro.ops.length} -> ${shrunk.repro.ops.length} ops, ${violation.oracle} at step ${shrunk.violation.step}; written to ${out}`));
    // As fuzz says: a plugin outside the new file's tree is one a repro file never loads.
    const flags = replayFlags(dirname(resolve(out)), config, minimal.oracles ?? []);
    if (flags.length > 0) process.stderr.write(`${escapeTerminal(`cocofuzz: plugin files outside ${dirname(resolve(out))}: a repro file never loads them, so replay ${out} with ${flags.join(' ')}`)}\n`);
    process.exitCode = EXIT_OK;
  },
};
