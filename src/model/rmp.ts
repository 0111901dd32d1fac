// The Reverse Map Table: one entry per 4K host frame, stored sparsely per 2M region.
//
// Sources (research/amd-snp.md sections 1 and 3): Linux arch/x86/virt/svm/sev.c (struct
// rmpentry, __snp_lookup_rmpentry(), rmpupdate(), psmash()), AMD-ASPFW sev_rmp.h (raw entry,
// subpage_count), VeriSMo source/verismo/src/arch/rmp/access_s.rs (rmpupdate, pvalidate).
//
// Arguments are assumed valid (integers, 4K-aligned addresses): the Machine checks them and
// throws HardwareUsageError before calling in. What the instruction itself reports with a status
// code (a 2M update at an unaligned frame, overlap, immutable) is returned as that status.

import { LinearRuns } from './linear-runs.ts';
import { RegionMap } from './regions.ts';
import { FRAMES_PER_2M, offsetIn, type PageSize, SZ_2M, SZ_4K } from './size.ts';
import {
  PSMASH_FAIL_INPUT,
  PSMASH_OK,
  PVALIDATE_FAIL_INPUT,
  PVALIDATE_FAIL_NOUPDATE,
  PVALIDATE_FAIL_SIZEMISMATCH,
  PVALIDATE_OK,
  RMPUPDATE_FAIL_INPUT,
  RMPUPDATE_FAIL_OVERLAP,
  RMPUPDATE_FAIL_PERMISSION,
  RMPUPDATE_OK,
  type RmpEntry,
  type RmpUpdateArgs,
} from './types.ts';

// Flag bits of a raw entry (the architectural bits of struct rmpentry_raw quadword 1).
const ASSIGNED = 1;
/** Meaningful on the 2M-aligned entry only: the entry governs its whole 2M region. */
const SIZE_2M = 2;
const VALIDATED = 4;
const IMMUTABLE = 8;
const VMSA = 16;
/** The bits load() reads from a frame's own raw entry (the size comes from the 2M-aligned one). */
const ENTRY_BITS = ASSIGNED | VALIDATED | IMMUTABLE | VMSA;

/** Largest ASID the raw entry holds (10 bits, struct rmpentry_raw). */
export const RMP_MAX_ASID = 0x3ff;

/**
 * PVALIDATE outcomes that are not status codes but a #NPF exit to the host (VeriSMo pvalidate:
 * unassigned, immutable, ASID or GPA mismatch; a 4K request on a 2M entry sets SIZEM). Negative
 * so they never collide with the real status codes in types.ts.
 */
export const PVALIDATE_NPF_SIZEM = -1;
export const PVALIDATE_NPF_NOT_ASSIGNED = -2;
export const PVALIDATE_NPF_IMMUTABLE = -3;
export const PVALIDATE_NPF_ASID = -4;
export const PVALIDATE_NPF_GPA = -5;

export const pvalidateNpfReason = (outcome: number): string =>
  outcome === PVALIDATE_NPF_SIZEM
    ? 'pvalidate 4K on rmp 2M'
    : outcome === PVALIDATE_NPF_NOT_ASSIGNED
      ? 'not assigned'
      : outcome === PVALIDATE_NPF_IMMUTABLE
        ? 'immutable'
        : outcome === PVALIDATE_NPF_ASID
          ? 'asid mismatch'
          : 'gpa mismatch';

/**
 * The 512 raw entries of one 2M region. Where the frames agree the region is a summary: the raw
 * entry at the 2M-aligned frame (`flags0`, `asid0`, `gpa0`) and one description of frames 1..511
 * (`flags`, `asid`, GPA `gpa + i * gpaStep`). That covers an untouched region (all zero), a 2M
 * entry (its sub-entries are zero: only the base is ever read) and a smashed 2M entry (PSMASH
 * gives 512 entries with the same flags and linear GPAs), so 2M updates, PSMASH and reads of such
 * regions are O(1). `detail` holds the raw entries of frames 1..511, allocated by the first 4K
 * write that makes one of them differ, until a 2M RMPUPDATE resets the region; frame 0's entry is
 * always the base fields.
 */
interface Region {
  flags0: number;
  asid0: number;
  gpa0: number;
  flags: number;
  asid: number;
  gpa: number;
  gpaStep: number;
  detail: Detail | undefined;
  /**
   * Raw 4K entries that are assigned: the subpage_count x86 microcode keeps on the 2M-aligned
   * entry (AMD-ASPFW sev_rmp.h). Makes the overlap check, the direct-map check and the
   * untrusted-DMA 2M check O(1).
   */
  assigned4K: number;
  /** Raw 4K entries that are immutable (a 2M update over one refuses). */
  immutable4K: number;
}

