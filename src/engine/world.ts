// The world of one case: the machine, the host and the guest, built from the config and the two
// policies, booted, and then driven one op at a time. It is the read-only View oracles see.
//
// Determinism: the only randomness is each policy's seedrandom stream, derived from the case seed
// and a fixed label; the same config, seed and ops give the same steps in any process.
//
// A policy that throws, calls the hardware with invalid arguments, or makes one op do more than
// its step budget of primitive calls (call-budget.ts stepBudget(), which grows with the pages the
// op names; or the case more than its call budget, call-budget.ts) ends the step
// with a PolicyError, which the engine reports as a `policy-error` finding. Failures at boot are
// held and thrown by the first apply().

import seedrandom from 'seedrandom';
import { GUEST_PAGE_SHARED, eventAt, eventsIn, isEventRun, type BeingConverted, type GuestEvent, type GuestEventRecord, type CoherentBuffer, type Counters, type DeviceView, type DmaPiece, type DmaRecord, type FrameRange, type GuestView, type HostView, type InterleavedRecord, type MemoryView, type PageTableView, type RmpEntry, type RmpView, type Step, type StrayFrame, type StreamingMapping, type View } from '../api.ts';
import { Guest } from '../guest/guest.ts';
import type { ActorEnv } from '../host/env.ts';
import { DEFAULT_IO_PAGE_SIZES, Host } from '../host/host.ts';
import { HardwareUsageError, Machine, RANGE_METHODS } from '../model/machine.ts';
import { StepEvents } from '../model/events.ts';
import { privateFaultMaxSizeProblem } from '../policies/check.ts';
import type { CallRecord, Fault, FaultRecord, PrimitiveCall } from '../model/types.ts';
import { alignDown, pageBytes, SZ_2M, SZ_4K } from '../model/size.ts';
import { GMEM_BASE } from '../model/layout.ts';
import { withTokens } from '../model/token-runs.ts';
import { defaultRmpEntry } from '../model/rmp.ts';
import { dispatch, type Actors, type Outcome } from '../ops/dispatch.ts';
import type { AdversaryOp, Config, DeviceOp, InnerOp, Op } from '../ops/types.ts';
import { Interleaving, type InnerOutcome } from './interleave.ts';
import { GraphCopy } from '../model/graph-copy.ts';
import { freezeDeep } from '../model/freeze.ts';
import { CallBudgetExceeded, CallMeter, bootCallBudget, defaultCallBudget, hookOf, stepBudget } from './call-budget.ts';
import type { GuestPolicy, HostPolicy } from '../policies/types.ts';

/** The guest's ASID (any of 1..1023 would do; the oracles read it from the view). */
export const GUEST_ASID = 1;

/** A policy misbehaved: the engine turns it into a `policy-error` finding. */
export class PolicyError extends Error {
  override name = 'PolicyError';
  constructor(
    readonly policy: string,
    message: string,
    /** A call budget ended the op: which budget, and the hook that was running. */
    readonly overBudget?: { budget: number; hook?: string },
  ) {
    super(`policy ${policy}: ${message}`);
  }
}

class BudgetExceeded extends Error {
  override name = 'BudgetExceeded';
}

export type BootRecord = Pick<Step, 'calls' | 'callRuns' | 'faults' | 'guestEvents' | 'guestEventRuns' | 'frameRanges' | 'gfnRanges' | 'frames' | 'gfns' | 'guestErrors'>;

export interface World extends View {
  /** Run one op through its actor and return what happened. */
  apply(op: Op, index: number): Step;
  /** What boot did (host start, the guest's pools made shared): calls, faults, guest events. */
  readonly boot: BootRecord;
}

const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error));

class SimWorld implements World {
  readonly config: Config;
  readonly asid: number;
  readonly vtom: number;
  readonly rmp: RmpView;
  readonly npt: PageTableView;
  readonly devices: readonly DeviceView[];
  readonly memory: MemoryView;
  readonly counters: Readonly<Counters>;
  readonly machine: Machine;
  readonly hostActor: Host;
  readonly guestActor: Guest;
  /** What boot did; frozen on the first read of `boot` (most fresh worlds are never asked). */
  private readonly bootRecord: RecordedStep;
  private bootFrozen: boolean;
  private bootError: PolicyError | undefined;
  private booting = true;
  /** call-budget.ts bootCallBudget(): boot shares the swiotlb pool, which may be large. */
  private readonly bootBudget: number;
  private readonly meter: CallMeter;
  private readonly actors: Actors;
  /** What dispatch() needs of the config, built once (apply() runs per op). */
  private readonly dispatchOptions: { adversary: boolean };
  private readonly rmpScratch = defaultRmpEntry();

  /** The policies as this world's hooks call them: wrapped by its meter (CallMeter.follow). */
  private readonly policies: { host: HostPolicy; guest: GuestPolicy };
  private readonly hostEnv: ActorEnv;
  private readonly guestEnv: ActorEnv;
  /** Draws from the policies' streams while booting: a world that drew any is never a template. */
  private bootDraws = 0;

