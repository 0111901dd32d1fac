// The primitive-call budget of a case (issue 14, item 14). Wall clock is not deterministic; the
// number of hardware primitive calls a case makes is (the `during` contract already numbers them,
// DESIGN.md "Operations"). So a runaway policy is judged by calls: one op may make at most its
// stepBudget() (a base plus a share per page the op names; a timeout's shrink may tighten it with
// `op`), the whole case at most `case` (after boot, which has its own budget). Past either, the hook in flight ends with a
// PolicyError naming the op and the hook: a deterministic verdict that shrinks like any other.
//
// The meter also says, as it goes, how many calls the case made and which hook is running, so a
// worker can publish them where its watchdog reads them when it has to stop a hook that never
// returns (watchdog.ts): that is what a timed-out case's shrink derives its budget from.

import { SZ_2M, SZ_4K, pageBytes } from '../model/size.ts';
import { swiotlbGeometry } from '../guest/swiotlb.ts';
import type { Config, Op } from '../ops/types.ts';
import { GUEST_POLICY_HOOKS, type GuestPolicy, HOST_POLICY_HOOKS, type HostPolicy } from '../policies/types.ts';

/** Primitive calls any op may make, whatever its size. */
export const STEP_BUDGET = 250_000;
/**
 * And per 4K page the op names: sharing a whole 1 GiB pool 4K by 4K is a legitimate op (kvm-4k
 * makes 7 calls a page, the most of any built-in pairing), so a flat budget called a built-in
 * policy runaway on a `share` of 60000 pages.
 */
export const STEP_CALLS_PER_PAGE = 32;

/** The 4K pages an op names (its size argument), its interleaved ops included. */
function opPages(op: Op): number {
  let pages: number;
  switch (op.op) {
    case 'share':
    case 'unshare':
      pages = op.pages;
      break;
    case 'accept':
    case 'hw_rmpupdate':
    case 'hw_map':
    case 'hw_unmap':
      pages = pageBytes(op.size) / SZ_4K;
      break;
    case 'host_split':
      pages = SZ_2M / SZ_4K;
      break;
    case 'alloc_coherent':
    case 'map_single':
      pages = Math.ceil(op.bytes / SZ_4K);
      break;
    case 'dma':
      pages = Math.ceil(op.len / SZ_4K) + 1;
      break;
    default:
      pages = 1;
  }
  // No array is made for the usual op without `during` (this runs once per op).
  if (op.during !== undefined) for (const entry of op.during) pages += opPages(entry.op);
  return pages;
}

/** The step budget of one op: STEP_BUDGET, plus STEP_CALLS_PER_PAGE for each page it names. */
export function stepBudget(op: Op): number {
  return STEP_BUDGET + STEP_CALLS_PER_PAGE * opPages(op);
}

/**
 * Default most primitive calls one case may make after boot. The largest of 3150 built-in cases
 * made 212,453 (a 1 TiB guest under kvm-4k, 256 ops: `node bin/run-ts.js bench/calls-per-case.ts
 * 50`, README "Policies"); 10M is 47 times that, and leaves room for `--steps` up to its cap of
 * 10000 ops at that rate (about 830 calls per op).
 */
export const DEFAULT_CALL_BUDGET = 10_000_000;

/**
 * The default case budget of a config: DEFAULT_CALL_BUDGET plus STEP_CALLS_PER_PAGE per page of
 * the swiotlb pool. The generator shares and unshares whole pools (ops/edges.ts): at 1 TiB with a
 * 64G pool one such `share` under kvm-4k makes over 50M calls, well within its own stepBudget(),
 * and a flat 10M called it a runaway of the guest policy. Depends on the config alone, so a
 * repro (which does not record the budget) replays under the budget it was found with.
 */
export function defaultCallBudget(config: Pick<Config, 'swiotlb' | 'cpus'>): number {
  return DEFAULT_CALL_BUDGET + poolCalls(config);
}

/** Primitive calls boot may make whatever the pool: it starts the host and makes the pools shared. */
export const BOOT_BUDGET = 5_000_000;

/** Boot's budget: BOOT_BUDGET plus a step's share per page of the pool it shares (kvm-4k shares it 4K by 4K). */
export function bootCallBudget(config: Pick<Config, 'swiotlb' | 'cpus'>): number {
  return BOOT_BUDGET + poolCalls(config);
}

/** STEP_CALLS_PER_PAGE for each page of the swiotlb pool as built (rounded as Linux rounds it, the size the generator's edges name). */
function poolCalls(config: Pick<Config, 'swiotlb' | 'cpus'>): number {
  return STEP_CALLS_PER_PAGE * Math.ceil(swiotlbGeometry({ bytes: config.swiotlb, cpus: config.cpus }).bytes / SZ_4K);
}
/** The largest budget `--call-budget` takes: a worker publishes the count in an Int32 (watchdog.ts). */
export const MAX_CALL_BUDGET = 1_000_000_000;

/** Every hook of both policy kinds, host first: a hook's number is its index + 1 (0: none). */
export const POLICY_HOOKS: readonly string[] = [...HOST_POLICY_HOOKS.map((h) => `host ${h}`), ...GUEST_POLICY_HOOKS.map((h) => `guest ${h}`)];

