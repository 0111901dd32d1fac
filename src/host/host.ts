// The simulated hypervisor: KVM (nested page faults, PSC handling, guest_memfd and the RMP), the
// VMM (QEMU's memory conversion and its VFIO/iommufd mappings) and the host IOMMU driver. Every
// decision a host policy may want to change goes through the policy's hooks (policies/types.ts);
// what is here is the mechanism and KVM's default answers.
//
// Sources (research/amd-snp.md sections 2-3, 5, 7): sev_handle_rmp_fault(), sev_gmem_prepare()
// and is_large_rmp_possible(), sev_gmem_max_mapping_level(), sev_gmem_invalidate(),
// snp_begin_psc() / snp_complete_psc() in arch/x86/kvm/svm/sev.c; kvm_convert_memory() in QEMU.

import { describeValue } from '../policies/check.ts';
import type { HostFrame, HostView, Leaf } from '../api.ts';
import type { Fault, PrimitiveCall, RmpEntry } from '../model/types.ts';
import { PSMASH_FAIL_INPUT, RMPUPDATE_FAIL_OVERLAP, RMPUPDATE_OK, type RmpUpdateArgs } from '../model/types.ts';
import type { Machine } from '../model/machine.ts';
import { defaultRmpEntry } from '../model/rmp.ts';
import type { Config } from '../ops/types.ts';
import { alignDown, FRAMES_PER_2M, offsetIn, type PageSize, pfnOf, SZ_2M, SZ_4K } from '../model/size.ts';
import type {
  ConvertRequest,
  HostBacking,
  HostContext,
  HostPolicy,
  IoEvent,
  ConvertStep,
  KvmHelpers,
  NptSmash,
  PrivateFault,
  SmashRequest,
  SplitRequest,
} from '../policies/types.ts';
import type { Hypervisor, PscDesc } from '../guest/ghcb.ts';
import { Backing, GMEM_BASE, NOT_BACKED, PRIVATE, SHARED, VMM_RAM_BASE, type BackedRun } from './backing.ts';
import type { ActorEnv } from './env.ts';
import { HostFrames } from './frames.ts';
import { Iommu } from './iommu.ts';
import { LeafRun } from './leaf-run.ts';

/** Attempts of one RMPUPDATE that returns FAIL_OVERLAP before the host gives up (see rmpupdate()). */
export const RMPUPDATE_OVERLAP_TRIES = 3;

/** Upstream forces 4K IOMMU pages under SEV-SNP. */
export const DEFAULT_IO_PAGE_SIZES: readonly number[] = [SZ_4K];

/** rmp_make_shared(pfn, PG_LEVEL_4K)'s RMPUPDATE. */
const MAKE_SHARED_4K: RmpUpdateArgs = Object.freeze({ assigned: false, asid: 0, gpa: 0, size: '4K' });
const NO_DEVICES: readonly number[] = Object.freeze([]);

export class Host implements HostView, Hypervisor {
  readonly backingState: Backing;
  readonly frames: HostFrames;
  readonly iommu: Iommu;
  readonly ctx: HostContext;
  private readonly kvm: KvmHelpers;
  /** Devices with IO unmaps (gathered invalidations, deferred frees) not yet flushed. */
  private readonly pendingFlush = new Set<number>();
  /** Inside the policy's smash hook (kvm.psmash from there would recurse). */
  private smashing = false;

  constructor(
    private readonly machine: Machine,
    private readonly config: Config,
    private readonly policy: HostPolicy,
    private readonly env: ActorEnv,
  ) {
    this.frames = new HostFrames(machine, config.guestMemory, config.discard);
    this.backingState = new Backing(config.guestMemory, config.hugeBacking, this.frames);
    // Pins follow every IO map, unmap and flush as it happens, whoever calls the primitive.
    machine.recorder.observer = this.frames;
    this.iommu = new Iommu(machine, this.backingState, this.frames, env);
    this.kvm = this.kvmHelpers();
    this.ctx = { config, policy: policy.name, state: {}, machine: env.policyMachine, kvm: this.kvm, iommu: this.iommu, ...this.closures() };
  }

  /**
   * Sets the closures of ctx and ctx.kvm again, over this host: a copy the boot cache restored
   * (model/graph-copy.ts) leaves them out, as they would call the template's host.
   */
  bind(): void {
    Object.assign(this.kvm, this.kvmHelpers());
    Object.assign(this.ctx, this.closures());
  }

