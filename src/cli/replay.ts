import type { CommandModule } from 'yargs';
import type { Step, Violation } from '../api.ts';
import { replayRepro } from '../engine/replay.ts';
import { POLICY_ERROR } from '../engine/run.ts';
import { resolveGuestPolicy, resolveHostPolicy, resolveOracles } from '../engine/select.ts';
import { formatOp } from '../ops/codec.ts';
import { faultArrow } from '../report/arrows.ts';
import { escapeTerminal, escapeTerminalLines } from '../report/escape.ts';
import { interleavedItems } from '../report/interleaving.ts';
import { type LogLine, encodeLogLine, logLine } from '../report/jsonl.ts';
import { EXIT_USAGE, verdictCode } from './errors.ts';
import { type ReproPluginArgs, reproPluginOptions } from './flags.ts';
import { forEachRepro } from './inputs.ts';

const emit = (line: LogLine): void => {
  process.stdout.write(encodeLogLine(line));
};

interface ReplayArgs extends ReproPluginArgs {
  files: string[];
  check: boolean;
  trace: boolean;
  json: boolean;
  fullCheck?: boolean;
  onlyOracle?: string[];
}

/** A fault as the trace shows it: `npf at 0x800000: ==> FAULT (not present)`. */
const faultText = (fault: Step['faults'][number]): string => `${fault.kind} at 0x${fault.addr.toString(16)}: ${faultArrow(fault)}`;

/** `replay --trace --json`: one `step` line per step, with what the text trace prints. */
function stepLine(file: string, step: Step, violations: readonly Violation[]): LogLine {
  return logLine('step', {
    file,
    step: step.index,
    op: formatOp(step.op),
    ...(step.skipped ? { skipped: step.skipped } : {}),
    // The lines the text trace prints under the op: its primitive calls, numbered, and interleaved ops.
    calls: interleavedItems(step, 'trace').map((item) => item.trim()),
    faults: step.faults.map(faultText),
    violations: violations.map((v) => ({ oracle: v.oracle, message: v.message })),
  });
}

/**
 * `replay --trace --json`: the violations no `step` line carried (`late`): the end-of-case sweep's
 * (or boot's in a case of no ops), and a policy-error, which ends the case inside its op: no step
 * line, so the result line carries it, and it is no end-of-case finding.
 */
function endOfCase(late: readonly Violation[]): { endOfCase?: { oracle: string; message: string }[]; policyError?: { step: number; message: string } } {
  const swept = late.filter((v) => v.oracle !== POLICY_ERROR);
  const policyError = late.find((v) => v.oracle === POLICY_ERROR);
  return {
    ...(swept.length === 0 ? {} : { endOfCase: swept.map((v) => ({ oracle: v.oracle, message: v.message })) }),
    ...(policyError === undefined ? {} : { policyError: { step: policyError.step, message: policyError.message } }),
  };
}

function traceStep(step: Step, violations: readonly Violation[]): string {
  const lines = [`  ${String(step.index).padStart(3)}  ${formatOp(step.op)}${step.skipped ? `   (skipped: ${step.skipped})` : ''}`];
  for (const item of interleavedItems(step, 'trace')) lines.push(`       ${item}`);
  for (const fault of step.faults) lines.push(`         fault ${faultText(fault)}`);
  for (const v of violations) lines.push(`         VIOLATION ${v.oracle}: ${v.message}`);
  return escapeTerminalLines(lines.join('\n'));
}

