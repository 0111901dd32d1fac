// The per-frame RMP as it was before the range-level core of issue 15 (three 512-entry arrays per
// touched 2M region, every PSMASH and 2M update filling them), kept as the reference model the
// range-level src/model/rmp.ts is checked against (test/model/rmp.test.ts, random sequences).
//
// The Reverse Map Table: one entry per 4K host frame, stored sparsely per 2M region.
//
// Sources (research/amd-snp.md sections 1 and 3): Linux arch/x86/virt/svm/sev.c (struct
// rmpentry, __snp_lookup_rmpentry(), rmpupdate(), psmash()), AMD-ASPFW sev_rmp.h (raw entry,
// subpage_count), VeriSMo source/verismo/src/arch/rmp/access_s.rs (rmpupdate, pvalidate).
//
// Arguments are assumed valid (integers, 4K-aligned addresses): the Machine checks them and
// throws HardwareUsageError before calling in. What the instruction itself reports with a status
// code (a 2M update at an unaligned frame, overlap, immutable) is returned as that status.

import {
  PVALIDATE_NPF_ASID,
  PVALIDATE_NPF_GPA,
  PVALIDATE_NPF_IMMUTABLE,
  PVALIDATE_NPF_NOT_ASSIGNED,
  PVALIDATE_NPF_SIZEM,
  RMP_MAX_ASID,
  defaultRmpEntry,
} from '../../src/model/rmp.ts';
import { FRAMES_PER_2M, SZ_2M, SZ_4K, type PageSize } from '../../src/model/size.ts';
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
} from '../../src/model/types.ts';

// Flag bits of a raw entry (the architectural bits of struct rmpentry_raw quadword 1).
const ASSIGNED = 1;
/** Meaningful on the 2M-aligned entry only: the entry governs its whole 2M region. */
const SIZE_2M = 2;
const VALIDATED = 4;
const IMMUTABLE = 8;
const VMSA = 16;

/** The 512 raw entries of one 2M region, allocated on the first write into it. */
interface Region {
  readonly flags: Uint8Array;
  readonly asid: Uint16Array;
  /** GPA of each frame's own raw entry (for a 2M entry: the base GPA, at index 0). */
  readonly gpa: Float64Array;
  /**
   * Raw 4K entries that are assigned: the subpage_count x86 microcode keeps on the 2M-aligned
   * entry (AMD-ASPFW sev_rmp.h). Makes the overlap check, the direct-map check and the
   * untrusted-DMA 2M check O(1).
   */
  assigned4K: number;
  /** Raw 4K entries that are immutable (a 2M update over one refuses). */
  immutable4K: number;
}

const newRegion = (): Region => ({
  flags: new Uint8Array(FRAMES_PER_2M),
  asid: new Uint16Array(FRAMES_PER_2M),
  gpa: new Float64Array(FRAMES_PER_2M),
  assigned4K: 0,
  immutable4K: 0,
});

export class PerFrameRmp {
  /** 2M region index (pfn / 512) -> its raw entries. Absent regions are all Hypervisor-owned. */
  private readonly regions = new Map<number, Region>();

  /** Regions allocated so far (for scale tests: grows with what is touched, not with memory). */
  get regionCount(): number {
    return this.regions.size;
  }

  // ---- reads ----------------------------------------------------------------------------

  /**
   * Fill `out` with the entry of `pfn` as RMPREAD and the access checks see it. The size comes
   * from the 2M-aligned entry (__snp_lookup_rmpentry() reads `pfn & ~511` for the level); when
   * that entry is 2M it governs all 512 frames, so assigned/asid/validated come from it and the
   * frame's GPA is the base GPA plus the frame's offset. Allocation-free for the hot paths.
   */
  load(pfn: number, out: RmpEntry): RmpEntry {
    const region = this.regions.get(Math.floor(pfn / FRAMES_PER_2M));
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
    const i = pfn % FRAMES_PER_2M;
    const base = region.flags[0] ?? 0;
    if ((base & SIZE_2M) !== 0) {
      const assigned = (base & ASSIGNED) !== 0;
      out.assigned = assigned;
      out.asid = region.asid[0] ?? 0;
      out.gpa = (region.gpa[0] ?? 0) + (assigned ? i * SZ_4K : 0);
      out.size = '2M';
      out.validated = (base & VALIDATED) !== 0;
      out.immutable = (base & IMMUTABLE) !== 0;
      out.vmsa = i === 0 && (base & VMSA) !== 0;
      return out;
    }
    const flags = region.flags[i] ?? 0;
    out.assigned = (flags & ASSIGNED) !== 0;
    out.asid = region.asid[i] ?? 0;
    out.gpa = region.gpa[i] ?? 0;
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
    const base = region.flags[0] ?? 0;
    if ((base & SIZE_2M) !== 0) return (base & ASSIGNED) !== 0;
    return ((region.flags[pfn % FRAMES_PER_2M] ?? 0) & ASSIGNED) !== 0;
  }