  private kvmHelpers(): KvmHelpers {
    return {
      defaultPrivateFault: (fault, options) => this.defaultPrivateFault(fault, options?.maxSize),
      defaultConvert: (request, options) => this.defaultConvert(request, options?.eager === true, options?.skip),
      defaultSplit: (request) => this.defaultSplit(request),
      defaultSmash: (request) => this.defaultSmash(request),
      smashNpt: (gpa, npt) => this.smashNpt(gpa, npt),
      splitFolio: (gpa) => this.backingState.splitFolio(gpa),
      psmash: (gpa, options) => this.smash(gpa, 'fault', options?.npt ?? 'zap'),
      zapNpt: (gpa, len) => this.zapNpt(gpa, len),
    };
  }

  /** The function members of the policy's HostContext. */
  private closures(): Pick<HostContext, 'random' | 'backing' | 'gmemFrame' | 'vmmFrame' | 'folioSize'> {
    const { backingState: backing, config, env } = this;
    return {
      random: () => env.random(),
      backing: (gpa) => backing.backing(gpa),
      gmemFrame: (gpa) => GMEM_BASE + alignDown(gpa, SZ_4K),
      // In-place conversion has no RAM block: the VMM's memory for a GPA is its guest_memfd frame.
      vmmFrame: (gpa) => (config.discard === 'in-place' ? GMEM_BASE : VMM_RAM_BASE) + alignDown(gpa, SZ_4K),
      folioSize: (gpa) => backing.folioSize(gpa),
    };
  }

  // ---- HostView ----------------------------------------------------------------------------

  backing(gpa: number): HostBacking | undefined {
    return this.backingState.backing(gpa);
  }

  sharedHpa(gpa: number): number {
    return this.backingState.sharedHpa(gpa);
  }

  backingHpa(gpa: number): number {
    return this.backingState.backingHpa(gpa);
  }

  backingRunEnd(gfn: number, limit: number): number {
    return this.backingState.runEnd(gfn, limit);
  }

  frame(hpa: number): HostFrame {
    return this.frames.frame(hpa);
  }

  get flushPending(): boolean {
    return this.pendingFlush.size > 0;
  }

  /** Track gathered-but-unflushed IO unmaps from the primitive calls of a step. */
  observe(calls: readonly PrimitiveCall[]): void {
    for (const call of calls) {
      // The name first: reading `args.dev` from every call's args (a dozen shapes) is the slow part.
      const prim = call.prim;
      if (prim !== 'io_unmap' && prim !== 'io_split' && prim !== 'iommu_flush') continue;
      const dev = call.args.dev;
      if (typeof dev !== 'number') continue;
      if (prim === 'iommu_flush') this.pendingFlush.delete(dev);
      else this.pendingFlush.add(dev);
    }
  }

  // ---- lifecycle and host ops --------------------------------------------------------------

  start(): void {
    const policy = this.policy;
    if (policy.start) this.env.guard(() => policy.start?.(this.ctx));
  }

  /** host_split {gpa}. */
  split(gpa: number): void {
    const request: SplitRequest = { gpa: alignDown(gpa, SZ_2M) };
    const policy = this.policy;
    this.env.guard(() => (policy.split ? policy.split(this.ctx, request) : this.defaultSplit(request)));
  }

  /** host_sync: the flush point. */
  sync(): void {
    const policy = this.policy;
    this.env.guard(() => {
      if (policy.flush) policy.flush(this.ctx);
      else for (const device of this.machine.devices) this.iommu.flush(device.id);
    });
  }

  // ---- Hypervisor (what the guest reaches) -------------------------------------------------

  tdiRun(dev: number): string {
    const locked = this.machine.tdiSetState(dev, 'locked');
    if (locked !== 'ok') return locked;
    // The VMM moves the device's IOMMUFD to the private view before the TDI runs.
    this.iommu.setView(dev, 'private');
    this.io({ kind: 'attach', dev, view: 'private' });
    return this.machine.tdiSetState(dev, 'run');
  }

  tdiStop(dev: number): string {
    const result = this.machine.tdiSetState(dev, 'unlocked');
    if (result !== 'ok') return result;
    if (this.iommu.view(dev) !== 'shared') {
      this.iommu.setView(dev, 'shared');
      this.io({ kind: 'attach', dev, view: 'shared' });
    }
    return result;
  }