  /**
   * Boot the world of a case, or, given `template` (a booted world of the same config and
   * policies whose boot drew no randomness: boot-cache.ts), restore a copy of it instead.
   */
  constructor(config: Config, policies: { host: HostPolicy; guest: GuestPolicy }, seed: string, meter = new CallMeter({ case: defaultCallBudget(config) }), template?: SimWorld) {
    this.config = config;
    this.meter = meter;
    this.bootBudget = bootCallBudget(config);
    // The meter follows which hook runs, so a spent call budget names it.
    this.policies = { host: meter.follow(policies.host, 'host'), guest: meter.follow(policies.guest, 'guest') };
    const booted = template === undefined ? this.bootFresh(seed) : this.restore(template, seed);
    const machine = booted.machine;
    this.machine = machine;
    this.asid = machine.asid;
    this.vtom = machine.vtom;
    this.rmp = machine.rmp;
    this.npt = machine.npt;
    this.devices = machine.devices;
    this.memory = machine.memory;
    this.counters = machine.counters;
    this.hostEnv = booted.hostEnv;
    this.guestEnv = booted.guestEnv;
    this.hostActor = booted.host;
    this.guestActor = booted.guest;
    this.bootError = booted.bootError;
    // What boot did is the record of a step (-1) that ends here.
    // A restored world's record is the template's, frozen already.
    this.bootFrozen = booted.boot !== undefined;
    this.bootRecord = booted.boot ?? this.finish(-1, { op: 'host_sync' }, {}, []);
    this.booting = false;
    this.actors = this.buildActors();
    this.dispatchOptions = { adversary: config.adversary === 'host' };
    // A template's boot had no fatal event (reusable): its copies need not read the record again
    // (a 1 TiB guest's boot record holds a thousand events).
    this.bootFatal = template !== undefined ? [] : (this.bootRecord.guestEventRuns ?? this.bootRecord.guestEvents).flatMap((event) => (event.kind === 'fatal' ? [{ ...event, message: `at boot: ${event.message}` }] : []));
  }

  /**
   * The record of boot, read-only data (freezeDeep), as a restored world's is (it shares its
   * template's): frozen here, on the first read, rather than for every case.
   */
  get boot(): BootRecord {
    if (!this.bootFrozen) {
      this.bootRecord.freeze();
      this.bootFrozen = true;
    }
    return this.bootRecord;
  }

  /** Build the machine and the actors, start the host and boot the guest (its pools made shared). */
  private bootFresh(seed: string): Booted {
    const { config, policies } = this;
    const build = (ioPageSizes: readonly number[]): Machine =>
      new Machine({
        asid: GUEST_ASID,
        vtom: config.vtom,
        devices: config.devices.map((d) => ({ id: d.id, trusted: d.trusted, iommu: d.iommu, ioPageSizes })),
      });
    let machine: Machine;
    let bootError: PolicyError | undefined;
    try {
      machine = build(policies.host.ioPageSizes ?? DEFAULT_IO_PAGE_SIZES);
    } catch (error) {
      // Page sizes the IO page table cannot hold: the policy's fault, reported at the first op.
      machine = build(DEFAULT_IO_PAGE_SIZES);
      bootError = new PolicyError(policies.host.name, `ioPageSizes: ${describe(error)}`);
    }
    // A policy object handed to runCase() unchecked (plugin files and fuzzProperty are refused earlier).
    const maxSize = privateFaultMaxSizeProblem(policies.host);
    if (maxSize !== undefined) bootError ??= new PolicyError(policies.host.name, maxSize);
    const hostEnv = this.env(policies.host.name, this.stream(seed, 'host-policy'), machine);
    const guestEnv = this.env(policies.guest.name, this.stream(seed, 'guest-policy'), machine);
    machine.recorder.beginStep();
    let host: Host | undefined;
    let guest: Guest | undefined;
    let stage = policies.host.name;
    try {
      host = new Host(machine, config, policies.host, hostEnv);
      stage = policies.guest.name;
      guest = new Guest(machine, config, policies.guest, guestEnv, host);
      stage = policies.host.name;
      host.start();
      stage = policies.guest.name;
      guest.boot();
    } catch (error) {
      const wrapped = this.asPolicyError(error, stage);
      if (!(wrapped instanceof PolicyError)) throw wrapped;
      bootError ??= wrapped;
    }
    // A failed constructor leaves nothing to run: keep a world whose first apply() reports it.
    host ??= new Host(machine, config, { name: policies.host.name, description: '' }, hostEnv);
    guest ??= new Guest(machine, config, { name: policies.guest.name, description: '' }, guestEnv, host);
    return { machine, hostEnv, guestEnv, host, guest, bootError };
  }