interface Detail {
  readonly flags: Uint8Array;
  readonly asid: Uint16Array;
  /** GPA of each frame's own raw entry. */
  readonly gpa: Float64Array;
}

const newRegion = (): Region => ({ flags0: 0, asid0: 0, gpa0: 0, flags: 0, asid: 0, gpa: 0, gpaStep: 0, detail: undefined, assigned4K: 0, immutable4K: 0 });

/** Back to all-zero raw entries (summary form). */
function resetRegion(region: Region): void {
  region.flags0 = region.asid0 = region.gpa0 = 0;
  region.flags = region.asid = region.gpa = region.gpaStep = 0;
  region.detail = undefined;
  region.assigned4K = 0;
  region.immutable4K = 0;
}

// Frame 0's raw entry is always flags0/asid0/gpa0 (index 0 of `detail` is unused).
const rawFlags = (r: Region, i: number): number => (i === 0 ? r.flags0 : r.detail !== undefined ? (r.detail.flags[i] ?? 0) : r.flags);
const rawAsid = (r: Region, i: number): number => (i === 0 ? r.asid0 : r.detail !== undefined ? (r.detail.asid[i] ?? 0) : r.asid);
const rawGpa = (r: Region, i: number): number => (i === 0 ? r.gpa0 : r.detail !== undefined ? (r.detail.gpa[i] ?? 0) : r.gpa + i * r.gpaStep);

/** Give a summary region its per-frame arrays for frames 1..511, holding the same raw entries. */
function materialize(r: Region): Detail {
  if (r.detail !== undefined) return r.detail;
  const detail: Detail = { flags: new Uint8Array(FRAMES_PER_2M).fill(r.flags), asid: new Uint16Array(FRAMES_PER_2M).fill(r.asid), gpa: new Float64Array(FRAMES_PER_2M) };
  if (r.gpa !== 0 || r.gpaStep !== 0) for (let i = 1; i < FRAMES_PER_2M; i++) detail.gpa[i] = r.gpa + i * r.gpaStep;
  r.detail = detail;
  return detail;
}

export const defaultRmpEntry = (): RmpEntry => ({
  assigned: false,
  asid: 0,
  gpa: 0,
  size: '4K',
  validated: false,
  immutable: false,
  vmsa: false,
});

export class Rmp {
  /** 2M region index (pfn / 512) -> its raw entries. Absent regions are all Hypervisor-owned. */
  private readonly regions = new RegionMap<Region>();
  /** Scratch entries of runEnd(). */
  private readonly runRef: RmpEntry = defaultRmpEntry();
  private readonly runCur: RmpEntry = defaultRmpEntry();
  /**
   * Stretches of consecutive held regions whose frames all lie on one line (each continues the
   * stretch's first frame as runEnd() compares them), each stretch a run of its own number: what
   * lets runEnd() cross them in one step. A 1 TiB guest's 1G swiotlb pool, shared with 2M
   * RMPUPDATEs at boot, is 512 regions that every run query over it stepped through one by one
   * (issue 15: 37k region steps against 4k with an 8M pool, on the same ops). Kept for the 2M
   * entries a successful 2M RMPUPDATE or PVALIDATE writes (joined to a stretch before or after
   * that they continue); a region leaves its stretch whenever it is taken to change
   * (writableRegion()), so a stretch only ever holds regions as they were when it was made.
   */
  private readonly lines = new LinearRuns();
  /** The number of the next stretch in `lines` (stretches that meet never join unless they continue each other). */
  private nextLine = 1;
  /**
   * Frames assigned to each ASID, and of those the frames under a 2M entry, kept as the entries
   * change (issue 15: metrics as counters, not a sweep of the RMP after every case).
   */
  private readonly assignedFrames = new Map<number, number>();
  private readonly assigned2MFrames = new Map<number, number>();

  /** Regions allocated so far (for scale tests: grows with what is touched, not with memory). */
  get regionCount(): number {
    return this.regions.size;
  }

  /** Stretches of regions runEnd() crosses in one step (tests: a pool shared 2M by 2M is one). */
  get lineStretches(): number {
    return this.lines.size;
  }

  /** Regions holding per-frame arrays (the rest are summaries). */
  get detailCount(): number {
    let count = 0;
    for (const region of this.regions.values()) if (region.detail !== undefined) count++;
    return count;
  }

  // ---- reads ----------------------------------------------------------------------------

  /** Frames whose entry (as load() reads it) is assigned to `asid`, and those under a 2M entry. */
  assignedCount(asid: number): { frames: number; frames2M: number } {
    return { frames: this.assignedFrames.get(asid) ?? 0, frames2M: this.assigned2MFrames.get(asid) ?? 0 };
  }