  /**
   * Hypervisor.faultInPlan(): where defaultPrivateFault() would only map the NPT at 4K: no
   * privateFault hook, pages backed private (no conversion, nothing to prepare) whose RMP entries
   * are assigned at 4K (so the level is 4K), within guest memory. The guest knows the NPT maps
   * none of them (a not-present fault), so mapPrivateNpt() zaps nothing.
   */
  faultInPlan(gpa: number, pages: number): { pages: number; hpa: number } {
    const none = { pages: 0, hpa: 0 };
    if (this.policy.privateFault !== undefined || offsetIn(gpa, SZ_4K) !== 0) return none;
    const gfn = gpa / SZ_4K;
    const limit = Math.min(gfn + pages, Math.floor(this.config.guestMemory / SZ_4K));
    if (gfn >= limit || this.backingState.state(gfn) !== PRIVATE) return none;
    const entry = this.rmpEntry(gpa);
    if (!entry.assigned || entry.size !== '4K') return none;
    const hpa = this.gmem(gpa);
    // Private pages are backed linearly (gmem()), and an RMP run keeps assigned and size.
    const backed = this.backingState.runEnd(gfn, limit);
    const rmpEnd = this.machine.rmp.runEnd(pfnOf(hpa), pfnOf(hpa) + (backed - gfn));
    return { pages: rmpEnd - pfnOf(hpa), hpa };
  }

  /**
   * Hypervisor.prepareFaultIn(): where defaultPrivateFault() resolves each PVALIDATE's
   * not-present #NPF by preparing the page at 4K (sev_gmem_prepare(): the VMM RAM frame
   * discarded, RMPUPDATE assigned 4K, a private IO map event) and mapping it at 4K, and nothing
   * else, the leading such pages and their PVALIDATEs run as one block of calls
   * (Machine.pvalidateFaultIn()). That holds with no privateFault hook, for pages the host does
   * not back yet (nothing to convert first), in a region where prepare() would not try 2M (a 4K
   * folio, a region backing a page already, or HostPolicy.privateFaultMaxSize '4K'), while no device sees private memory and the io
   * hook ignores events no device sees (HostPolicy.ioIgnoresUnseen; the default hook does): no
   * hook would run between the calls, and for pages the NPT does not map (a not-present fault,
   * so mapPrivateNpt() zaps nothing). Where devices see private memory (a trusted device in RUN),
   * the same holds when the io hook answers each page's map event by mapping the page at 4K in
   * each of them (HostPolicy.ioMapsPages; the default hook does) and their S2s map nothing over
   * the pages: one io_map run per device joins the block. Returns the pages done (0: they go one
   * by one).
   */
  prepareFaultIn(gpa: number, pages: number): number {
    const policy = this.policy;
    if (policy.privateFault !== undefined || offsetIn(gpa, SZ_4K) !== 0 || !this.machine.recorder.batching) return 0;
    const seeing = this.iommu.anySeeing(false);
    if (policy.io !== undefined && (seeing ? policy.ioMapsPages !== true : policy.ioIgnoresUnseen !== true)) return 0;
    const backing = this.backingState;
    const gfn = gpa / SZ_4K;
    const index = Math.floor(gfn / FRAMES_PER_2M);
    // Within one 2M region, as prepare() decides per region.
    const limit = Math.min(gfn + pages, (index + 1) * FRAMES_PER_2M, Math.floor(this.config.guestMemory / SZ_4K));
    if (gfn >= limit || backing.state(gfn) !== NOT_BACKED) return 0;
    if (backing.folioSize(gpa) === '2M' && policy.privateFaultMaxSize !== '4K' && backing.privateCount(index) === 0 && backing.sharedCount(index) === 0) return 0;
    // Checked last: the cheap refusals above spare a page that goes on its own the NPT scan.
    const backed = backing.runEnd(gfn, limit);
    if (backed - gfn < 2) return 0;
    let end = this.machine.npt.nextMapped(gpa, backed * SZ_4K);
    const devices = seeing ? this.iommu.devicesSeeing(false) : NO_DEVICES;
    for (const dev of devices) {
      // The pages' io_map calls each place one 4K leaf where nothing is mapped yet.
      const s2 = this.machine.device(dev).s2;
      if (!s2.pgsizes.includes(SZ_4K)) return 0;
      end = s2.nextMapped(gpa, end);
    }
    const count = (end - gpa) / SZ_4K;
    // Calls a page: the PVALIDATE's #NPF, the RMPUPDATE, an io_map per device, the npt_map, the
    // PVALIDATE again.
    if (count < 2 || !this.env.chargeRun((4 + devices.length) * count)) return 0;
    const done = this.machine.pvalidateFaultIn(gpa, this.gmem(gpa), count, true, this.machine.asid, devices);
    if (done === 0) return 0;
    // What prepare() does besides the RMPUPDATE, for the pages done.
    this.frames.discardRam(gpa, done * SZ_4K);
    backing.setRange(gfn, done, PRIVATE);
    return done;
  }