  /**
   * A copy of `template`'s booted state (graph-copy.ts: cost proportional to the objects of its
   * state, runs and 2M regions, not to its pages, bar a 4K IO page table's items), with this
   * case's meter-wrapped policies, config
   * and fresh policy streams from this case's seed: what a fresh boot would give, as boot drew
   * nothing from them. The policies' ctx.state is copied with the rest.
   */
  private restore(template: SimWorld, seed: string): Booted {
    if (!template.reusable) throw new Error('restore: the template world cannot be reused');
    const copy = new GraphCopy();
    copy.substitute(template.config, this.config);
    copy.substitute(template.policies.host, this.policies.host);
    copy.substitute(template.policies.guest, this.policies.guest);
    const machine = copy.copy(template.machine);
    const hostEnv = this.env(this.policies.host.name, this.stream(seed, 'host-policy'), machine);
    const guestEnv = this.env(this.policies.guest.name, this.stream(seed, 'guest-policy'), machine);
    for (const [from, to] of [
      [template.hostEnv, hostEnv],
      [template.guestEnv, guestEnv],
    ] as const) {
      copy.substitute(from, to);
      copy.substitute(from.policyMachine, to.policyMachine);
    }
    // The actors' closures are bound again below, over the copies.
    copy.rebinds(template.hostActor.ctx);
    copy.rebinds(template.hostActor.ctx.kvm);
    copy.rebinds(template.guestActor.ctx);
    const host = copy.copy(template.hostActor);
    const guest = copy.copy(template.guestActor);
    host.bind();
    guest.bind();
    const boot = (template.boot as RecordedStep).shared();
    return { machine, hostEnv, guestEnv, host, guest, boot, bootError: undefined };
  }

  /**
   * Whether this world may serve as a boot template: its boot failed in no way (those worlds
   * report it at the first op, which is simplest left to a fresh boot) and drew nothing from the
   * policies' streams (seeded per case: a copy could not give another seed's draws).
   */
  get reusable(): boolean {
    return this.bootError === undefined && this.bootFatal.length === 0 && this.bootDraws === 0;
  }

  /** The policy stream `label` of the case `seed`, counting the draws made while booting. */
  private stream(seed: string, label: string): () => number {
    // Seeded on the first draw: most policies never draw, and seeding (ARC4's key schedule) cost
    // 2% of the bench workload's raw replay when every case seeded two streams.
    let rng: (() => number) | undefined;
    return () => {
      if (this.booting) this.bootDraws++;
      rng ??= seedrandom(`${seed}\u0000${label}`);
      return rng();
    };
  }

  /**
   * Where the guest died during boot (its pools made shared): step-based oracles never see boot,
   * so the first step carries these events, ahead of its own.
   */
  private bootFatal: Step['guestEvents'];

  get guest(): GuestView {
    return this.guestActor;
  }

  get host(): HostView {
    return this.hostActor;
  }

  apply(op: Op, index: number): Step {
    if (this.bootError !== undefined) {
      const error = this.bootError;
      this.bootError = undefined;
      throw error;
    }
    this.machine.recorder.beginStep();
    this.meter.beginOp(stepBudget(op));
    this.guestActor.clearLog();
    this.pendingDmas = [];
    // The live buffers and mappings before the op: the guest's lists themselves, which it
    // replaces and never changes in place (Guest.buffers).
    this.buffersBefore = this.guestActor.buffers;
    this.mappingsBefore = this.guestActor.mappings;
    const interleaving = op.during !== undefined && op.during.length > 0 ? new Interleaving(op.during, this.machine.recorder, (inner, entry) => this.runInner(inner, entry)) : undefined;
    this.cpuOwned = interleaving === undefined ? NOTHING_OWNED : this.ownedBy(op);
    let outcome: Outcome;
    try {
      interleaving?.begin();
      outcome = dispatch(op, this.actors, this.dispatchOptions);
      const held = interleaving?.finish();
      if (this.machine.devices.some(isStalled) || (held !== undefined && held.length > 0)) {
        const stalled = this.machine.devices.filter(isStalled).map((d) => d.id);
        throw new PolicyError(this.hostActor.ctx.policy, `device ${[...new Set([...stalled, ...(held ?? [])])].join(', ')} still stalled when op ${op.op} ended (dma_stall without dma_resume)`);
      }
    } catch (error) {
      this.machine.recorder.listen(undefined);
      const actor = op.op === 'host_split' || op.op === 'host_sync' || op.op.startsWith('hw_') ? this.hostActor.ctx.policy : this.guestActor.ctx.policy;
      if (error instanceof CallBudgetExceeded) {
        throw new PolicyError(error.policy ?? actor, error.describe(`op ${index} (${op.op})`), {
          budget: error.budget,
          ...(error.hook === undefined ? {} : { hook: error.hook }),
        });
      }
      throw this.asPolicyError(error, actor);
    }
    return this.finish(index, op, outcome, this.pendingDmas, interleaving?.records, this.createdOrFreed());
  }

