// The per-frame RMP as it was before the range-level core of issue 15 (three 512-entry arrays per
// touched 2M region, every PSMASH and 2M update filling them), kept as the reference model the
// range-level src/model/rmp.ts is checked against (test/model/rmp.test.ts, random sequences). The
// rules and their sources are documented there.

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
const ASSIGNED = 1;
const SIZE_2M = 2;
const VALIDATED = 4;
const IMMUTABLE = 8;
const VMSA = 16;
interface Region {
  readonly flags: Uint8Array;
  readonly asid: Uint16Array;
  readonly gpa: Float64Array;
  assigned4K: number;
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
  private readonly regions = new Map<number, Region>();
  get regionCount(): number {
    return this.regions.size;
  }
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
  entry(pfn: number): RmpEntry {
    return this.load(pfn, defaultRmpEntry());
  }
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
  sizeOf(pfn: number): PageSize {
    const region = this.regions.get(Math.floor(pfn / FRAMES_PER_2M));
    return region !== undefined && ((region.flags[0] ?? 0) & SIZE_2M) !== 0 ? '2M' : '4K';
  }
  regionHasAssigned(pfn: number): boolean {
    const region = this.regions.get(Math.floor(pfn / FRAMES_PER_2M));
    if (region === undefined) return false;
    const base = region.flags[0] ?? 0;
    if ((base & SIZE_2M) !== 0) return (base & ASSIGNED) !== 0;
    return region.assigned4K > 0;
  }
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
  rmpUpdate(hpa: number, args: RmpUpdateArgs): number {
    const pfn = Math.floor(hpa / SZ_4K);
    const key = Math.floor(pfn / FRAMES_PER_2M);
    const i = pfn % FRAMES_PER_2M;
    const immutableBit = args.immutable === true ? IMMUTABLE : 0;
    const assignedBit = args.assigned ? ASSIGNED : 0;
    let region = this.regions.get(key);
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
        region = this.allocate(key);
      }
      region.flags[0] = assignedBit | SIZE_2M | immutableBit | validatedBit;
      region.asid[0] = args.asid;
      region.gpa[0] = args.gpa;
      region.assigned4K = 0;
      region.immutable4K = 0;
      return RMPUPDATE_OK;
    }
    if (region === undefined) {
      if (!args.assigned && args.asid === 0 && args.gpa === 0 && immutableBit === 0) return RMPUPDATE_OK;
      region = this.allocate(key);
    }
    const base = region.flags[0] ?? 0;
    if ((base & SIZE_2M) !== 0) {
      if ((base & IMMUTABLE) !== 0) return RMPUPDATE_FAIL_PERMISSION;
      if ((base & ASSIGNED) !== 0) return RMPUPDATE_FAIL_OVERLAP;
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