  /** The size that governs `pfn` (from the 2M-aligned entry). */
  sizeOf(pfn: number): PageSize {
    const region = this.regions.get(Math.floor(pfn / FRAMES_PER_2M));
    return region !== undefined && ((region.flags[0] ?? 0) & SIZE_2M) !== 0 ? '2M' : '4K';
  }

  /**
   * Whether any frame of the 2M region holding `pfn` is assigned: a 2M-or-larger host or IO
   * mapping of that region fails the RMP check (adjust_direct_map() comment; Joerg Roedel's
   * amd_iommu=nohugepages commit, lore 20240905072240.253313-1-joro@8bytes.org).
   */
  regionHasAssigned(pfn: number): boolean {
    const region = this.regions.get(Math.floor(pfn / FRAMES_PER_2M));
    if (region === undefined) return false;
    const base = region.flags[0] ?? 0;
    if ((base & SIZE_2M) !== 0) return (base & ASSIGNED) !== 0;
    return region.assigned4K > 0;
  }

  /** RmpView: frames whose entry is not the default Hypervisor one, ascending. */
  *frames(): Iterable<number> {
    const keys = [...this.regions.keys()].sort((a, b) => a - b);
    for (const key of keys) {
      const region = this.regions.get(key);
      if (region === undefined) continue;
      const first = key * FRAMES_PER_2M;
      if (((region.flags[0] ?? 0) & SIZE_2M) !== 0) {
        for (let i = 0; i < FRAMES_PER_2M; i++) yield first + i;
        continue;
      }
      for (let i = 0; i < FRAMES_PER_2M; i++) {
        if ((region.flags[i] ?? 0) !== 0 || (region.asid[i] ?? 0) !== 0 || (region.gpa[i] ?? 0) !== 0) yield first + i;
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
   *   Linux rmpupdate() loops on FAIL_OVERLAP assuming a transient race; in this model it is
   *   permanent, so the caller sees it.
   * - Any change of asid, gpa, size or assigned clears Validated and the VMSA bit (VeriSMo
   *   rmpupdate / _rmpupdate); an update that changes none of them keeps Validated.
   */
  rmpUpdate(hpa: number, args: RmpUpdateArgs): number {
    const pfn = Math.floor(hpa / SZ_4K);
    const key = Math.floor(pfn / FRAMES_PER_2M);
    const i = pfn % FRAMES_PER_2M;
    const immutableBit = args.immutable === true ? IMMUTABLE : 0;
    const assignedBit = args.assigned ? ASSIGNED : 0;
    let region = this.regions.get(key);
    // The raw entry holds a 10-bit ASID; a larger one cannot be stored. UNCONFIRMED status.
    if (args.asid > RMP_MAX_ASID) return RMPUPDATE_FAIL_INPUT;

    if (args.size === '2M') {
      if (i !== 0) return RMPUPDATE_FAIL_INPUT;
      if (args.assigned && args.gpa % SZ_2M !== 0) return RMPUPDATE_FAIL_INPUT;
      let validatedBit = 0;
      if (region !== undefined) {
        const base = region.flags[0] ?? 0;
        if ((base & IMMUTABLE) !== 0) return RMPUPDATE_FAIL_PERMISSION;
        if ((base & SIZE_2M) === 0) {
          if (region.immutable4K > 0) return RMPUPDATE_FAIL_PERMISSION;
          if (region.assigned4K > 0) return RMPUPDATE_FAIL_OVERLAP;
          // 4K -> 2M: the sub-entries are all unassigned and mutable (checked above). Reset them:
          // under a 2M entry only the base entry is ever read.
          region.flags.fill(0);
          region.asid.fill(0);
          region.gpa.fill(0);
        } else if (
          (base & ASSIGNED) === assignedBit &&
          region.asid[0] === args.asid &&
          region.gpa[0] === args.gpa
        ) {
          validatedBit = base & (VALIDATED | VMSA);
        }
      } else {
        // Even an unassigned 2M entry is a state of its own (size 2M): allocate.
        region = this.allocate(key);
      }
      region.flags[0] = assignedBit | SIZE_2M | immutableBit | validatedBit;
      region.asid[0] = args.asid;
      region.gpa[0] = args.gpa;
      region.assigned4K = 0;
      region.immutable4K = 0;
      return RMPUPDATE_OK;
    }

    // 4K update.
    if (region === undefined) {
      // Writing the default state into an untouched region changes nothing: allocate nothing.
      if (!args.assigned && args.asid === 0 && args.gpa === 0 && immutableBit === 0) return RMPUPDATE_OK;
      region = this.allocate(key);
    }
    const base = region.flags[0] ?? 0;
    if ((base & SIZE_2M) !== 0) {
      if ((base & IMMUTABLE) !== 0) return RMPUPDATE_FAIL_PERMISSION;
      if ((base & ASSIGNED) !== 0) return RMPUPDATE_FAIL_OVERLAP;
      // An unassigned 2M entry (e.g. Linux rmp_make_shared(pfn, PG_LEVEL_2M)) over a region
      // now being touched at 4K: the region's frames are all Hypervisor-owned, so we demote it
      // to 4K default entries first. UNCONFIRMED: what the raw sub-entries hold after a 2M
      // RMPUPDATE is not architectural; Linux only reads the level from the 2M-aligned entry.
      region.flags[0] = 0;
      region.asid[0] = 0;
      region.gpa[0] = 0;
    }
    const old = region.flags[i] ?? 0;
    if ((old & IMMUTABLE) !== 0) return RMPUPDATE_FAIL_PERMISSION;
    const unchanged =
      (old & ASSIGNED) === assignedBit && (base & SIZE_2M) === 0 && region.asid[i] === args.asid && region.gpa[i] === args.gpa;
    const keep = unchanged ? old & (VALIDATED | VMSA) : 0;
    this.writeRaw(region, i, assignedBit | immutableBit | keep, args.asid, args.gpa);
    return RMPUPDATE_OK;
  }

  // ---- PSMASH -----------------------------------------------------------------------------

  /**
   * PSMASH (host): a 2M-aligned, assigned 2M entry becomes 512 4K entries with the same ASID,
   * gpa + i*4K, and Validated PRESERVED (comment on Linux psmash(); DOMAIN.md). There is no
   * un-smash (Michael Roth, lore 20240501085210.2213060-3-michael.roth@amd.com).
   * PSMASH_FAIL_INUSE needs concurrency, which the model does not have.
   */
  psmash(hpa: number): number {
    const pfn = Math.floor(hpa / SZ_4K);
    if (hpa % SZ_2M !== 0) return PSMASH_FAIL_INPUT;
    const region = this.regions.get(Math.floor(pfn / FRAMES_PER_2M));
    if (region === undefined) return PSMASH_FAIL_INPUT;
    const base = region.flags[0] ?? 0;
    if ((base & SIZE_2M) === 0 || (base & ASSIGNED) === 0) return PSMASH_FAIL_INPUT;
    const asid = region.asid[0] ?? 0;
    const gpa = region.gpa[0] ?? 0;
    const keep = base & (ASSIGNED | VALIDATED | IMMUTABLE);
    region.flags.fill(keep);
    region.flags[0] = keep | (base & VMSA);
    region.asid.fill(asid);
    for (let i = 0; i < FRAMES_PER_2M; i++) region.gpa[i] = gpa + i * SZ_4K;
    region.assigned4K = FRAMES_PER_2M;
    region.immutable4K = (keep & IMMUTABLE) !== 0 ? FRAMES_PER_2M : 0;
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
    if (size === '2M' && (hpa % SZ_2M !== 0 || gpa % SZ_2M !== 0)) return PVALIDATE_FAIL_INPUT;
    const pfn = Math.floor(hpa / SZ_4K);
    const region = this.regions.get(Math.floor(pfn / FRAMES_PER_2M));
    if (region === undefined) return PVALIDATE_NPF_NOT_ASSIGNED;
    const i = pfn % FRAMES_PER_2M;
    const base = region.flags[0] ?? 0;
    const is2M = (base & SIZE_2M) !== 0;
    const at = is2M ? 0 : i;
    const flags = region.flags[at] ?? 0;
    const entryGpa = (region.gpa[at] ?? 0) + (is2M ? i * SZ_4K : 0);
    if ((flags & ASSIGNED) === 0) return PVALIDATE_NPF_NOT_ASSIGNED;
    if ((flags & IMMUTABLE) !== 0) return PVALIDATE_NPF_IMMUTABLE;
    if (region.asid[at] !== asid) return PVALIDATE_NPF_ASID;
    if (entryGpa !== gpa) return PVALIDATE_NPF_GPA;
    if (size === '2M' && !is2M) return PVALIDATE_FAIL_SIZEMISMATCH;
    if (size === '4K' && is2M) return PVALIDATE_NPF_SIZEM;
    if (((flags & VALIDATED) !== 0) === validate) return PVALIDATE_FAIL_NOUPDATE;
    region.flags[at] = validate ? flags | VALIDATED : flags & ~VALIDATED;
    return PVALIDATE_OK;
  }

  // ---- internals --------------------------------------------------------------------------

  private allocate(key: number): Region {
    const region = newRegion();
    this.regions.set(key, region);
    return region;
  }

  private writeRaw(region: Region, i: number, flags: number, asid: number, gpa: number): void {
    const old = region.flags[i] ?? 0;
    region.assigned4K += (flags & ASSIGNED) - (old & ASSIGNED);
    region.immutable4K += ((flags & IMMUTABLE) - (old & IMMUTABLE)) / IMMUTABLE;
    region.flags[i] = flags;
    region.asid[i] = asid;
    region.gpa[i] = gpa;
  }
}