  /**
   * Fill `out` with the entry of `pfn` as RMPREAD and the access checks see it. The size comes
   * from the 2M-aligned entry (__snp_lookup_rmpentry() reads `pfn & ~511` for the level); when
   * that entry is 2M it governs all 512 frames, so assigned/asid/validated come from it and the
   * frame's GPA is the base GPA plus the frame's offset. Allocation-free for the hot paths.
   */
  load(pfn: number, out: RmpEntry): RmpEntry {
    return this.loadIn(this.regions.get(Math.floor(pfn / FRAMES_PER_2M)), pfn, out);
  }

  /** load() of frame `pfn` from its region (undefined: untouched). */
  private loadIn(region: Region | undefined, pfn: number, out: RmpEntry): RmpEntry {
    if (region === undefined) {
      out.assigned = false;
      out.asid = 0;
      out.gpa = 0;
      out.size = '4K';
      out.validated = false;
      out.immutable = false;
      out.vmsa = false;
      return out;
    }
    const i = offsetIn(pfn, FRAMES_PER_2M);
    const base = region.flags0;
    if ((base & SIZE_2M) !== 0) {
      const assigned = (base & ASSIGNED) !== 0;
      out.assigned = assigned;
      out.asid = region.asid0;
      out.gpa = region.gpa0 + (assigned ? i * SZ_4K : 0);
      out.size = '2M';
      out.validated = (base & VALIDATED) !== 0;
      out.immutable = (base & IMMUTABLE) !== 0;
      out.vmsa = i === 0 && (base & VMSA) !== 0;
      return out;
    }
    const flags = rawFlags(region, i);
    out.assigned = (flags & ASSIGNED) !== 0;
    out.asid = rawAsid(region, i);
    out.gpa = rawGpa(region, i);
    out.size = '4K';
    out.validated = (flags & VALIDATED) !== 0;
    out.immutable = (flags & IMMUTABLE) !== 0;
    out.vmsa = (flags & VMSA) !== 0;
    return out;
  }

  /** RmpView: a fresh copy of the entry of `pfn`. */
  entry(pfn: number): RmpEntry {
    return this.load(pfn, defaultRmpEntry());
  }

  /** RMPREAD (architectural view; the 2M region status bit is derived, see regionHasAssigned). */
  rmpRead(hpa: number): RmpEntry {
    return this.entry(Math.floor(hpa / SZ_4K));
  }

  isAssigned(pfn: number): boolean {
    const region = this.regions.get(Math.floor(pfn / FRAMES_PER_2M));
    if (region === undefined) return false;
    const base = region.flags0;
    if ((base & SIZE_2M) !== 0) return (base & ASSIGNED) !== 0;
    return (rawFlags(region, offsetIn(pfn, FRAMES_PER_2M)) & ASSIGNED) !== 0;
  }

  /** The size that governs `pfn` (from the 2M-aligned entry). */
  sizeOf(pfn: number): PageSize {
    const region = this.regions.get(Math.floor(pfn / FRAMES_PER_2M));
    return region !== undefined && (region.flags0 & SIZE_2M) !== 0 ? '2M' : '4K';
  }

  /**
   * Whether any frame of the 2M region holding `pfn` is assigned: a 2M-or-larger host or IO
   * mapping of that region fails the RMP check (adjust_direct_map() comment; Joerg Roedel's
   * amd_iommu=nohugepages commit, lore 20240905072240.253313-1-joro@8bytes.org).
   */
  regionHasAssigned(pfn: number): boolean {
    const region = this.regions.get(Math.floor(pfn / FRAMES_PER_2M));
    if (region === undefined) return false;
    const base = region.flags0;
    if ((base & SIZE_2M) !== 0) return (base & ASSIGNED) !== 0;
    return region.assigned4K > 0;
  }

