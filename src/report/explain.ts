// `cocofuzz explain`: the failing step as arrows, the affected 2M region in every table before and
// after that step, and the ops that led there — plain text a kernel engineer can paste into a mail.

import type { Step, View, Violation } from '../api.ts';
import type { OracleError } from '../engine/run.ts';
import { formatSize, hex } from '../model/size.ts';
import { formatOp } from '../ops/codec.ts';
import type { Repro } from '../repro/format.ts';
import { detailsArrow, faultArrow } from './arrows.ts';
import { interleavedItems } from './interleaving.ts';
import { caseOracleErrorText } from './origin.ts';
import { type RegionRow, snapshotRegion } from './region.ts';

export interface ExplainInput {
  repro: Repro;
  /** The case's verdict: its first violation (undefined: clean). */
  actual: Violation | undefined;
  /** The violation explained in detail: the file's expected one when it fires too, else `actual`. */
  violation: Violation | undefined;
  /** Oracles that threw: each checked nothing after its step, so "clean" would not be true. */
  oracleErrors?: readonly OracleError[];
  /** The violation is there with no op at all: the booted world already has it. */
  atBoot?: boolean;
  /** The policies that ran, when --host-policy/--guest-policy replaced the file's. */
  ran?: { host?: string; guest?: string };
  /** The failing step's record, if the violation happened at a step. */
  step: Step | undefined;
  before: RegionRow[] | undefined;
  after: RegionRow[] | undefined;
}

/** Where to look: the violation's guest address, else the failing op's. */
export function regionOf(violation: Violation, repro: Repro): { gpa: number; hpa: number | undefined } | undefined {
  const details = violation.details ?? {};
  const op = repro.ops[violation.step] as Record<string, unknown> | undefined;
  const gpa = details.gpa ?? details.iova ?? (typeof op?.gpa === 'number' ? op.gpa : typeof op?.iova === 'number' ? op.iova : undefined);
  if (typeof gpa !== 'number') return undefined;
  return { gpa, hpa: typeof details.hpa === 'number' ? details.hpa : undefined };
}

export function regionSnapshot(view: View, where: { gpa: number; hpa: number | undefined }): RegionRow[] {
  return snapshotRegion(view, where.gpa, where.hpa);
}

function table(before: RegionRow[], after: RegionRow[]): string[] {
  const width = Math.max(...before.map((r) => r.table.length), ...after.map((r) => r.table.length), 5);
  const lines = [`  ${'table'.padEnd(width)}  before -> after`];
  const earlier = new Map(before.map((row) => [row.table, row.state]));
  after.forEach((row) => {
    const old = earlier.get(row.table) ?? '-';
    lines.push(`  ${row.table.padEnd(width)}  ${old === row.state ? `${row.state} (unchanged)` : `${old}\n  ${' '.repeat(width)}  -> ${row.state}`}`);
  });
  return lines;
}

const describeExpect = (expect: NonNullable<Repro['expect']>): string =>
  expect.verdict === 'clean' ? 'clean' : `${expect.oracle}${expect.step === undefined ? '' : ` at step ${expect.step}`}`;

/** What the file's `expect` says, when the case gives something else. */
function expectationNote(repro: Repro, actual: Violation | undefined, explained: Violation | undefined): string | undefined {
  const expect = repro.expect;
  if (!expect) return undefined;
  if (expect.verdict === 'clean') return actual ? `the file expects: clean; this case is not` : undefined;
  if (actual && actual.oracle === expect.oracle && (expect.step === undefined || actual.step === expect.step)) return undefined;
  const hit = explained && explained.oracle === expect.oracle ? explained : undefined;
  if (!hit) return `the file expects: ${describeExpect(expect)}; this case does not give it`;
  if (expect.step !== undefined && hit.step !== expect.step) return `the file expects: ${describeExpect(expect)}; it fires at step ${hit.step}`;
  return `the file expects: ${describeExpect(expect)}; it fires too, after the verdict above`;
}

/** The policy that ran, and the file's when --host-policy/--guest-policy replaced it. */
const ranAs = (file: string, ran: string | undefined): string => (ran === undefined || ran === file ? file : `${ran} (given on the command line; the file names ${file})`);