export interface CallBudget {
  /** Most primitive calls the case's ops may make together. */
  case: number;
  /** Most one op may make (default: the op's stepBudget()). */
  op?: number;
}

/** What the meter tells as the case runs (a worker writes it to its shared memory). */
export interface CallWatch {
  /** The case's calls so far (after boot), at every charged call. */
  calls?(calls: number): void;
  /** A hook was entered or left: its number in POLICY_HOOKS (index + 1), 0 for none. */
  hook?(hook: number): void;
  /** An op ended having made `calls` calls; the ops that ended made `finished` in all. */
  opEnded?(calls: number, finished: number): void;
}

/** The budget was spent: world.ts turns it into a PolicyError naming the op. */
export class CallBudgetExceeded extends Error {
  override name = 'CallBudgetExceeded';
  /** The policy whose hook ran (set by the actor's guard); else the op's actor is charged. */
  policy: string | undefined;
  constructor(
    /** op: one op made more than `budget` calls (the step budget); case: the whole case did. */
    readonly scope: 'op' | 'case',
    readonly budget: number,
    /** The hook that was running (`host split`), if one was. */
    readonly hook: string | undefined,
  ) {
    super(`${scope === 'op' ? 'step' : 'call'} budget exceeded`);
  }

  /** The sentence a policy-error says, with the op in flight (`op 5 (share)`). */
  describe(op: string): string {
    const where = this.hook === undefined ? op : `${op}, in hook ${this.hook}`;
    return this.scope === 'op'
      ? `step budget exceeded: ${where}, made more than ${this.budget} primitive calls`
      : `call budget exceeded: the case made more than ${this.budget} primitive calls, the last in ${where}`;
  }
}

/** The hook each error escaped from (the innermost: hooks nest), for the policy-error it becomes. */
const escapedFrom = new WeakMap<object, string>();

/** The hook (`host flush`) `error` was thrown in, when it came out of a hook CallMeter.follow() wrapped. */
export function hookOf(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null ? escapedFrom.get(error) : undefined;
}

/** Counts one case's primitive calls against its budget and follows which policy hook runs. */
export class CallMeter {
  /** Calls of the ops that finished. */
  private finished = 0;
  /** POLICY_HOOKS number of the hook running now (0: none). */
  private hook = 0;
  /** Most calls the op in flight may make: its step budget, or budget.op if smaller (beginOp()). */
  private opLimit: number;

  constructor(
    readonly budget: CallBudget,
    private readonly watch: CallWatch = {},
  ) {
    this.opLimit = Math.min(STEP_BUDGET, budget.op ?? STEP_BUDGET);
  }

  /** The name of the hook running now (`host split`), if any. */
  get runningHook(): string | undefined {
    return this.hook === 0 ? undefined : POLICY_HOOKS[this.hook - 1];
  }

  /** An op starts that may make `opBudget` calls (its stepBudget()): the limit is set once per op, not per call. */
  beginOp(opBudget: number): void {
    this.opLimit = Math.min(opBudget, this.budget.op ?? opBudget);
  }

  /** An op ended having made `calls` calls. */
  endOp(calls: number): void {
    this.finished += calls;
    this.watch.opEnded?.(calls, this.finished);
  }

  /**
   * Checks the op in flight (`opCalls` so far) against both budgets: called at every primitive
   * call. Throws CallBudgetExceeded naming the hook in flight.
   */
  charge(opCalls: number): void {
    const total = this.finished + opCalls;
    this.watch.calls?.(total);
    const op = this.opLimit;
    if (opCalls > op) throw new CallBudgetExceeded('op', op, this.runningHook);
    if (total > this.budget.case) throw new CallBudgetExceeded('case', this.budget.case, this.runningHook);
  }

  /** Whether the op in flight may make calls up to `opCalls` in all within both budgets (charge() would not throw). */
  fits(opCalls: number): boolean {
    return opCalls <= this.opLimit && this.finished + opCalls <= this.budget.case;
  }

  /**
   * The policies with every hook they define wrapped so the meter knows which one runs (hooks
   * nest: a hook's helper may run another hook). Absent hooks stay absent (the actors test for
   * them), and each hook still runs with the policy itself as `this`.
   */
  follow<P extends HostPolicy | GuestPolicy>(policy: P, kind: 'host' | 'guest'): P {
    const hooks: readonly string[] = kind === 'host' ? HOST_POLICY_HOOKS : GUEST_POLICY_HOOKS;
    const wrapped = Object.create(policy) as Record<string, unknown>;
    for (const name of hooks) {
      const fn = (policy as unknown as Record<string, unknown>)[name];
      if (typeof fn !== 'function') continue;
      const number = POLICY_HOOKS.indexOf(`${kind} ${name}`) + 1;
      wrapped[name] = (...args: unknown[]): unknown => {
        const outer = this.hook;
        this.enter(number);
        try {
          return (fn as (...a: unknown[]) => unknown).apply(policy, args);
        } catch (error) {
          if (typeof error === 'object' && error !== null && !escapedFrom.has(error)) escapedFrom.set(error, `${kind} ${name}`);
          throw error;
        } finally {
          this.enter(outer);
        }
      };
    }
    return wrapped as unknown as P;
  }

  private enter(hook: number): void {
    this.hook = hook;
    this.watch.hook?.(hook);
  }
}