  /**
   * The end (exclusive, at most `limit`) of the run of frames from `pfn` whose entries continue
   * the entry of `pfn`: the same assigned, asid, size, validated, immutable and vmsa, and a GPA
   * that advances 4K per frame (assigned) or stays the same (unassigned). A 2M entry, a smashed
   * one nobody changed since, or untouched memory is one run: with load(), an allocation-free
   * way to walk [pfn, limit) run by run instead of frame by frame.
   */
  runEnd(pfn: number, limit: number): number {
    const ref = this.load(pfn, this.runRef);
    const isDefault = !ref.assigned && ref.asid === 0 && ref.gpa === 0 && ref.size === '4K' && !ref.validated && !ref.immutable && !ref.vmsa;
    const regions = this.regions;
    let at = pfn + 1;
    // Every frame of the stretch of lines holding pfn's region continues pfn's entry.
    const line = this.lines.runIndexAt(Math.floor(pfn / FRAMES_PER_2M));
    if (line >= 0) at = this.lines.runEnd(line) * FRAMES_PER_2M;
    // The first held region at or after at's (regions walked in order, not looked up one by one).
    let position = regions.seek(Math.floor(at / FRAMES_PER_2M));
    while (at < limit) {
      const key = Math.floor(at / FRAMES_PER_2M);
      const regionStart = key * FRAMES_PER_2M;
      const stop = Math.min(limit, regionStart + FRAMES_PER_2M);
      const held = regions.keyAt(position);
      if (held !== key) {
        if (!isDefault) return at;
        // Untouched regions are default entries: jump to the next region anyone wrote.
        if (held === undefined) return limit;
        at = Math.max(at, held * FRAMES_PER_2M);
        continue;
      }
      const region = regions.valueAt(position++)!;
      if (at === regionStart) {
        if (!this.continues(ref, pfn, region, at)) return at;
        // The rest of a stretch of lines continues its first frame, which continues the run.
        const stretch = this.lines.runIndexAt(key);
        if (stretch >= 0) {
          const end = this.lines.runEnd(stretch);
          // Its regions are held, one after another: the walk goes on at the one after them.
          position += end - key - 1;
          at = end * FRAMES_PER_2M;
          continue;
        }
        at++;
        if (at >= stop) continue;
      }
      if (region.detail === undefined) {
        // Frames 1..511 of a summary region follow one description (zero, a 2M entry's offsets,
        // or a PSMASH's linear GPAs): if the first continues the run, all of them do.
        if (!this.continues(ref, pfn, region, at)) return at;
        at = stop;
        continue;
      }
      if ((region.flags0 & SIZE_2M) !== 0 || ref.size !== '4K') {
        for (; at < stop; at++) if (!this.continues(ref, pfn, region, at)) return at;
        continue;
      }
      // A detailed region of 4K entries: its raw arrays compared directly, what continues() reads
      // through load() (runEnd() is the run query of the oracles and of PVALIDATE runs).
      const { flags, asid, gpa } = region.detail;
      const refFlags = (ref.assigned ? ASSIGNED : 0) | (ref.validated ? VALIDATED : 0) | (ref.immutable ? IMMUTABLE : 0) | (ref.vmsa ? VMSA : 0);
      const step = ref.assigned ? SZ_4K : 0;
      let expected = ref.gpa + (at - pfn) * step;
      for (; at < stop; at++, expected += step) {
        if ((flags[at - regionStart]! & ENTRY_BITS) !== refFlags || asid[at - regionStart] !== ref.asid || gpa[at - regionStart] !== expected) return at;
      }
    }
    return limit;
  }

  /** Whether frame `at`, of `region`, continues the run whose first frame `pfn` has entry `ref`. */
  private continues(ref: RmpEntry, pfn: number, region: Region, at: number): boolean {
    const cur = this.loadIn(region, at, this.runCur);
    return (
      cur.assigned === ref.assigned &&
      cur.asid === ref.asid &&
      cur.size === ref.size &&
      cur.validated === ref.validated &&
      cur.immutable === ref.immutable &&
      cur.vmsa === ref.vmsa &&
      cur.gpa === (ref.assigned ? ref.gpa + (at - pfn) * SZ_4K : ref.gpa)
    );
  }

  /** RmpView: frames whose entry is not the default Hypervisor one, ascending. */
  *frames(): Iterable<number> {
    for (const key of this.regions.keys()) {
      const region = this.regions.get(key);
      if (region === undefined) continue;
      const first = key * FRAMES_PER_2M;
      if ((region.flags0 & SIZE_2M) !== 0) {
        for (let i = 0; i < FRAMES_PER_2M; i++) yield first + i;
        continue;
      }
      if (region.flags0 !== 0 || region.asid0 !== 0 || region.gpa0 !== 0) yield first;
      const detail = region.detail;
      if (detail === undefined) {
        if (region.flags !== 0 || region.asid !== 0 || region.gpa !== 0 || region.gpaStep !== 0) for (let i = 1; i < FRAMES_PER_2M; i++) yield first + i;
        continue;
      }
      for (let i = 1; i < FRAMES_PER_2M; i++) {
        if ((detail.flags[i] ?? 0) !== 0 || (detail.asid[i] ?? 0) !== 0 || (detail.gpa[i] ?? 0) !== 0) yield first + i;
      }
    }
  }

  // ---- RMPUPDATE --------------------------------------------------------------------------