  /** The step's DMAs (Step.dmas): a list of the step's own, empty in most steps (never a shared frozen one: model/events.ts says why). */
  private pendingDmas: DmaRecord[] = [];
  /** The objects the running op frees or syncs (`buf:3`): the CPU owns them until it returns. */
  private cpuOwned: ReadonlySet<string> = NOTHING_OWNED;
  /** The guest's live buffers and mappings when the op started. */
  private buffersBefore: readonly CoherentBuffer[] = [];
  private mappingsBefore: readonly StreamingMapping[] = [];

  /**
   * The objects the op created or freed: the symmetric difference of the live objects before and
   * after it (freed first, buffers before mappings). Most ops create and free nothing: then the
   * lists are the same objects and nothing is built.
   */
  private createdOrFreed(): readonly LiveObject[] {
    const buffers = this.guestActor.buffers;
    const mappings = this.guestActor.mappings;
    if (sameObjects(this.buffersBefore, buffers) && sameObjects(this.mappingsBefore, mappings)) return NO_OBJECTS;
    // A list the op left as it was (the guest replaces a list it changes) has nothing to compare.
    const sameBuffers = this.buffersBefore === buffers;
    const sameMappings = this.mappingsBefore === mappings;
    const out: LiveObject[] = [];
    if (!sameBuffers) for (const b of this.buffersBefore) if (!hasId(buffers, b.id)) out.push(bufferObject(b));
    if (!sameMappings) for (const m of this.mappingsBefore) if (!hasId(mappings, m.id)) out.push(mappingObject(m));
    if (!sameBuffers) for (const b of buffers) if (!hasId(this.buffersBefore, b.id)) out.push(bufferObject(b));
    if (!sameMappings) for (const m of mappings) if (!hasId(this.mappingsBefore, m.id)) out.push(mappingObject(m));
    return out;
  }

  /**
   * The objects the CPU owns while `op` runs (DMA API ownership): the buffer dma_free_coherent
   * frees, the mapping dma_unmap_single or dma_sync_single_for_cpu works on, and every object of
   * a device whose driver tdi_accept / tdi_unlock unbinds (its DMA was stopped first).
   */
  private ownedBy(op: Op): Set<string> {
    const owned = new Set<string>();
    if (op.op === 'free_coherent') {
      const buffer = this.guestActor.buffer(op.buf);
      if (buffer !== undefined) owned.add(`buf:${buffer.id}`);
    } else if (op.op === 'unmap_single' || op.op === 'sync') {
      const mapping = this.guestActor.mapping(op.map);
      if (mapping !== undefined) owned.add(`map:${mapping.id}`);
    } else if (op.op === 'tdi_accept' || op.op === 'tdi_unlock') {
      for (const b of this.buffersBefore) if (b.dev === op.dev) owned.add(`buf:${b.id}`);
      for (const m of this.mappingsBefore) if (m.dev === op.dev) owned.add(`map:${m.id}`);
    }
    return owned;
  }

  /**
   * An interleaved touch faulted (#NPF) while the op runs: its vCPU's fault handler runs beside
   * the op. A private fault on a page whose guest_memfd frame is not yet the guest's makes KVM
   * prepare it (kvm_gmem_get_pfn() -> sev_gmem_prepare() -> rmp_make_private()), an RMPUPDATE; if
   * the op has started an RMP procedure (RMPUPDATE or PSMASH) on that frame's 2M region and not
   * returned, the hardware answers FAIL_OVERLAP and Linux's rmpupdate() retries (issue 13: the
   * transient overlap of two CPUs' RMP work on one 2M region). The retry is the handler the
   * Interleaving runs after the op returns. A shared fault makes no RMPUPDATE.
   */
  private contendRmp(gpa: number): void {
    const at = alignDown(gpa, SZ_4K);
    if ((this.guestActor.pageFlags(at / SZ_4K) & GUEST_PAGE_SHARED) !== 0) return;
    const hpa = GMEM_BASE + at;
    const entry = this.machine.rmp.load(hpa / SZ_4K, this.rmpScratch);
    if (entry.assigned && entry.asid === this.asid) return;
    const region = Math.floor(hpa / SZ_2M);
    const held = this.machine.recorder.someSince(
      0,
      (call) => call.during === undefined && (call.prim === 'rmpupdate' || call.prim === 'psmash') && call.result === 0 && Math.floor(Number(call.args.hpa) / SZ_2M) === region,
    );
    if (held) this.machine.rmpUpdateOverlapped(hpa, { assigned: true, asid: this.asid, gpa: at, size: '4K' });
  }

