import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { CommandModule } from 'yargs';
import { PluginError, guardProcessExit } from '../engine/plugins.ts';
import { FormatError } from '../ops/errors.ts';
import { escapeTerminal } from '../report/escape.ts';
import { EXIT_INTERNAL, EXIT_USAGE, UsageError, exitNow } from './errors.ts';
import { negativeValue, repeatedFlag } from './flags.ts';
import { packageVersion } from './version.ts';

const version = packageVersion();

/**
 * Each command's module, imported only when it is needed: `cocofuzz oracles` loads the oracles and
 * nothing of the engine, the reporters or the campaign (issue 15: CLI start under 0.3 s). The
 * order is the order of `cocofuzz --help`. The modules' argument types differ; yargs only needs the
 * module objects.
 */
const COMMANDS = new Map<string, () => Promise<object>>([
  ['fuzz', async () => (await import('./fuzz.ts')).fuzzCommand],
  ['replay', async () => (await import('./replay.ts')).replayCommand],
  ['minimize', async () => (await import('./minimize.ts')).minimizeCommand],
  ['explain', async () => (await import('./explain.ts')).explainCommand],
  ['corpus', async () => (await import('./corpus.ts')).corpusCommand],
  ['coverage', async () => (await import('./coverage.ts')).coverageCommand],
  ['report', async () => (await import('./report.ts')).reportCommand],
  ['ops', async () => (await import('./ops.ts')).opsCommand],
  ['oracles', async () => (await import('./oracles.ts')).oraclesCommand],
  ['policies', async () => (await import('./policies.ts')).policiesCommand],
]);

/** The command named on the command line (its first word that is not a flag) loads alone; help, no command or an unknown one load them all. */
async function commandsFor(argv: readonly string[]): Promise<CommandModule[]> {
  const named = argv.find((arg) => !arg.startsWith('-'));
  const load = named === undefined ? undefined : COMMANDS.get(named);
  const modules = load !== undefined ? [await load()] : await Promise.all([...COMMANDS.values()].map((each) => each()));
  return modules as CommandModule[];
}

/** How a shell reports a process that SIGPIPE ended. */
const EXIT_SIGPIPE = 141;

/**
 * `replay --bogus file.json`: yargs gives the unknown flag the file as its value and then says
 * only that the file is missing ("Not enough non-option arguments"). Name the flag instead.
 */
function unknownBeforeFile(message: string | undefined, argv: readonly string[], usage: unknown): string | undefined {
  // The third argument of yargs' fail callback is its usage instance: getDescriptions() lists the
  // options the command knows (its own and the global ones), by name.
  const described = (usage as { getDescriptions?: () => Record<string, unknown> } | undefined)?.getDescriptions?.();
  if (message === undefined || !message.startsWith('Not enough non-option arguments') || described === undefined) return undefined;
  const known = new Set(Object.keys(described));
  const camel = (name: string): string => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  const end = argv.indexOf('--');
  const flags = (end < 0 ? argv : argv.slice(0, end)).filter((a) => a.startsWith('-') && a !== '-').map((a) => a.replace(/^-+/, '').split('=')[0]!);
  // yargs reads --no-X as X false.
  const knows = (name: string): boolean => known.has(name) || known.has(camel(name));
  const unknown = flags.find((name) => !knows(name) && !(name.startsWith('no-') && knows(name.slice(3))));
  return unknown === undefined ? undefined : `Unknown argument: ${unknown}`;
}

/** One line on stderr and an exit code: users see the flag or file at fault, never a stack trace. */
function die(message: string, code: number): never {
  process.stderr.write(`cocofuzz: ${escapeTerminal(message)}\n`);
  exitNow(code);
}

export async function main(argv: string[]): Promise<void> {
  const negative = negativeValue(argv);
  if (negative !== undefined) die(`${negative} (see cocofuzz --help)`, EXIT_USAGE);
  const repeated = repeatedFlag(argv);
  if (repeated !== undefined) die(`${repeated} (see cocofuzz --help)`, EXIT_USAGE);
  // A plugin's stray promise or timer (replay and explain run plugins in this process) fails in
  // one line, never with a stack trace and pages of transpiled plugin source.
  const stray = (error: unknown): void => {
    const text = error instanceof Error ? `${error.name}: ${error.message.split('\n')[0]}` : String(error);
    die(`a plugin failed outside its hook (a rejected promise or a timer): ${text}`, EXIT_INTERNAL);
  };
  process.on('unhandledRejection', stray);
  process.on('uncaughtException', stray);
  // A reader that stops reading (`cocofuzz fuzz | head -1`) is no plugin's failure: end quietly
  // with the code of a process killed by SIGPIPE (128 + 13), as a C tool would. What was already
  // found is on disk: findings are written atomically as they are made.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE') exitNow(EXIT_SIGPIPE);
      stray(error);
    });
  }
  const cli = yargs(argv)
    .scriptName('cocofuzz')
    .usage('$0 <command> [options]\n\nFuzz hypervisor memory policies for confidential VMs (AMD SEV-SNP).')
    .command(await commandsFor(argv))
    .demandCommand(1, 'a command is needed')
    .middleware(guardProcessExit)
    .strict()
    .version(version)
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .epilogue('Exit codes: 0 nothing found, 1 violation found or expectation unmet, 2 bad usage or input, 3 internal error.')
    .fail((message, error, parser) => {
      // yargs wraps errors thrown by flag coercions (ours are UsageErrors) in a YError.
      if (error && !(error instanceof UsageError) && error.name !== 'YError') throw error;
      const text = (unknownBeforeFile(message, argv, parser) ?? error?.message ?? message ?? 'bad usage').replace(/\s*\n\s*/g, ' ').trim();
      die(`${text} (see cocofuzz --help)`, EXIT_USAGE);
    });
  try {
    await cli.parseAsync();
  } catch (error) {
    // Bad flags, malformed files and broken plugins name what is wrong in one line.
    if (error instanceof UsageError || error instanceof FormatError || error instanceof PluginError) die(error.message, EXIT_USAGE);
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    die(`internal error: ${text}`, EXIT_INTERNAL);
  }
}

await main(hideBin(process.argv));