  /**
   * RMPUPDATE (host). Status codes from Linux asm/sev.h. Rules:
   * - 2M needs a 2M-aligned frame, else FAIL_INPUT (adjust_direct_map() rejects it before the
   *   instruction; the instruction's own check is in the APM, which we could not read).
   * - An assigned 2M entry needs a 2M-aligned GPA, else FAIL_INPUT. UNCONFIRMED (section 8: the
   *   complete RMPUPDATE error list); without it a 2M entry's frames would carry GPAs no NPT or
   *   IO leaf can match.
   * - Immutable entries refuse: FAIL_PERMISSION (DOMAIN.md; VeriSMo rmpupdate).
   * - Overlap (DOMAIN.md): a 2M update over a region holding any assigned 4K entry, or a 4K update
   *   inside a region governed by an assigned 2M entry, is FAIL_OVERLAP. UNCONFIRMED in detail
   *   (section 8); we follow the subpage_count the microcode keeps (AMD-ASPFW sev_rmp.h) and
   *   KVM's is_large_rmp_possible(), which only makes 2M entries over wholly unassigned ranges.
   *   Linux rmpupdate() loops on FAIL_OVERLAP assuming a transient race; this state-based
   *   overlap is permanent, so the caller sees it (the transient one: Machine.rmpUpdateOverlapped).
   * - Any change of asid, gpa, size or assigned clears Validated and the VMSA bit (VeriSMo
   *   rmpupdate / _rmpupdate); an update that changes none of them keeps Validated.
   */
  rmpUpdate(hpa: number, args: RmpUpdateArgs): number {
    const pfn = Math.floor(hpa / SZ_4K);
    const key = Math.floor(pfn / FRAMES_PER_2M);
    const i = offsetIn(pfn, FRAMES_PER_2M);
    const immutableBit = args.immutable === true ? IMMUTABLE : 0;
    const assignedBit = args.assigned ? ASSIGNED : 0;
    // The raw entry holds a 10-bit ASID; a larger one cannot be stored. UNCONFIRMED status.
    if (args.asid > RMP_MAX_ASID) return RMPUPDATE_FAIL_INPUT;
    // writable(): a region shared with a boot-cache template is copied before it changes.
    let region = this.writableRegion(key);

    if (args.size === '2M') {
      if (i !== 0) return RMPUPDATE_FAIL_INPUT;
      if (args.assigned && offsetIn(args.gpa, SZ_2M) !== 0) return RMPUPDATE_FAIL_INPUT;
      let validatedBit = 0;
      if (region !== undefined) {
        const base = region.flags0;
        if ((base & IMMUTABLE) !== 0) return RMPUPDATE_FAIL_PERMISSION;
        if ((base & SIZE_2M) === 0) {
          if (region.immutable4K > 0) return RMPUPDATE_FAIL_PERMISSION;
          if (region.assigned4K > 0) return RMPUPDATE_FAIL_OVERLAP;
          // 4K -> 2M: the sub-entries are all unassigned and mutable (checked above). Reset them:
          // under a 2M entry only the base entry is ever read.
          resetRegion(region);
        } else {
          if ((base & ASSIGNED) === assignedBit && region.asid0 === args.asid && region.gpa0 === args.gpa) validatedBit = base & (VALIDATED | VMSA);
          if ((base & ASSIGNED) !== 0) this.countAssigned(region.asid0, -FRAMES_PER_2M, -FRAMES_PER_2M);
        }
      } else {
        // Even an unassigned 2M entry is a state of its own (size 2M): allocate.
        region = this.addRegion(key);
      }
      region.flags0 = assignedBit | SIZE_2M | immutableBit | validatedBit;
      region.asid0 = args.asid;
      region.gpa0 = args.gpa;
      region.assigned4K = 0;
      region.immutable4K = 0;
      if (args.assigned) this.countAssigned(args.asid, FRAMES_PER_2M, FRAMES_PER_2M);
      this.joinLines(key, region);
      return RMPUPDATE_OK;
    }

    // 4K update.
    if (region === undefined) {
      // Writing the default state into an untouched region changes nothing: allocate nothing.
      if (!args.assigned && args.asid === 0 && args.gpa === 0 && immutableBit === 0) return RMPUPDATE_OK;
      region = this.addRegion(key);
    }
    const base = region.flags0;
    if ((base & SIZE_2M) !== 0) {
      if ((base & IMMUTABLE) !== 0) return RMPUPDATE_FAIL_PERMISSION;
      if ((base & ASSIGNED) !== 0) return RMPUPDATE_FAIL_OVERLAP;
      // An unassigned 2M entry (e.g. Linux rmp_make_shared(pfn, PG_LEVEL_2M)) over a region
      // now being touched at 4K: the region's frames are all Hypervisor-owned, so we demote it
      // to 4K default entries first. UNCONFIRMED: what the raw sub-entries hold after a 2M
      // RMPUPDATE is not architectural; Linux only reads the level from the 2M-aligned entry.
      region.flags0 = 0;
      region.asid0 = 0;
      region.gpa0 = 0;
    }
    return this.update4K(region, i, assignedBit | immutableBit, args.asid, args.gpa, (base & SIZE_2M) === 0);
  }