async function replay(args: ReplayArgs): Promise<number> {
  let failed = 0;
  let passed = 0;
  let oracleErrors = 0;
  // A broken --oracle is the command's problem, not one file's: fail once, before any replay.
  const selection = { files: args.oracle ?? [], only: args.onlyOracle ?? [] };
  await resolveOracles(selection);
  if (args.hostPolicy !== undefined) await resolveHostPolicy(args.hostPolicy, '--host-policy');
  if (args.guestPolicy !== undefined) await resolveGuestPolicy(args.guestPolicy, '--guest-policy');
  const bad = await forEachRepro(args.files, async (file, repro) => {
    // The violations the trace showed under their steps; the rest came from the end-of-case sweep
    // (runCase sweeps after the last step), or from boot in a case of no ops.
    let traced = 0;
    const trace = !args.trace
      ? undefined
      : (step: Step, _view: unknown, violations: readonly Violation[]): void => {
          traced += violations.length;
          if (args.json) emit(stepLine(file, step, violations));
          else console.log(traceStep(step, violations));
        };
    if (args.trace && !args.json) console.log(`${escapeTerminal(file)}:`);
    const outcome = await replayRepro(repro, { ...selection, hostPolicy: args.hostPolicy, guestPolicy: args.guestPolicy }, { ...(trace ? { onStep: trace } : {}), ...(args.fullCheck ? { fullCheck: true } : {}) });
    // What the trace showed no step line for (a sweep after a policy-error, run when replay looks
    // for every violation, is an end-of-case finding too).
    const late = trace ? outcome.result.violations.slice(traced) : [];
    if (!args.json) {
      const when = outcome.result.stepsRun === 0 ? 'after boot, no op' : 'end of case';
      for (const v of late) console.log(escapeTerminalLines(`         VIOLATION ${v.oracle} (${v.oracle === POLICY_ERROR ? `in step ${v.step}, which did not complete` : when}): ${v.message}`));
    }
    for (const warning of outcome.warnings) process.stderr.write(`cocofuzz: ${escapeTerminal(file)}: warning: ${escapeTerminal(warning)}\n`);
    const first = outcome.result.violations[0];
    const broken = outcome.result.oracleErrors[0];
    // Not "clean" when an oracle threw: it checked nothing after that step.
    const verdict = first ? `${first.oracle} at step ${first.step}: ${first.message}` : broken ? `not checked to the end: oracle ${broken.oracle} threw at step ${broken.step}` : 'clean';
    if (broken) oracleErrors++;
    if (args.check) {
      // An oracle that threw checked nothing after: its file's expectation is not met, whatever the verdict says.
      const ok = outcome.met !== false && broken === undefined;
      const mismatch = outcome.met === false ? outcome.mismatch : `oracle ${broken?.oracle} threw at step ${broken?.step}: the expectation was not checked`;
      if (ok) passed++;
      else failed++;
      if (args.json) emit(logLine('result', { file, ok, expect: repro.expect ?? null, verdict: first ? { oracle: first.oracle, step: first.step, message: first.message } : 'clean', ...endOfCase(late) }));
      else console.log(escapeTerminal(`${ok ? 'ok  ' : 'FAIL'}  ${file}${outcome.met === undefined ? ' (no expectation)' : ''}${ok ? '' : `: ${mismatch}`}`));
    } else {
      if (first) failed++;
      else passed++;
      if (args.json) emit(logLine('result', { file, verdict: first ? { oracle: first.oracle, step: first.step, message: first.message } : 'clean', ...endOfCase(late) }));
      else console.log(escapeTerminal(`${file}: ${verdict}`));
    }
    for (const error of outcome.result.oracleErrors) {
      if (args.json) emit(logLine('oracle-error', { file, oracle: error.oracle, step: error.step, message: error.message }));
      process.stderr.write(`cocofuzz: ${escapeTerminal(`${file}: oracle error: ${error.oracle} threw at step ${error.step}: ${error.message}`)}\n`);
    }
  });
  const code = bad > 0 ? EXIT_USAGE : verdictCode(failed > 0, oracleErrors);
  if (args.json) {
    emit(logLine('summary', { mode: args.check ? 'check' : 'replay', files: passed + failed + bad, ...(args.check ? { met: passed, unmet: failed } : { clean: passed, violations: failed }), unreadable: bad, exit: code }));
  } else if (args.check) console.log(`${passed} expectation(s) met, ${failed} not met${bad ? `, ${bad} unreadable` : ''}`);
  return code;
}

export const replayCommand: CommandModule<object, ReplayArgs> = {
  command: 'replay <files..>',
  describe: 'run repro files (or directories of them) deterministically',
  builder: (yargs) =>
    reproPluginOptions(yargs)
      .positional('files', { type: 'string', array: true, demandOption: true, describe: 'repro files or directories' })
      .option('check', { type: 'boolean', default: false, describe: "compare each verdict with the file's expect" })
      .option('trace', { type: 'boolean', default: false, describe: 'print every step: primitives, results, faults' })
      .option('json', { type: 'boolean', default: false, describe: 'JSON lines on stdout' })
      .option('full-check', {
        type: 'boolean',
        default: false,
        describe: "after every step, run each oracle's full sweep of the world instead of its incremental check (an oracle author's cross-check; oracles without a sweep still check)",
      })
      .option('only-oracle', { type: 'string', array: true, nargs: 1, describe: 'check only these oracles (repeatable), e.g. --only-oracle guest-alive' })
      .epilogue(
        "A repro file loads policy and oracle files only from its own directory tree; --host-policy, --guest-policy and --oracle name others. With other policies than the file's, a file that uses during gets a warning: its positions count the file's policies' calls.",
      )
      .example('$0 replay cocofuzz-out/io-s2-rmp-size-3e6a4f2143.json', 'the verdict of one repro file')
      .example('$0 replay --check corpus/', 'every file meets its expect (a regression suite)')
      .example('$0 replay --trace --json found/', 'every step, as JSON lines (README "JSON lines")')
      .example('$0 replay --full-check --oracle ./my-oracle.ts found/', "the same verdicts with every oracle's full sweep after each step: does your incremental check see what the sweep sees?")
      .example('$0 replay found/x.json --host-policy ./my-host.ts', 'a repro whose policy lies outside its directory: name the file on the command line'),
  handler: async (args) => {
    process.exitCode = await replay(args);
  },
};