  npf(fault: Fault, access: { private: boolean; write: boolean }): void {
    const gpa = alignDown(fault.addr, SZ_4K);
    if (gpa >= this.config.guestMemory) return;
    if (!access.private) {
      this.sharedFault(gpa);
      return;
    }
    const index = Math.floor(gpa / SZ_2M);
    const wholeRegion = (index + 1) * SZ_2M <= this.config.guestMemory;
    const privateFault: PrivateFault = {
      gpa,
      write: access.write,
      kind: fault.sizem === true ? 'sizem' : fault.rmp === true ? 'rmp' : 'not-present',
      reason: fault.reason,
      maxLevel: wholeRegion && this.backingState.sharedCount(index) === 0 ? '2M' : '4K',
    };
    const policy = this.policy;
    this.env.guard(() => (policy.privateFault ? policy.privateFault(this.ctx, privateFault) : this.defaultPrivateFault(privateFault, policy.privateFaultMaxSize)));
  }

  /**
   * SVM_VMGEXIT_PSC (snp_begin_psc()): validate each entry, coalesce adjacent entries of one op
   * and size, hand each run to the policy (KVM_HC_MAP_GPA_RANGE -> the VMM), advance cur_entry /
   * cur_page by what was done, and return to the guest when a run was left incomplete.
   */
  psc(desc: PscDesc): string | undefined {
    const { entries } = desc;
    if (desc.endEntry >= entries.length || desc.curEntry < 0) return 'PSC_INVALID_HDR';
    let idx = desc.curEntry;
    while (idx <= desc.endEntry) {
      this.env.charge();
      const first = entries[idx];
      if (first === undefined) return 'PSC_INVALID_HDR';
      const npages = first.size === '2M' ? FRAMES_PER_2M : 1;
      if (first.curPage > npages) return 'PSC_INVALID_ENTRY';
      if (first.size === '2M' && offsetIn(first.gfn, FRAMES_PER_2M) !== 0) return 'PSC_INVALID_ENTRY';
      let pages = npages - first.curPage;
      if (pages === 0) {
        // An entry already done is stepped over (snp_begin_psc() advances hdr.cur_entry).
        desc.curEntry = ++idx;
        continue;
      }
      // A 2M entry already partly done continues as 4K pages and is never coalesced with a 2M
      // entry (snp_begin_psc(): huge = false, then `!!entry.pagesize != huge`). KVM compares the
      // next entry's gfn with entry_start.gfn + npages, the entry's own gfn plus the pages *left*,
      // so the 4K entry right after a partly done 2M one does not follow it either: the partly
      // done entry goes alone (as the comment there wants). Mirrored as written.
      const pageSize: PageSize = first.size === '2M' && first.curPage === 0 ? '2M' : '4K';
      let last = idx;
      while (last + 1 <= desc.endEntry) {
        const next = entries[last + 1];
        if (next === undefined || next.op !== first.op || next.curPage !== 0 || next.size !== pageSize) break;
        if (next.gfn !== first.gfn + pages) break;
        if (next.size === '2M' && offsetIn(next.gfn, FRAMES_PER_2M) !== 0) break;
        pages += next.size === '2M' ? FRAMES_PER_2M : 1;
        last++;
      }
      const gpa = (first.gfn + first.curPage) * SZ_4K;
      const request: ConvertRequest = { gpa, len: pages * SZ_4K, to: first.op, pageSize };
      const done = this.convert(request);
      // Advance cur_entry / cur_page over what the host reports done.
      let left = Math.floor(done / SZ_4K);
      for (let i = idx; i <= last; i++) {
        const entry = entries[i];
        if (entry === undefined) break;
        const total = entry.size === '2M' ? FRAMES_PER_2M : 1;
        const step = Math.min(left, total - entry.curPage);
        entry.curPage += step;
        left -= step;
        if (entry.curPage === total) desc.curEntry = i + 1;
        else break;
      }
      if (done < request.len) return undefined;
      idx = last + 1;
    }
    desc.curEntry = desc.endEntry + 1;
    return undefined;
  }

  // ---- decision points ---------------------------------------------------------------------

  /** The policy's convert hook; returns the bytes done (nothing returned: all of them). */
  private convert(request: ConvertRequest): number {
    const policy = this.policy;
    return this.env.guard(() => {
      const result: unknown = policy.convert ? policy.convert(this.ctx, request) : this.defaultConvert(request, false);
      if (result === undefined) return request.len;
      // Validated at the boundary (issue 14, item 17), no silent correction (issue 12): KVM
      // advances cur_page by whole pages, never past the request.
      if (typeof result !== 'number' || !Number.isSafeInteger(result) || result < 0 || result > request.len || offsetIn(result, SZ_4K) !== 0) {
        throw new Error(
          `convert returned ${describeValue(result)} bytes done for the request of ${request.len} bytes at gpa 0x${request.gpa.toString(16)}: expected a multiple of 4096 from 0 to ${request.len} (or nothing for all)`,
        );
      }
      return result;
    });
  }