  /**
   * The 4K RMPUPDATE of frame `i` of a held region of 4K entries (a demoted unassigned 2M entry
   * among them: `was4K` false, so nothing of the old entry is kept): `flags` is the new entry's
   * assigned and immutable bits.
   */
  private update4K(region: Region, i: number, flags: number, asid: number, gpa: number, was4K: boolean): number {
    const old = rawFlags(region, i);
    if ((old & IMMUTABLE) !== 0) return RMPUPDATE_FAIL_PERMISSION;
    const unchanged = was4K && (old & ASSIGNED) === (flags & ASSIGNED) && rawAsid(region, i) === asid && rawGpa(region, i) === gpa;
    const keep = unchanged ? old & (VALIDATED | VMSA) : 0;
    // (A demoted unassigned 2M entry left all 512 frames unassigned: only frame i's own entry counts.)
    if ((old & ASSIGNED) !== 0) this.countAssigned(rawAsid(region, i), -1, 0);
    this.writeRaw(region, i, flags | keep, asid, gpa);
    if ((flags & ASSIGNED) !== 0) this.countAssigned(asid, 1, 0);
    return RMPUPDATE_OK;
  }

  /**
   * 4K RMPUPDATEs of frames hpa, hpa + 4K, ... with `args` (the GPA advancing 4K per frame when
   * assigned), while each returns RMPUPDATE_OK, at most `count`: how many did (the first that
   * would not is left unchanged). What rmpUpdate() frame by frame does, with one region look-up
   * per 2M region rather than per frame (issue 15: rmp_make_shared() over a run of pages, a
   * prepared fault-in). A region under a 2M entry goes frame by frame through rmpUpdate().
   */
  rmpUpdate4KRun(hpa: number, count: number, args: RmpUpdateArgs): number {
    if (args.size !== '4K') throw new Error(`internal: rmpUpdate4KRun of ${args.size} entries`);
    const pfn = Math.floor(hpa / SZ_4K);
    const flags = (args.assigned ? ASSIGNED : 0) | (args.immutable === true ? IMMUTABLE : 0);
    const gpaStep = args.assigned ? SZ_4K : 0;
    // rmpUpdate() refuses such an ASID before anything else: nothing done.
    if (args.asid > RMP_MAX_ASID) return 0;
    const frame: RmpUpdateArgs = { ...args };
    let done = 0;
    while (done < count) {
      const key = Math.floor((pfn + done) / FRAMES_PER_2M);
      const stop = Math.min(count, (key + 1) * FRAMES_PER_2M - pfn);
      const region = this.regions.get(key);
      if (region === undefined || (region.flags0 & SIZE_2M) !== 0) {
        // Untouched (an update to the default entry allocates nothing) or under a 2M entry (the
        // first 4K update demotes an unassigned one): one frame as rmpUpdate() does it, then the
        // region is looked at again.
        frame.gpa = args.gpa + done * gpaStep;
        if (this.rmpUpdate(hpa + done * SZ_4K, frame) !== RMPUPDATE_OK) return done;
        done++;
        continue;
      }
      const mine = this.writableRegion(key)!;
      for (; done < stop; done++) {
        if (this.update4K(mine, offsetIn(pfn + done, FRAMES_PER_2M), flags, args.asid, args.gpa + done * gpaStep, true) !== RMPUPDATE_OK) return done;
      }
    }
    return done;
  }

  // ---- PSMASH -----------------------------------------------------------------------------

  /**
   * PSMASH (host): a 2M-aligned, assigned 2M entry becomes 512 4K entries with the same ASID,
   * gpa + i*4K, and Validated PRESERVED (comment on Linux psmash(); DOMAIN.md). There is no
   * un-smash (Michael Roth, lore 20240501085210.2213060-3-michael.roth@amd.com).
   * PSMASH_FAIL_INUSE needs concurrency, which the model does not have.
   * The smashed region stays a summary (one description of linear entries): O(1).
   */
  psmash(hpa: number): number {
    const pfn = Math.floor(hpa / SZ_4K);
    if (offsetIn(hpa, SZ_2M) !== 0) return PSMASH_FAIL_INPUT;
    const key = Math.floor(pfn / FRAMES_PER_2M);
    const held = this.regions.get(key);
    if (held === undefined || (held.flags0 & SIZE_2M) === 0 || (held.flags0 & ASSIGNED) === 0) return PSMASH_FAIL_INPUT;
    // Copied from a boot-cache template only now that it changes.
    const region = this.writableRegion(key)!;
    const base = region.flags0;
    const keep = base & (ASSIGNED | VALIDATED | IMMUTABLE);
    // A 2M region has no per-frame arrays (a 2M update resets them).
    region.detail = undefined;
    region.flags0 = keep | (base & VMSA);
    region.flags = keep;
    region.asid = region.asid0;
    region.gpa = region.gpa0;
    region.gpaStep = SZ_4K;
    region.assigned4K = FRAMES_PER_2M;
    region.immutable4K = (keep & IMMUTABLE) !== 0 ? FRAMES_PER_2M : 0;
    // The 512 frames stay assigned to the same ASID, now under 4K entries.
    this.countAssigned(region.asid0, 0, -FRAMES_PER_2M);
    return PSMASH_OK;
  }

