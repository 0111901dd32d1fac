// What the world gives an actor: the seeded randomness of its policy, the step's work budget, and
// the guard that turns whatever a policy hook throws into the world's policy error.

import type { Machine } from '../model/machine.ts';

export interface ActorEnv {
  /** Run a policy hook; an exception (or a hardware usage error) becomes a policy error. */
  guard<T>(fn: () => T): T;
  /** Account one unit of work; throws once the step went past its budget. */
  charge(): void;
  /**
   * Account `calls` calls about to be recorded as one run (Recorder.callRun()): true when all of
   * them fit the budgets, as `calls` charge() calls would have passed; false, charging nothing,
   * when one would have thrown: the caller then makes them one by one, so the budget ends the
   * step at the same call as before runs.
   */
  chargeRun(calls: number): boolean;
  /** The machine as policies see it: every primitive call is charged to the step. */
  readonly policyMachine: Machine;
  /** The policy's seeded stream (seedrandom of the case seed and a fixed label). */
  random(): number;
}