  private io(event: IoEvent): void {
    const policy = this.policy;
    this.env.guard(() => (policy.io ? policy.io(this.ctx, event) : this.iommu.defaultIo(event)));
  }

  private ioRuns(kind: 'map' | 'unmap', shared: boolean, runs: readonly BackedRun[]): void {
    if (runs.length === 0) return;
    const devices = this.iommu.devicesSeeing(shared);
    for (const run of runs) {
      if (kind === 'map') this.io({ kind: 'map', gpa: run.gpa, len: run.len, hpa: run.hpa, shared, devices });
      else this.io({ kind: 'unmap', gpa: run.gpa, len: run.len, shared, devices });
    }
  }

  // ---- KVM defaults --------------------------------------------------------------------------

  private gmem(gpa: number): number {
    return GMEM_BASE + gpa;
  }

  /** The RMP entry of the gmem frame behind `gpa`, in a scratch entry valid until the next call. */
  private rmpEntry(gpa: number): RmpEntry {
    return this.machine.rmp.load(pfnOf(this.gmem(gpa)), this.rmpScratch);
  }

  private readonly rmpScratch: RmpEntry = defaultRmpEntry();

  zapNpt(gpa: number, len: number): void {
    // Leaf by leaf, whole leaves (one npt_unmap each), walking on from the end of the last one.
    // Where no interleaved op can look in between (Recorder.batching), adjacent leaves of one
    // size are unmapped together: one walk, one run of npt_unmap calls (unmapLeaves()).
    const npt = this.machine.npt;
    const leaf = this.leafScratch;
    const run = this.leafRun.start(this.machine.recorder.batching);
    const end = gpa + len;
    let at = gpa;
    while (at < end) {
      if (!npt.leafInto(at, leaf)) {
        // No leaf holds a 4K-aligned `at`: none can start before at + 4K either (fault-ins zap
        // one page, so this spares their walk).
        at = end - at <= SZ_4K && offsetIn(at, SZ_4K) === 0 ? end : npt.nextMapped(at, end);
        continue;
      }
      // Read before the unmap: an interleaved op may look leaves up during the call.
      const iova = leaf.iova;
      const size = leaf.size;
      at = iova + size;
      if (run.extend(iova, size)) continue;
      this.unmapNptLeaves(run);
      if (run.begin(iova, size)) continue;
      this.env.charge();
      this.machine.nptUnmap(iova, size);
    }
    this.unmapNptLeaves(run);
  }

  /** The leaves zapNpt() gathered, unmapped (one run where the budget takes all of them at once). */
  private unmapNptLeaves(run: LeafRun): void {
    if (run.count === 0) return;
    if (run.count > 1 && this.env.chargeRun(run.count)) {
      this.machine.nptUnmapLeaves(run.iova, run.size, run.count);
    } else {
      for (let i = 0; i < run.count; i++) {
        this.env.charge();
        this.machine.nptUnmap(run.iova + i * run.size, run.size);
      }
    }
    run.count = 0;
  }

  private readonly leafRun = new LeafRun();

  /** The NPT leaf a lookup reads (leafInto), so that a lookup allocates nothing. */
  private readonly leafScratch: Leaf = { iova: 0, pa: 0, size: 0 };

  /** The NPT leaf at `gpa` in a scratch object valid until the next lookup, or undefined. */
  private nptLeaf(gpa: number): Leaf | undefined {
    return this.machine.npt.leafInto(gpa, this.leafScratch) ? this.leafScratch : undefined;
  }

  /**
   * The one decision point of every RMP page-size change (2M -> 4K): a SIZEM or RMP #NPF, a partial
   * conversion, host_split. The policy's smash hook performs the change before anything is
   * PSMASHed. Returns 0 when the entry is 4K afterwards, else PSMASH_FAIL_INPUT.
   */
  smash(gpa: number, cause: SmashRequest['cause'], npt: NptSmash): number {
    const region = alignDown(gpa, SZ_2M);
    const entry = this.rmpEntry(region);
    if (!entry.assigned || entry.size !== '2M') return PSMASH_FAIL_INPUT;
    if (this.smashing) throw new Error('kvm.psmash called from the smash hook: use ctx.kvm.defaultSmash or the primitives');
    const request: SmashRequest = { gpa: region, hpa: this.gmem(region), cause, npt, devices: this.machine.devices.map((d) => d.id) };
    const policy = this.policy;
    this.smashing = true;
    try {
      this.env.guard(() => (policy.smash ? policy.smash(this.ctx, request) : this.defaultSmash(request)));
    } finally {
      this.smashing = false;
    }
    return this.rmpEntry(region).size === '2M' ? PSMASH_FAIL_INPUT : 0;
  }