export function renderExplain(input: ExplainInput): string {
  const { repro, violation, step } = input;
  const config = repro.config;
  const lines: string[] = [];
  if (repro.title) lines.push(repro.title, '');
  // Every field that changes what the case does; a default that is the usual case stays out.
  const devices = config.devices.map((d) => `dev${d.id} ${d.trusted ? 'trusted' : 'untrusted'} ${d.iommu}${d.dmaMask !== 64 ? ` dmaMask ${d.dmaMask}` : ''}`).join(', ');
  const vtom = config.vtom !== config.guestMemory ? `, vtom ${hex(config.vtom)}` : '';
  const adversary = config.adversary !== 'none' ? `, adversary ${config.adversary}` : '';
  lines.push(
    `config: host ${ranAs(config.hostPolicy, input.ran?.host)}, guest ${ranAs(config.guestPolicy, input.ran?.guest)}, ${formatSize(config.guestMemory)} guest${config.hugeBacking ? ' (2M backing)' : ''}${config.discard !== 'on-private' ? `, discard ${config.discard}` : ''}, swiotlb ${formatSize(config.swiotlb)}, ${config.cpus} cpus${vtom}, ${devices}${adversary}`,
  );
  const { actual } = input;
  const errors = input.oracleErrors ?? [];
  lines.push(actual ? `verdict: ${actual.oracle} (${actual.severity}) at step ${actual.step}` : errors.length > 0 ? 'verdict: not checked to the end (an oracle threw)' : 'verdict: clean (no oracle fired)');
  if (actual) lines.push(`  ${actual.message}`);
  for (const error of errors) lines.push(`oracle error: ${caseOracleErrorText(error)}`);
  const note = expectationNote(repro, actual, violation);
  if (note) lines.push(note);
  if (!violation) return `${lines.join('\n')}\n`;
  if (violation !== actual) lines.push('', `explained below: ${violation.oracle} (${violation.severity}) at step ${violation.step}`, `  ${violation.message}`);
  lines.push('');
  // The booted world already has it (oracles report that with the first step): no op made it.
  const atBoot = input.atBoot === true;
  const failing = atBoot ? undefined : repro.ops[violation.step];
  if (atBoot) lines.push(`present at boot: the world this config and these policies boot already breaks it (reported with step ${violation.step}, no op made it)`);
  if (failing) lines.push(`failing step ${violation.step}: ${formatOp(failing)}`);
  const fromDetails = detailsArrow(violation.details);
  if (fromDetails) lines.push(`  ${fromDetails}`);
  const faults = faultLines(atBoot ? [] : (step?.faults ?? []));
  if (faults.length > 0) lines.push('  faults during the step:', ...faults.map((line) => `    ${line}`));
  if (!atBoot && step?.interleaved !== undefined && step.interleaved.length > 0) {
    // The race itself: the op's numbered calls with the interleaved ops where they ran.
    lines.push(`  inside step ${step.index} (its own calls numbered as "after" counts them; <-- ran in between):`, `    ${interleavedItems(step, 'compact').join(' | ')}`);
  }
  if (input.before && input.after) {
    const where = regionOf(violation, repro);
    const around = `2M region around ${where ? hex(where.gpa - (where.gpa % (2 * 1024 * 1024))) : '?'}`;
    const label = !atBoot ? `${around}:` : repro.ops.length === 0 ? `${around}, as booted:` : `${around}, as booted -> after step ${violation.step} (which did not make it):`;
    lines.push('', label, ...table(input.before, input.after));
  }
  if (atBoot) {
    lines.push('', repro.ops.length === 0 ? 'ops: none (the boot alone shows it)' : 'ops (none needed: the boot alone shows it):');
    repro.ops.forEach((op, i) => lines.push(`  ${String(i).padStart(3)}  ${formatOp(op)}`));
    return `${lines.join('\n')}\n`;
  }
  lines.push('', 'ops that led there:');
  repro.ops.forEach((op, i) => {
    if (i > violation.step && violation.step >= 0) return;
    lines.push(`${i === violation.step ? '>' : ' '} ${String(i).padStart(3)}  ${formatOp(op)}`);
  });
  return `${lines.join('\n')}\n`;
}

/**
 * The step's faults, one line each, with a run of the same fault on consecutive pages as one line
 * (a 2M range faulted in page by page is 512 #NPFs: `[npf at 0x200000 .. 0x3ff000, 512 pages]`),
 * and a line repeated later in the step (a retry) shown once.
 */
function faultLines(faults: readonly Step['faults'][number][]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  let run: { arrow: string; kind: string; where: string; first: number; last: number; count: number } | undefined;
  const close = (): void => {
    if (run === undefined) return;
    const at = run.count === 1 ? hex(run.first) : `${hex(run.first)} .. ${hex(run.last)}, ${run.count} pages`;
    const line = `${run.arrow}   [${run.kind} at ${at}${run.where}]`;
    if (!seen.has(line)) out.push(line);
    seen.add(line);
  };
  for (const fault of faults) {
    // Nested page faults go to the host, which resolves them (lazy backing, PSMASH on SIZEM);
    // they are part of the story, not the verdict.
    const where = `${fault.dev === undefined ? '' : ` dev ${fault.dev}`}${fault.kind === 'npf' ? ', to the host' : ''}`;
    const arrow = faultArrow(fault);
    if (run !== undefined && run.arrow === arrow && run.kind === fault.kind && run.where === where && fault.addr === run.last + 4096) {
      run.last = fault.addr;
      run.count++;
      continue;
    }
    close();
    run = { arrow, kind: fault.kind, where, first: fault.addr, last: fault.addr, count: 1 };
  }
  close();
  return out;
}