  // ---- PVALIDATE --------------------------------------------------------------------------

  /**
   * The RMP part of PVALIDATE, for the machine's pvalidate (which did the NPT translation).
   * Returns a status code (0, FAIL_INPUT, FAIL_SIZEMISMATCH, NOUPDATE) or a PVALIDATE_NPF_*
   * outcome. Order after VeriSMo pvalidate: input, then the entry's ownership (#NPF), then the
   * size (2M on 4K: status 6, Linux pval_pages() retries at 4K; 4K on 2M: #NPF with SIZEM, KVM
   * sev_handle_rmp_fault() PSMASHes), then CF=1 when already in the requested state.
   */
  pvalidateEntry(hpa: number, gpa: number, asid: number, size: PageSize, validate: boolean): number {
    // Read first: most failing PVALIDATEs (#NPF on a shared page, NOUPDATE) change nothing, and
    // writable() would copy a boot-cache template's region for them.
    const status = this.pvalidateCheck(hpa, gpa, asid, size, validate);
    if (status !== PVALIDATE_OK) return status;
    const pfn = Math.floor(hpa / SZ_4K);
    const key = Math.floor(pfn / FRAMES_PER_2M);
    const mine = this.writableRegion(key)!;
    const at = (mine.flags0 & SIZE_2M) !== 0 ? 0 : offsetIn(pfn, FRAMES_PER_2M);
    const flags = rawFlags(mine, at);
    const next = validate ? flags | VALIDATED : flags & ~VALIDATED;
    if (at === 0) mine.flags0 = next;
    else materialize(mine).flags[at] = next;
    // A 2M entry PVALIDATEd as a whole is one line again (private 2M memory the guest accepted).
    if ((mine.flags0 & SIZE_2M) !== 0) this.joinLines(key, mine);
    return PVALIDATE_OK;
  }

  /** What pvalidateEntry() would return, changing nothing. */
  pvalidateCheck(hpa: number, gpa: number, asid: number, size: PageSize, validate: boolean): number {
    if (size === '2M' && (offsetIn(hpa, SZ_2M) !== 0 || offsetIn(gpa, SZ_2M) !== 0)) return PVALIDATE_FAIL_INPUT;
    const pfn = Math.floor(hpa / SZ_4K);
    const region = this.regions.get(Math.floor(pfn / FRAMES_PER_2M));
    if (region === undefined) return PVALIDATE_NPF_NOT_ASSIGNED;
    const i = offsetIn(pfn, FRAMES_PER_2M);
    const is2M = (region.flags0 & SIZE_2M) !== 0;
    const at = is2M ? 0 : i;
    const flags = rawFlags(region, at);
    const entryGpa = rawGpa(region, at) + (is2M ? i * SZ_4K : 0);
    if ((flags & ASSIGNED) === 0) return PVALIDATE_NPF_NOT_ASSIGNED;
    if ((flags & IMMUTABLE) !== 0) return PVALIDATE_NPF_IMMUTABLE;
    if (rawAsid(region, at) !== asid) return PVALIDATE_NPF_ASID;
    if (entryGpa !== gpa) return PVALIDATE_NPF_GPA;
    if (size === '2M' && !is2M) return PVALIDATE_FAIL_SIZEMISMATCH;
    if (size === '4K' && is2M) return PVALIDATE_NPF_SIZEM;
    if (((flags & VALIDATED) !== 0) === validate) return PVALIDATE_FAIL_NOUPDATE;
    return PVALIDATE_OK;
  }