  private defaultSmash(request: SmashRequest): number {
    this.env.charge();
    const status = this.machine.psmash(request.hpa);
    if (status !== 0) return status;
    this.smashNpt(request.gpa, request.npt);
    this.io({ kind: 'smash', gpa: request.gpa, devices: request.devices });
    return status;
  }

  private smashNpt(gpa: number, npt: NptSmash): void {
    if (npt === 'keep') return;
    const region = alignDown(gpa, SZ_2M);
    const leaf = this.nptLeaf(region);
    if (leaf === undefined || leaf.size < SZ_2M) return;
    this.env.charge();
    if (npt === 'split' && leaf.size === SZ_2M) this.machine.nptSplit(region, SZ_4K);
    else this.zapNpt(region, SZ_2M);
  }

  private defaultPrivateFault(fault: PrivateFault, maxSize: PageSize | undefined): void {
    const gpa = alignDown(fault.gpa, SZ_4K);
    const region = alignDown(gpa, SZ_2M);
    const gfn = gpa / SZ_4K;
    // sev_handle_rmp_fault(): a 4K access or PVALIDATE on a 2M RMP entry -> PSMASH + zap.
    if (fault.kind === 'sizem' || fault.reason === 'npt 4K over rmp 2M') {
      this.smash(region, 'fault', 'zap');
      return;
    }
    if (this.backingState.state(gfn) === SHARED) {
      // A private access to a page the host has shared: KVM_EXIT_MEMORY_FAULT, and the VMM
      // converts it back (an implicit conversion).
      this.convert({ gpa, len: SZ_4K, to: 'private', pageSize: '4K' });
      if (this.backingState.state(gfn) === SHARED) return;
    }
    const folio = this.backingState.folioSize(gpa);
    if (this.backingState.state(gfn) === NOT_BACKED) this.prepare(gpa, folio, maxSize);
    if (this.backingState.state(gfn) !== PRIVATE) return;
    const entry = this.rmpEntry(gpa);
    if (!entry.assigned) return;
    const level: PageSize =
      fault.maxLevel === '2M' && folio === '2M' && entry.size === '2M' && maxSize !== '4K' ? '2M' : '4K';
    this.mapPrivateNpt(level === '2M' ? region : gpa, level);
  }

  /** sev_gmem_prepare(): the RMP entry of a newly faulted guest_memfd page (2M if possible). */
  private prepare(gpa: number, folio: PageSize, maxSize: PageSize | undefined): void {
    const region = alignDown(gpa, SZ_2M);
    // Private memory now lives in guest_memfd: the VMM RAM frame behind the GPA is not used again.
    this.frames.discardRam(gpa, SZ_4K);
    const index = region / SZ_2M;
    const asid = this.machine.asid;
    // is_large_rmp_possible(): a 2M folio whose whole frame range is unassigned. KVM reads the RMP
    // for that (is_pfn_range_shared()); the model tries the 2M RMPUPDATE once, and an overlap (a
    // frame assigned behind the host's back, by a hostile host's raw ops) means 4K, as there.
    if (folio === '2M' && maxSize !== '4K' && this.backingState.privateCount(index) === 0 && this.backingState.sharedCount(index) === 0) {
      this.env.charge();
      const status = this.machine.rmpUpdate(this.gmem(region), { assigned: true, asid, gpa: region, size: '2M' });
      if (status === RMPUPDATE_OK) {
        this.backingState.setRange(index * FRAMES_PER_2M, FRAMES_PER_2M, PRIVATE);
        this.ioRuns('map', false, [{ gpa: region, len: SZ_2M, hpa: this.gmem(region) }]);
        return;
      }
    }
    const status = this.rmpupdate(this.gmem(gpa), { assigned: true, asid, gpa, size: '4K' });
    if (status !== RMPUPDATE_OK) return;
    this.backingState.set(gpa / SZ_4K, PRIVATE);
    this.ioRuns('map', false, [{ gpa, len: SZ_4K, hpa: this.gmem(gpa) }]);
  }