  /** One `during` entry's op, inside the outer op (Interleaving). */
  private runInner(op: InnerOp, entry: number): InnerOutcome {
    if (op.op === 'touch') {
      const outcome = this.guestActor.touchInterleaved(op.gpa, op.write);
      if (outcome.resume !== undefined) this.contendRmp(op.gpa);
      return outcome;
    }
    const device = this.machine.devices.find((d) => d.id === op.dev);
    if (device?.stalled === true) return { wait: op.dev };
    // DMA API ownership: while dma_sync_*_for_cpu, dma_unmap_* or dma_free_coherent runs on an
    // object, the CPU owns it and its driver has no DMA in flight there.
    const target = op.buf !== undefined ? this.guestActor.buffer(op.buf) : op.map !== undefined ? this.guestActor.mapping(op.map) : undefined;
    const key = target === undefined ? undefined : `${op.buf !== undefined ? 'buf' : 'map'}:${target.id}`;
    if (key !== undefined && this.cpuOwned.has(key)) return { skipped: `the CPU owns ${key.replace(':', ' ')} while the op runs (DMA API)` };
    return this.dma(op, entry);
  }

  private finish(
    index: number,
    op: Op,
    outcome: Outcome,
    dmas: DmaRecord[],
    interleaved?: readonly InterleavedRecord[],
    objects: readonly LiveObject[] = [],
  ): RecordedStep {
    const events = this.machine.recorder.endStep();
    if (index >= 0) this.meter.endOp(events.callCount);
    this.hostActor.observe(events.records);
    const log = this.guestActor.takeLog();
    // A boot that Linux would not survive is reported with the first op's events.
    const bootFatal = index >= 0 && this.bootFatal.length > 0;
    const step = new RecordedStep(index, op, events, dmas, bootFatal ? [...this.bootFatal, ...log.events] : log.events);
    if (outcome.skipped !== undefined) step.skipped = outcome.skipped;
    if (bootFatal) {
      log.errors = [...this.bootFatal.flatMap((event) => (event.kind === 'fatal' ? [event.message] : [])), ...log.errors];
      this.bootFatal = [];
    }
    if (log.errors.length > 0) step.guestErrors = log.errors;
    if (log.result !== undefined) step.result = log.result;
    if (interleaved !== undefined) step.interleaved = interleaved;
    if (log.converting.length > 0 || objects.length > 0) {
      // The log's list is the step's own (takeLog()), or its shared empty one: the objects'
      // ranges go after the log's without copying them (an op converting pages 4K by 4K logs
      // hundreds).
      const gfns = log.converting.length > 0 ? log.converting : [];
      const kinds: BeingConverted['objects'][number][] = [];
      if (objects.length > 0) {
        for (const o of objects) for (const range of o.gfns) gfns.push(range);
        for (const o of objects) kinds.push({ kind: o.kind, id: o.id });
      }
      const converting: BeingConverted = { gfns, objects: kinds };
      step.converting = converting;
    }
    return step;
  }

  private asPolicyError(error: unknown, policy: string): unknown {
    if (error instanceof PolicyError) return error;
    if (error instanceof BudgetExceeded) return new PolicyError(policy, error.message);
    if (error instanceof HardwareUsageError) return new PolicyError(policy, error.message);
    return error;
  }