  /**
   * 4K PVALIDATEs of frames hpa, hpa + 4K, ... for gpa, gpa + 4K, ..., while each returns
   * PVALIDATE_OK, at most `limit`: how many did (the first that would not is left untouched).
   * What pvalidateEntry() frame by frame does, run by run: the frames of one RMP run (runEnd())
   * answer alike, as runEnd() compares every field the check reads.
   */
  pvalidate4KRun(hpa: number, gpa: number, asid: number, validate: boolean, limit: number): number {
    const pfn = Math.floor(hpa / SZ_4K);
    let done = 0;
    while (done < limit) {
      // The run's first frame decides for the run: same flags and asid, GPAs advancing 4K.
      if (this.pvalidateCheck(hpa + done * SZ_4K, gpa + done * SZ_4K, asid, '4K', validate) !== PVALIDATE_OK) return done;
      // Exact while runEnd() compares every field pvalidateCheck() reads: checked, not assumed.
      const end = Math.min(this.runEnd(pfn + done, pfn + limit), pfn + limit) - pfn;
      this.setValidated(pfn + done, pfn + end, validate);
      done = end;
    }
    return done;
  }

  /**
   * Set or clear Validated in the raw entries of frames [from, to), all 4K entries (a run whose
   * PVALIDATE succeeds): what pvalidateEntry() writes frame by frame, region by region.
   */
  private setValidated(from: number, to: number, validate: boolean): void {
    for (let at = from; at < to; ) {
      const key = Math.floor(at / FRAMES_PER_2M);
      const start = key * FRAMES_PER_2M;
      const stop = Math.min(to, start + FRAMES_PER_2M);
      const region = this.writableRegion(key)!;
      if ((region.flags0 & SIZE_2M) !== 0) throw new Error(`internal: setValidated over the 2M entry at frame 0x${start.toString(16)}`);
      let i = at - start;
      if (i === 0) {
        region.flags0 = validate ? region.flags0 | VALIDATED : region.flags0 & ~VALIDATED;
        i = 1;
      }
      // pvalidateEntry() gives the region its per-frame arrays for any frame but the first.
      if (i < stop - start) {
        const flags = materialize(region).flags;
        for (; i < stop - start; i++) flags[i] = validate ? flags[i]! | VALIDATED : flags[i]! & ~VALIDATED;
      }
      at = stop;
    }
  }

  // ---- internals --------------------------------------------------------------------------

  /** Region `key` to change in place (RegionMap.writable()): it leaves its stretch of lines first. */
  private writableRegion(key: number): Region | undefined {
    this.lines.clear(key, key + 1);
    return this.regions.writable(key);
  }

  /** A new region for `key`, which holds none (so it is in no stretch of lines). */
  private addRegion(key: number): Region {
    return this.regions.add(key, newRegion());
  }

  /**
   * Region `key` now holds the 2M entry `region`: its frames are one line unless the VMSA bit sets
   * its first frame apart. It joins the stretch before it if it continues that stretch's last
   * frame, and the stretch after it joins it likewise.
   */
  private joinLines(key: number, region: Region): void {
    if ((region.flags0 & VMSA) !== 0) return;
    const before = key > 0 ? this.lines.get(key - 1) : undefined;
    const line = before !== undefined && this.meets(key - 1) ? before : this.nextLine++;
    this.lines.set(key, key + 1, line, 0);
    if (this.lines.get(key + 1) !== undefined && this.meets(key)) this.lines.set(key + 1, this.lines.stretchEnd(key + 1), line, 0);
  }

  /** Whether the first frame of held region `key + 1` continues the last frame of region `key`. */
  private meets(key: number): boolean {
    const last = (key + 1) * FRAMES_PER_2M - 1;
    return this.continues(this.load(last, this.runRef), last, this.regions.get(key + 1)!, last + 1);
  }

  private countAssigned(asid: number, frames: number, frames2M: number): void {
    if (frames !== 0) this.assignedFrames.set(asid, (this.assignedFrames.get(asid) ?? 0) + frames);
    if (frames2M !== 0) this.assigned2MFrames.set(asid, (this.assigned2MFrames.get(asid) ?? 0) + frames2M);
  }

  private writeRaw(region: Region, i: number, flags: number, asid: number, gpa: number): void {
    const old = rawFlags(region, i);
    region.assigned4K += (flags & ASSIGNED) - (old & ASSIGNED);
    region.immutable4K += ((flags & IMMUTABLE) - (old & IMMUTABLE)) / IMMUTABLE;
    if (i === 0) {
      region.flags0 = flags;
      region.asid0 = asid;
      region.gpa0 = gpa;
      return;
    }
    // A frame written with what the summary already says for it keeps the region a summary.
    if (region.detail === undefined && flags === region.flags && asid === region.asid && gpa === region.gpa + i * region.gpaStep) return;
    const detail = materialize(region);
    detail.flags[i] = flags;
    detail.asid[i] = asid;
    detail.gpa[i] = gpa;
  }
}