  /**
   * Linux's rmpupdate() (arch/x86/virt/svm/sev.c): RMPUPDATE again while it returns FAIL_OVERLAP,
   * which Linux takes for a concurrent RMP update of the same 2M region that will clear. The
   * transient kind is met by an interleaved touch's fault handler, which retries after the op
   * (World.contendRmp); the host's own procedures never run beside another, so an overlap met here
   * is the RMP's state (4K and 2M entries over one region) and never clears: after
   * RMPUPDATE_OVERLAP_TRIES the host gives up with a policy error naming the entry, where Linux
   * would spin on that CPU forever.
   */
  private rmpupdate(hpa: number, args: RmpUpdateArgs): number {
    for (let attempt = 1; ; attempt++) {
      this.env.charge();
      const status = this.machine.rmpUpdate(hpa, args);
      if (status !== RMPUPDATE_FAIL_OVERLAP) return status;
      if (attempt >= RMPUPDATE_OVERLAP_TRIES) {
        throw new Error(
          `rmpupdate(hpa 0x${hpa.toString(16)}, ${args.size}, ${args.assigned ? 'assigned' : 'shared'}) still FAIL_OVERLAP after ${attempt} tries: the RMP holds a 4K and a 2M state over one 2M region, and Linux's rmpupdate() would spin forever`,
        );
      }
    }
  }

  /**
   * rmp_make_shared(pfn, PG_LEVEL_4K), through rmpupdate(), for `count` frames from `hpa`, one
   * after the other: where no interleaved op can run in between and the budget takes them all,
   * the leading frames that succeed are one run of calls (Machine.rmpUpdate4KRun()), and the frame
   * that would not goes through rmpupdate() and its retries.
   */
  private makeShared4K(hpa: number, count: number): void {
    let done = 0;
    while (done < count) {
      const left = count - done;
      if (left > 1 && this.machine.recorder.batching && this.env.chargeRun(left)) {
        done += this.machine.rmpUpdate4KRun(hpa + done * SZ_4K, left, MAKE_SHARED_4K);
        if (done === count) return;
      }
      this.rmpupdate(hpa + done * SZ_4K, MAKE_SHARED_4K);
      done++;
    }
  }

  private mapPrivateNpt(gpa: number, level: PageSize): void {
    const len = level === '2M' ? SZ_2M : SZ_4K;
    const hpa = this.gmem(gpa);
    const leaf = this.nptLeaf(gpa);
    if (leaf !== undefined && leaf.iova === gpa && leaf.size === len && leaf.pa === hpa) return;
    this.zapNpt(gpa, len);
    this.env.charge();
    this.machine.nptMap(gpa, hpa, len);
  }

  private sharedFault(gpa: number): void {
    const gfn = gpa / SZ_4K;
    if (this.backingState.state(gfn) !== SHARED) {
      // A shared access to a page the host keeps private: the VMM converts it (implicit conversion).
      this.convert({ gpa, len: SZ_4K, to: 'shared', pageSize: '4K' });
      if (this.backingState.state(gfn) !== SHARED) return;
    }
    const region = alignDown(gpa, SZ_2M);
    const index = region / SZ_2M;
    const chunk = this.backingState.chunk(index);
    if (chunk !== undefined && this.backingState.sharedCount(index) === FRAMES_PER_2M) {
      const leaf = this.nptLeaf(region);
      if (leaf !== undefined && leaf.iova === region && leaf.size === SZ_2M && leaf.pa === chunk) return;
      this.zapNpt(region, SZ_2M);
      this.env.charge();
      this.machine.nptMap(region, chunk, SZ_2M);
      return;
    }
    const hpa = this.backingState.sharedFrame(gfn);
    if (hpa === undefined) return;
    const leaf = this.nptLeaf(gpa);
    if (leaf !== undefined && leaf.pa + (gpa - leaf.iova) === hpa) return;
    this.zapNpt(gpa, SZ_4K);
    this.env.charge();
    this.machine.nptMap(gpa, hpa, SZ_4K);
  }

  private defaultConvert(request: ConvertRequest, eager: boolean, skip: readonly ConvertStep[] = []): void {
    const outer = this.skipping;
    this.skipping = skip;
    try {
      this.convertRange(request, eager);
    } finally {
      this.skipping = outer;
    }
  }

  /** A step of defaultConvert the policy asked to leave out (ConvertStep). */
  private skipping: readonly ConvertStep[] = [];
  private does(step: ConvertStep): boolean {
    return !this.skipping.includes(step);
  }

  private convertRange(request: ConvertRequest, eager: boolean): void {
    const start = alignDown(request.gpa, SZ_4K);
    const end = Math.min(this.config.guestMemory, request.gpa + request.len);
    if (end <= start) return;
    if (request.to === 'shared') this.toShared(start, end);
    else this.toPrivate(start, end, eager);
  }