  private env(policy: string, rng: () => number, machine: Machine): ActorEnv {
    const charge = (): void => {
      if (!this.booting) this.meter.charge(machine.recorder.callCount);
      else if (machine.recorder.callCount > this.bootBudget) {
        throw new BudgetExceeded(`boot budget exceeded (${this.bootBudget} primitive calls)`);
      }
    };
    const chargeRun = (calls: number): boolean => {
      // The last of the `calls` charges would see this many calls made before it.
      const last = machine.recorder.callCount + calls - 1;
      if (this.booting) return last <= this.bootBudget;
      if (!this.meter.fits(last)) return false;
      this.meter.charge(last);
      return true;
    };
    const guard = <T>(fn: () => T): T => {
      try {
        return fn();
      } catch (error) {
        if (error instanceof PolicyError) throw error;
        // Charged to the policy whose hook spent it; apply() adds the op.
        if (error instanceof CallBudgetExceeded) {
          error.policy ??= policy;
          throw error;
        }
        // A hook that threw is named (`in hook host io: boom`), as a spent budget or the watchdog names it.
        const hook = hookOf(error);
        throw new PolicyError(policy, error instanceof BudgetExceeded ? error.message : `${hook === undefined ? '' : `in hook ${hook}: `}${describe(error)}`);
      }
    };
    // Policies get the machine with every primitive charged to the step's budget, so a hook that
    // loops on the hardware ends as a policy error instead of hanging the run.
    const wrapped = new Map<PropertyKey, unknown>();
    const policyMachine = new Proxy(machine, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        let fn = wrapped.get(prop);
        if (fn === undefined) {
          const method = value as (...args: unknown[]) => unknown;
          fn = RANGE_METHODS.has(String(prop))
            ? () => {
                throw new Error(`machine.${String(prop)} is the model's own range method (many calls at one charge): a policy makes its calls one by one`);
              }
            : (...args: unknown[]) => {
                charge();
                return method.apply(target, args);
              };
          wrapped.set(prop, fn);
        }
        return fn;
      },
    });
    return { guard, charge, chargeRun, policyMachine, random: rng };
  }

  private buildActors(): Actors {
    const guest = this.guestActor;
    const host = this.hostActor;
    return {
      guest,
      device: { dma: (op) => this.dma(op) },
      host: {
        split: (gpa) => {
          if (gpa >= this.config.guestMemory) return { skipped: `gpa 0x${gpa.toString(16)} is beyond guest memory` };
          host.split(gpa);
          return {};
        },
        sync: () => {
          host.sync();
          return {};
        },
      },
      adversary: { run: (op) => this.adversary(op) },
    };
  }

  /** A device DMA: against a live buffer or mapping (legitimate when in bounds and the device owns it), or a raw IOVA. */
  private dma(op: DeviceOp, during?: number): Outcome {
    if (!this.config.devices.some((d) => d.id === op.dev)) return { skipped: `no device ${op.dev}` };
    if (!(op.len > 0)) return { skipped: 'zero-length DMA' };
    const offset = op.offset ?? 0;
    let iova: number;
    let legit = false;
    let target: DmaRecord['target'];
    if (op.buf !== undefined) {
      const buffer = this.guestActor.buffer(op.buf);
      if (buffer === undefined) return { skipped: 'no live coherent buffer' };
      iova = buffer.iova + offset;
      legit = buffer.dev === op.dev && offset >= 0 && offset + op.len <= buffer.bytes;
      target = { kind: 'buf', id: buffer.id };
    } else if (op.map !== undefined) {
      const mapping = this.guestActor.mapping(op.map);
      if (mapping === undefined) return { skipped: 'no live streaming mapping' };
      iova = mapping.iova + offset;
      legit = mapping.dev === op.dev && offset >= 0 && offset + op.len <= mapping.bytes;
      target = { kind: 'map', id: mapping.id };
    } else if (op.iova !== undefined) {
      iova = op.iova + offset;
    } else {
      return { skipped: 'a DMA needs buf, map or iova' };
    }
    const result = this.machine.dma(op.dev, iova, op.len, op.write);
    // The key order of API 3's records: dev ... legit, tokens, then tokenRuns, result and the optional ones.
    const record: DmaRecord = withTokens({ dev: op.dev, iova, len: op.len, write: op.write, legit }, result.tokenRuns, { result: { ok: result.ok, pieces: result.pieces, faults: result.faults } });
    if (target !== undefined) record.target = target;
    if (during !== undefined) {
      record.during = during;
      record.tdi = this.machine.device(op.dev).tdi;
      record.rmpAtDma = this.rmpAtDma(result.pieces);
    }
    const stray = this.strayFrames(result.pieces);
    if (stray.length > 0) record.strayFrames = stray;
    this.pendingDmas.push(record);
    return {};
  }

  /** The RMP entry of each frame the DMA's pieces reached, now (DmaRecord.rmpAtDma): only for an interleaved DMA. */
  private rmpAtDma(pieces: readonly DmaPiece[]): readonly RmpEntry[] {
    const out: RmpEntry[] = [];
    for (const piece of pieces) {
      const last = Math.floor((piece.hpa + piece.len - 1) / SZ_4K);
      for (let pfn = Math.floor(piece.hpa / SZ_4K); pfn <= last; pfn++) out.push(this.machine.rmp.entry(pfn));
    }
    return out;
  }

  /** The frames the DMA's pieces reached that do not back the page they were reached through, now. */
  private strayFrames(pieces: readonly DmaPiece[]): readonly StrayFrame[] {
    let out: StrayFrame[] | undefined;
    const frames = this.hostActor.frames;
    for (const piece of pieces) {
      // The S2 maps whole 4K pages, so the GPA and the HPA share their offset in the page.
      const pfn = Math.floor(piece.hpa / SZ_4K);
      const gfn = Math.floor(piece.gpa / SZ_4K);
      const pages = Math.ceil((piece.hpa + piece.len) / SZ_4K) - pfn;
      // Stretch by stretch of frames that back their pages (backsRun()), each stray one recorded.
      for (let k = frames.backsRun(pfn, gfn, pages); k < pages; k += 1 + frames.backsRun(pfn + k + 1, gfn + k + 1, pages - k - 1)) {
        const hpa = (pfn + k) * SZ_4K;
        (out ??= []).push({ hpa, gpa: (gfn + k) * SZ_4K, frame: this.hostActor.frame(hpa) });
      }
    }
    return out ?? NO_STRAY_FRAMES;
  }

  private adversary(op: AdversaryOp): Outcome {
    const machine = this.machine;
    try {
      switch (op.op) {
        case 'hw_rmpupdate':
          machine.rmpUpdate(op.hpa, {
            assigned: op.assigned,
            asid: op.asid,
            gpa: op.gpa,
            size: op.size,
            ...(op.immutable !== undefined ? { immutable: op.immutable } : {}),
          });
          break;
        case 'hw_psmash':
          machine.psmash(op.hpa);
          break;
        case 'hw_map':
          if (op.table === 'npt') machine.nptMap(op.gpa, op.hpa, pageBytes(op.size));
          else for (const device of machine.devices) machine.ioMap(device.id, op.gpa, op.hpa, pageBytes(op.size));
          break;
        case 'hw_unmap':
          if (op.table === 'npt') machine.nptUnmap(op.gpa, pageBytes(op.size));
          else for (const device of machine.devices) machine.ioUnmap(device.id, op.gpa, pageBytes(op.size));
          break;
        case 'hw_host_write':
          machine.hostWrite(alignDown(op.hpa, SZ_4K));
          break;
      }
    } catch (error) {
      // The op's own arguments are what the hardware refused: not a policy's fault.
      if (error instanceof HardwareUsageError) return { skipped: `the hardware refused the op: ${error.message}` };
      throw error;
    }
    return {};
  }
}

