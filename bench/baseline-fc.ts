// The baseline the engine is measured against (DESIGN.md, "Performance approach"): the same
// model (createWorld + the built-in oracles) driven by a plain fast-check model-based test, the
// way a user of fast-check would write it: one fc Command class per op kind, built from the op
// arbitraries of src/ops/arbitrary.ts, run by fc.modelRun inside fc.check. Every command's run
// applies its op to the world and then runs every oracle's incremental check; after the last
// command the oracles' full sweeps run, as the engine does at the end of a case. No swarm, no
// seeded generator, uniform weights over the op kinds the config allows.

import fc from 'fast-check';
import type { Oracle, Violation } from '../src/api.ts';
import { type Policies, POLICY_ERROR } from '../src/engine/run.ts';
import { PolicyError, createWorld, type World } from '../src/engine/world.ts';
import { opArbitrary } from '../src/ops/arbitrary.ts';
import { OP_SPECS } from '../src/ops/schema.ts';
import type { Case, Config, Op, OpName } from '../src/ops/types.ts';

/** The default cap on commands per run: the engine's default --steps. */
export const BASELINE_MAX_COMMANDS = 64;

/** A violation found by the baseline, thrown out of fc.modelRun so fc.check reports the run as failed. */
export class BaselineViolation extends Error {
  override name = 'BaselineViolation';
  constructor(readonly violation: Violation) {
    super(`${violation.oracle}: ${violation.message}`);
  }
}

/** Thrown when the command budget of a search is spent: ends fc.check without counting as a find. */
class BudgetSpent extends Error {
  override name = 'BudgetSpent';
}

/** The system under test of one fc run: a fresh world and the oracles, applied op by op. */
export class BaselineHarness {
  readonly world: World;
  readonly ops: Op[] = [];
  private readonly disabled = new Set<string>();

  constructor(
    readonly config: Config,
    readonly policies: Policies,
    readonly oracles: readonly Oracle[],
    readonly counter: { commands: number; budget: number; deadline: number },
    seed = 'fc-baseline',
  ) {
    this.world = createWorld(config, policies, seed);
  }

  apply(op: Op): void {
    if (this.counter.commands >= this.counter.budget) throw new BudgetSpent('command budget spent');
    if (this.counter.commands % 64 === 0 && performance.now() >= this.counter.deadline) throw new BudgetSpent('time budget spent');
    this.counter.commands++;
    const index = this.ops.length;
    this.ops.push(op);
    let step;
    try {
      step = this.world.apply(op, index);
    } catch (error) {
      if (!(error instanceof PolicyError)) throw error;
      throw new BaselineViolation({ oracle: POLICY_ERROR, severity: 'correctness', step: index, message: error.message });
    }
    for (const oracle of this.oracles) this.judge(oracle, index, () => oracle.check(this.world, step));
  }

  /** The end of the run: every oracle's full sweep, as runCase does after the last op. */
  finish(): void {
    const index = Math.max(0, this.ops.length - 1);
    for (const oracle of this.oracles) if (oracle.final) this.judge(oracle, index, () => oracle.final?.(this.world));
  }

  private judge(oracle: Oracle, index: number, run: () => ReturnType<Oracle['check']>): void {
    if (this.disabled.has(oracle.name)) return;
    let findings;
    try {
      findings = run();
    } catch {
      // As the engine does: a broken oracle is switched off, not counted as a violation.
      this.disabled.add(oracle.name);
      return;
    }
    const first = findings?.[0];
    if (first) {
      throw new BaselineViolation({
        oracle: oracle.name,
        severity: oracle.severity,
        step: index,
        message: first.message,
        ...(first.details ? { details: first.details } : {}),
      });
    }
  }
}

type Model = Record<string, never>;
type OpCommand = fc.Command<Model, BaselineHarness>;

/** One Command class per op kind, as a hand-written fc model-based test would have. */
function commandClass(kind: OpName): new (op: Op) => OpCommand {
  return class implements OpCommand {
    static readonly kind = kind;
    constructor(readonly op: Op) {}
    check(): boolean {
      return true;
    }
    run(_model: Model, harness: BaselineHarness): void {
      harness.apply(this.op);
    }
    toString(): string {
      return JSON.stringify(this.op);
    }
  };
}

/** The op kinds the config allows (adversary ops only with `adversary: "host"`). */
export function baselineKinds(config: Config): OpName[] {
  return (Object.keys(OP_SPECS) as OpName[]).filter((name) => OP_SPECS[name].actor !== 'adversary' || config.adversary === 'host');
}

export function commandArbitraries(config: Config): fc.Arbitrary<OpCommand>[] {
  return baselineKinds(config).map((kind) => {
    const Command = commandClass(kind);
    return opArbitrary(kind, config).map((op) => new Command(op));
  });
}

export interface BaselineOptions {
  config: Config;
  policies: Policies;
  oracles: readonly Oracle[];
  /** fc.check's seed (a 32-bit integer). */
  seed: number;
  /** Stop after this many commands have run (the run in progress is cut short). */
  budget: number;
  /** Stop at this performance.now() time (checked every 64 commands). */
  deadline?: number;
  maxCommands?: number;
  /** fc's size for the command lists; fc's default ("small") gives about 5 commands per run. */
  size?: fc.SizeForArbitrary;
  /** Stop after this many fc runs (default: until the budget is spent). */
  numRuns?: number;
  /** Called after each run that ended without a violation, with the ops it applied. */
  onRun?: (ops: readonly Op[]) => void;
}

export interface BaselineResult {
  /** The first violation, if one was found within the budget. */
  violation?: Violation;
  /** The failing run's ops up to the violation (a Case the engine can replay). */
  failing?: Case;
  /** Commands run, the failing one included. */
  commands: number;
  /** fc runs started. */
  runs: number;
  ms: number;
}

/**
 * fc.check over fc.commands until the first violation or the end of the budget. endOnFailure
 * turns shrinking off: this measures time to the first failure, as the engine's trials do.
 */
export function runBaseline(options: BaselineOptions): BaselineResult {
  const counter = { commands: 0, budget: options.budget, deadline: options.deadline ?? Number.POSITIVE_INFINITY };
  const arbitraries = commandArbitraries(options.config);
  let runs = 0;
  let last: BaselineHarness | undefined;
  const property = fc.property(fc.commands(arbitraries, { maxCommands: options.maxCommands ?? BASELINE_MAX_COMMANDS, ...(options.size ? { size: options.size } : {}) }), (commands) => {
    runs++;
    const harness = new BaselineHarness(options.config, options.policies, options.oracles, counter);
    last = harness;
    fc.modelRun(() => ({ model: {}, real: harness }), commands);
    harness.finish();
    options.onRun?.(harness.ops);
  });
  const started = performance.now();
  const details = fc.check(property, { seed: options.seed, numRuns: options.numRuns ?? Number.MAX_SAFE_INTEGER, endOnFailure: true });
  const ms = performance.now() - started;
  const result: BaselineResult = { commands: counter.commands, runs, ms };
  const error = details.errorInstance;
  if (details.failed && error instanceof BaselineViolation) {
    result.violation = error.violation;
    if (last) result.failing = { config: options.config, seed: 'fc-baseline', ops: [...last.ops] };
  } else if (details.failed && !(error instanceof BudgetSpent)) {
    throw error instanceof Error ? error : new Error(String(error));
  }
  return result;
}