  private toShared(start: number, end: number): void {
    const backing = this.backingState;
    if (backing.allIn(start / SZ_4K, Math.ceil(end / SZ_4K), SHARED)) return;
    // Setting the attributes zaps the NPT over the range (whole leaves).
    if (this.does('zap-npt')) this.zapNpt(start, end - start);
    // sev_gmem_invalidate(): PSMASH 2M entries the range covers only partly; huge guest_memfd
    // splits the folio of a partly converted 2M range.
    for (let region = alignDown(start, SZ_2M); region < end; region += SZ_2M) {
      const whole = region >= start && region + SZ_2M <= end;
      if (whole) continue;
      const entry = this.rmpEntry(region);
      if (entry.assigned && entry.size === '2M' && this.does('smash')) this.smash(region, 'convert', 'zap');
      backing.splitFolio(region);
    }
    // The private view loses the range before the frames go back to the hypervisor.
    if (this.does('io-unmap')) this.ioRuns('unmap', false, this.collectRuns(start, end, PRIVATE));
    const mapped: BackedRun[] = [];
    for (let region = alignDown(start, SZ_2M); region < end; region += SZ_2M) {
      const index = region / SZ_2M;
      const from = Math.max(start, region);
      const to = Math.min(end, region + SZ_2M);
      const whole = from === region && to === region + SZ_2M;
      const entry = this.rmpEntry(region);
      if (!this.does('rmp')) {
        // The policy leaves the RMP as it is.
      } else if (whole && entry.assigned && entry.size === '2M') {
        // rmp_make_shared(pfn, PG_LEVEL_2M).
        this.rmpupdate(this.gmem(region), { assigned: false, asid: 0, gpa: 0, size: '2M' });
      } else if (backing.privateCount(index) > 0) {
        // rmp_make_shared(pfn, PG_LEVEL_4K) page by page; a run of private pages as one run of
        // calls where nothing can run in between (makeShared4K()).
        for (let gfn = from / SZ_4K; gfn < to / SZ_4K; ) {
          const end = backing.runEnd(gfn, to / SZ_4K);
          if (backing.state(gfn) === PRIVATE) this.makeShared4K(this.gmem(gfn * SZ_4K), end - gfn);
          gfn = end;
        }
      }
      // The discard world's frames (frames.ts): one 2M chunk for a whole region, else 4K frames.
      const chunk = whole && backing.sharedCount(index) === 0 ? backing.allocSharedChunk(index) : undefined;
      if (chunk !== undefined) {
        backing.setSharedChunk(index, chunk);
        mapped.push({ gpa: region, len: SZ_2M, hpa: chunk });
        continue;
      }
      if (!backing.allIn(from / SZ_4K, to / SZ_4K, SHARED)) {
        // The budget counts calls, and a page made shared makes none: one check stands for the
        // check per page there was.
        this.env.charge();
        backing.shareEach(from / SZ_4K, to / SZ_4K, mapped);
      }
    }
    if (this.does('io-map')) this.ioRuns('map', true, mapped);
  }

  private toPrivate(start: number, end: number, eager: boolean): void {
    const backing = this.backingState;
    this.frames.discardRam(start, end - start);
    const runs = this.collectRuns(start, end, SHARED);
    if (runs.length > 0) {
      if (this.does('zap-npt')) this.zapNpt(start, end - start);
      if (this.does('io-unmap')) this.ioRuns('unmap', true, runs);
      // QEMU discards the shared backing; the private side is faulted in lazily by KVM.
      for (const run of runs) backing.setRange(run.gpa / SZ_4K, run.len / SZ_4K, NOT_BACKED);
    }
    if (!eager) return;
    for (let gpa = start; gpa < end; gpa += SZ_4K) {
      this.env.charge();
      if (backing.state(gpa / SZ_4K) === NOT_BACKED) this.prepare(gpa, backing.folioSize(gpa), undefined);
    }
  }

  /** Runs of pages in [start, end) in `state`, with contiguous frames. */
  private collectRuns(start: number, end: number, state: typeof PRIVATE | typeof SHARED): BackedRun[] {
    return this.backingState.collect(start / SZ_4K, Math.ceil(end / SZ_4K), state, []);
  }

  private defaultSplit(request: SplitRequest): void {
    const region = alignDown(request.gpa, SZ_2M);
    if (region >= this.config.guestMemory) return;
    this.backingState.splitFolio(region);
    const entry = this.rmpEntry(region);
    if (entry.assigned && entry.size === '2M') this.smash(region, 'split', 'split');
  }
}