/**
 * A Step as the engine hands it to oracles: the touched frames as the recorder's ranges, with
 * the per-frame arrays of API v1 expanded only when an oracle reads them (StepEvents caches).
 */
class RecordedStep implements Step {
  // Every own property is made by the constructor, in the order of the step's keys (JSON,
  // `{ ...step }`). `guestEvents`, `faults` and `calls` are data or (where runs were recorded) accessors that
  // expand them on first read: either way in `{ ...step }` and in JSON, as before runs.
  declare readonly index: number;
  declare readonly op: Op;
  declare readonly dmas: readonly DmaRecord[];
  declare guestEvents: readonly GuestEvent[];
  declare readonly faults: readonly Fault[];
  declare readonly frameRanges: readonly FrameRange[];
  declare readonly gfnRanges: readonly FrameRange[];
  declare readonly calls: readonly PrimitiveCall[];
  // Optional fields are set only when they apply (`declare`: no own property otherwise).
  declare skipped?: string;
  declare guestErrors?: readonly string[];
  declare result?: string;
  declare interleaved?: readonly InterleavedRecord[];
  declare converting?: BeingConverted;
  readonly #events: StepEvents;
  readonly #guestEventRecords: readonly GuestEventRecord[];
  #expandedGuestEvents: readonly GuestEvent[] | undefined;
  /** The accessor of a step with runs: one getter for all of them, so that they share a hidden class. */
  static readonly #expandedCalls: PropertyDescriptor = {
    get(this: RecordedStep): readonly PrimitiveCall[] {
      return this.#events.calls;
    },
    enumerable: true,
  };
  static readonly #expandedFaults: PropertyDescriptor = {
    get(this: RecordedStep): readonly Fault[] {
      return this.#events.faults;
    },
    enumerable: true,
  };
  static readonly #expandedEvents: PropertyDescriptor = {
    get(this: RecordedStep): readonly GuestEvent[] {
      return (this.#expandedGuestEvents ??= expandGuestEvents(this.#guestEventRecords));
    },
    // Writable as the plain field it was: a set makes it that field again.
    set(this: RecordedStep, value: readonly GuestEvent[]) {
      Object.defineProperty(this, 'guestEvents', { value, writable: true, enumerable: true, configurable: true });
    },
    enumerable: true,
    configurable: true,
  };

  constructor(index: number, op: Op, events: StepEvents, dmas: readonly DmaRecord[], guestEvents: readonly GuestEvent[]) {
    // An accessor is made as a new property, never by redefining a data property: redefining one
    // that is not the last puts the object in V8's dictionary mode (a hash table for every read
    // the oracles make; a helper measured 799 ns against 45 ns to build such a step).
    const self = this as { -readonly [K in 'index' | 'op' | 'dmas' | 'faults' | 'frameRanges' | 'gfnRanges' | 'calls']: RecordedStep[K] };
    self.index = index;
    self.op = op;
    self.dmas = dmas;
    this.#events = events;
    // The records as the guest logged them (GuestLog.events): runs stand for several events.
    this.#guestEventRecords = guestEvents;
    if (guestEvents.some(isEventRun)) Object.defineProperty(this, 'guestEvents', RecordedStep.#expandedEvents);
    else this.guestEvents = guestEvents;
    if (events.hasFaultRuns) Object.defineProperty(this, 'faults', RecordedStep.#expandedFaults);
    else self.faults = events.faults;
    self.frameRanges = events.frameRanges;
    self.gfnRanges = events.gfnRanges;
    if (events.hasRuns) Object.defineProperty(this, 'calls', RecordedStep.#expandedCalls);
    else self.calls = events.records;
  }

  get guestEventRuns(): readonly GuestEventRecord[] {
    return this.#guestEventRecords;
  }

  get frames(): readonly number[] {
    return this.#events.frames;
  }

  get callRuns(): readonly CallRecord[] {
    return this.#events.records;
  }

  /** The faults as recorded (a per-page loop's may be one FaultRun): faultRecordsOf() reads them. */
  get faultRecords(): readonly FaultRecord[] {
    return this.#events.faultRecords;
  }

  /**
   * Freezes what this step recorded, all the way down (freezeDeep): the boot record of every
   * world, fresh or restored, is read-only data (World.boot), so restored worlds may share it
   * (shared()) and an oracle that tried to change it fails alike with or without the boot cache.
   */
  freeze(): this {
    for (const part of [this.#events.records, this.#events.faultRecords, this.frameRanges, this.gfnRanges, this.op, this.dmas, this.#guestEventRecords, this.#expandedGuestEvents]) freezeDeep(part);
    for (const key of ['skipped', 'guestErrors', 'result', 'interleaved', 'converting'] as const) freezeDeep(this[key]);
    return this;
  }

  /**
   * The boot record of a world restored from this frozen one's (boot-cache.ts): a record of its
   * own over the same calls, faults and events. Copying boot's thousands of calls per case would
   * cost more than the rest of a 64 MiB world.
   */
  shared(): RecordedStep {
    const events = this.#events;
    // The events themselves: frozen, so their expansions (`calls`, `faults`) are too, made once for every restored world.
    const out = new RecordedStep(this.index, this.op, events, this.dmas, this.#guestEventRecords);
    for (const key of ['skipped', 'guestErrors', 'result', 'interleaved', 'converting'] as const) {
      if (this[key] !== undefined) (out as unknown as Record<string, unknown>)[key] = this[key];
    }
    return out;
  }

  get gfns(): readonly number[] {
    return this.#events.gfns;
  }
}

/** A booted machine and its actors: built fresh, or copied from a template (SimWorld.restore). */
interface Booted {
  machine: Machine;
  hostEnv: ActorEnv;
  guestEnv: ActorEnv;
  host: Host;
  guest: Guest;
  /** The record of boot: a restored world shares the template's (frozen); a fresh one records its own. */
  boot?: RecordedStep;
  bootError: PolicyError | undefined;
}

const NOTHING_OWNED: ReadonlySet<string> = new Set();

const isStalled = (device: DeviceView): boolean => device.stalled;
/** A DMA that reached no stray frame (most): nothing to keep. */
const NO_STRAY_FRAMES: readonly StrayFrame[] = [];
const NO_OBJECTS: readonly LiveObject[] = [];

function sameObjects<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

interface LiveObject {
  kind: 'buf' | 'map';
  id: number;
  dev: number;
  gfns: { start: number; end: number }[];
}

function hasId(list: readonly { id: number }[], id: number): boolean {
  for (let i = 0; i < list.length; i++) if (list[i]!.id === id) return true;
  return false;
}

const bufferObject = (b: CoherentBuffer): LiveObject => ({ kind: 'buf', id: b.id, dev: b.dev, gfns: [gfnRange(b.gpa, b.bytes)] });
const mappingObject = (m: StreamingMapping): LiveObject => ({ kind: 'map', id: m.id, dev: m.dev, gfns: mappingGfns(m) });

const gfnRange = (gpa: number, bytes: number): { start: number; end: number } => ({
  start: Math.floor(gpa / SZ_4K),
  end: Math.ceil((gpa + bytes) / SZ_4K),
});

/** A streaming mapping's pages: the original buffer and its swiotlb slot. */
function mappingGfns(mapping: { orig: number; bytes: number; tlbAddr: number | undefined }): { start: number; end: number }[] {
  const out = [gfnRange(mapping.orig, mapping.bytes)];
  if (mapping.tlbAddr !== undefined) out.push(gfnRange(mapping.tlbAddr, mapping.bytes));
  return out;
}

/** Build and boot the world of a case. */
export function createWorld(config: Config, policies: { host: HostPolicy; guest: GuestPolicy }, seed: string, meter?: CallMeter): World {
  return new SimWorld(config, policies, seed, meter);
}

/**
 * The world of a case as a copy of `template`, a world createWorld() booted for the same config
 * and policy objects whose isReusable() holds (boot-cache.ts).
 */
export function restoreWorld(template: World, config: Config, policies: { host: HostPolicy; guest: GuestPolicy }, seed: string, meter?: CallMeter): World {
  if (!(template instanceof SimWorld)) throw new Error('restoreWorld: the template is not a world createWorld() built');
  return new SimWorld(config, policies, seed, meter, template);
}

/** Whether `world` may be a boot template: it booted cleanly and drew no randomness (SimWorld.reusable). */
export function isReusable(world: World): boolean {
  return world instanceof SimWorld && world.reusable;
}

/** Every event of `records`, one by one (Step.guestEvents of a step with runs); frozen records expand frozen. */
function expandGuestEvents(records: readonly GuestEventRecord[]): readonly GuestEvent[] {
  const out: GuestEvent[] = [];
  for (const record of records) for (let i = 0, n = eventsIn(record); i < n; i++) out.push(eventAt(record, i));
  if (Object.isFrozen(records)) freezeDeep(out);
  return out;
}
