import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import {
  PVALIDATE_NPF_ASID,
  PVALIDATE_NPF_GPA,
  PVALIDATE_NPF_IMMUTABLE,
  PVALIDATE_NPF_NOT_ASSIGNED,
  PVALIDATE_NPF_SIZEM,
  Rmp,
} from '../../src/model/rmp.ts';
import { SZ_2M, SZ_4K } from '../../src/model/size.ts';
import { PerFrameRmp } from './rmp-per-frame.ts';
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
  type RmpUpdateArgs,
} from '../../src/model/types.ts';

const ASID = 5;
const H = 0x4000_0000; // a 2M-aligned host address
const G = 0x20_0000; // a 2M-aligned guest address
const PFN = H / SZ_4K;

const private2M = (gpa = G): RmpUpdateArgs => ({ assigned: true, asid: ASID, gpa, size: '2M' });
const private4K = (gpa: number): RmpUpdateArgs => ({ assigned: true, asid: ASID, gpa, size: '4K' });
const shared = (size: '4K' | '2M' = '4K'): RmpUpdateArgs => ({ assigned: false, asid: 0, gpa: 0, size });

/** Whether frame `at` continues the run of frame `from` in the per-frame RMP: the same fields, a GPA 4K further per frame when assigned. */
function sameRun(ref: PerFrameRmp, from: number, at: number): boolean {
  const first = ref.entry(from);
  const e = ref.entry(at);
  return (
    e.assigned === first.assigned &&
    e.asid === first.asid &&
    e.size === first.size &&
    e.validated === first.validated &&
    e.immutable === first.immutable &&
    e.vmsa === first.vmsa &&
    e.gpa === (first.assigned ? first.gpa + (at - from) * SZ_4K : first.gpa)
  );
}

describe('Rmp entries', () => {
  it('reports the default Hypervisor entry for untouched frames and allocates nothing', () => {
    const rmp = new Rmp();
    expect(rmp.entry(12345)).toEqual({ assigned: false, asid: 0, gpa: 0, size: '4K', validated: false, immutable: false, vmsa: false });
    expect(rmp.regionCount).toBe(0);
    expect([...rmp.frames()]).toEqual([]);
    // Writing the default state at 4K changes nothing and allocates nothing.
    expect(rmp.rmpUpdate(H, shared())).toBe(RMPUPDATE_OK);
    expect(rmp.regionCount).toBe(0);
  });

  it('a 2M entry governs all 512 frames: size, ownership, and gpa = base + offset', () => {
    const rmp = new Rmp();
    expect(rmp.rmpUpdate(H, private2M())).toBe(RMPUPDATE_OK);
    for (const i of [0, 1, 255, 511]) {
      expect(rmp.entry(PFN + i)).toMatchObject({ assigned: true, asid: ASID, gpa: G + i * SZ_4K, size: '2M', validated: false });
    }
    expect(rmp.entry(PFN + 512).assigned).toBe(false);
    const frames = [...rmp.frames()];
    expect(frames).toHaveLength(512);
    expect(frames[0]).toBe(PFN);
    expect(frames[511]).toBe(PFN + 511);
    expect(rmp.regionHasAssigned(PFN + 7)).toBe(true);
  });

  it('rmpRead reads by host address', () => {
    const rmp = new Rmp();
    rmp.rmpUpdate(H + 3 * SZ_4K, private4K(G + 3 * SZ_4K));
    expect(rmp.rmpRead(H + 3 * SZ_4K)).toMatchObject({ assigned: true, gpa: G + 3 * SZ_4K, size: '4K' });
    expect([...rmp.frames()]).toEqual([PFN + 3]);
  });
});

describe('RMPUPDATE', () => {
  const cases: { name: string; setup: (rmp: Rmp) => void; hpa: number; args: RmpUpdateArgs; status: number }[] = [
    { name: '2M at an unaligned frame', setup: () => {}, hpa: H + SZ_4K, args: private2M(), status: RMPUPDATE_FAIL_INPUT },
    { name: '2M at an unaligned gpa', setup: () => {}, hpa: H, args: private2M(G + SZ_4K), status: RMPUPDATE_FAIL_INPUT },
    { name: 'an ASID wider than 10 bits', setup: () => {}, hpa: H, args: { ...private4K(G), asid: 1024 }, status: RMPUPDATE_FAIL_INPUT },
    {
      name: '2M over a region holding an assigned 4K',
      setup: (rmp) => rmp.rmpUpdate(H + 9 * SZ_4K, private4K(G + 9 * SZ_4K)),
      hpa: H,
      args: private2M(),
      status: RMPUPDATE_FAIL_OVERLAP,
    },
    {
      name: '2M over a region whose base frame is assigned 4K',
      setup: (rmp) => rmp.rmpUpdate(H, private4K(G)),
      hpa: H,
      args: private2M(),
      status: RMPUPDATE_FAIL_OVERLAP,
    },
    {
      name: '4K inside a region governed by an assigned 2M entry',
      setup: (rmp) => rmp.rmpUpdate(H, private2M()),
      hpa: H + 5 * SZ_4K,
      args: shared(),
      status: RMPUPDATE_FAIL_OVERLAP,
    },
    {
      name: '4K at the base of an assigned 2M entry',
      setup: (rmp) => rmp.rmpUpdate(H, private2M()),
      hpa: H,
      args: private4K(G),
      status: RMPUPDATE_FAIL_OVERLAP,
    },
    {
      name: 'an immutable 4K entry',
      setup: (rmp) => rmp.rmpUpdate(H, { assigned: true, asid: 0, gpa: 0, size: '4K', immutable: true }),
      hpa: H,
      args: shared(),
      status: RMPUPDATE_FAIL_PERMISSION,
    },
    {
      name: 'an immutable 2M entry, at 4K',
      setup: (rmp) => rmp.rmpUpdate(H, { ...private2M(), immutable: true }),
      hpa: H + SZ_4K,
      args: shared(),
      status: RMPUPDATE_FAIL_PERMISSION,
    },
    {
      name: '2M over a region holding an immutable (HV-Fixed) 4K',
      setup: (rmp) => rmp.rmpUpdate(H + SZ_4K, { assigned: false, asid: 0, gpa: 0, size: '4K', immutable: true }),
      hpa: H,
      args: private2M(),
      status: RMPUPDATE_FAIL_PERMISSION,
    },
    { name: '2M over an untouched region', setup: () => {}, hpa: H, args: private2M(), status: RMPUPDATE_OK },
    {
      name: '2M over an assigned 2M entry (re-assign)',
      setup: (rmp) => rmp.rmpUpdate(H, private2M()),
      hpa: H,
      args: { ...private2M(), asid: ASID + 1 },
      status: RMPUPDATE_OK,
    },
    {
      name: '2M shared over an assigned 2M entry (rmp_make_shared at 2M)',
      setup: (rmp) => rmp.rmpUpdate(H, private2M()),
      hpa: H,
      args: shared('2M'),
      status: RMPUPDATE_OK,
    },
    {
      name: '4K under an unassigned 2M entry',
      setup: (rmp) => rmp.rmpUpdate(H, shared('2M')),
      hpa: H + 7 * SZ_4K,
      args: private4K(G + 7 * SZ_4K),
      status: RMPUPDATE_OK,
    },
  ];
  it.each(cases)('$name -> $status', ({ setup, hpa, args, status }) => {
    const rmp = new Rmp();
    setup(rmp);
    expect(rmp.rmpUpdate(hpa, args)).toBe(status);
  });

  it('a refused update leaves the entry unchanged', () => {
    const rmp = new Rmp();
    rmp.rmpUpdate(H, private2M());
    rmp.pvalidateEntry(H, G, ASID, '2M', true);
    const before = rmp.entry(PFN + 5);
    expect(rmp.rmpUpdate(H + 5 * SZ_4K, shared())).toBe(RMPUPDATE_FAIL_OVERLAP);
    expect(rmp.entry(PFN + 5)).toEqual(before);
  });

  it('4K under an unassigned 2M entry demotes the region to 4K entries', () => {
    const rmp = new Rmp();
    rmp.rmpUpdate(H, shared('2M'));
    expect(rmp.entry(PFN + 7).size).toBe('2M');
    rmp.rmpUpdate(H + 7 * SZ_4K, private4K(G + 7 * SZ_4K));
    expect(rmp.entry(PFN + 7)).toMatchObject({ assigned: true, size: '4K', gpa: G + 7 * SZ_4K });
    expect(rmp.entry(PFN)).toMatchObject({ assigned: false, size: '4K' });
  });

  const changes: { name: string; args: RmpUpdateArgs; keeps: boolean }[] = [
    { name: 'the same state again', args: private4K(G), keeps: true },
    { name: 'another asid', args: { ...private4K(G), asid: ASID + 1 }, keeps: false },
    { name: 'another gpa', args: private4K(G + SZ_4K), keeps: false },
    { name: 'unassigned', args: { ...private4K(G), assigned: false }, keeps: false },
  ];
  it.each(changes)('4K update to $name: validated kept = $keeps (VeriSMo rmpupdate)', ({ args, keeps }) => {
    const rmp = new Rmp();
    rmp.rmpUpdate(H, private4K(G));
    expect(rmp.pvalidateEntry(H, G, ASID, '4K', true)).toBe(PVALIDATE_OK);
    expect(rmp.rmpUpdate(H, args)).toBe(RMPUPDATE_OK);
    expect(rmp.entry(PFN).validated).toBe(keeps);
  });

  it('a 2M update over a 2M entry clears validated when anything changes, keeps it otherwise', () => {
    const rmp = new Rmp();
    rmp.rmpUpdate(H, private2M());
    rmp.pvalidateEntry(H, G, ASID, '2M', true);
    expect(rmp.rmpUpdate(H, private2M())).toBe(RMPUPDATE_OK);
    expect(rmp.entry(PFN + 100).validated).toBe(true);
    expect(rmp.rmpUpdate(H, { ...private2M(), asid: ASID + 1 })).toBe(RMPUPDATE_OK);
    expect(rmp.entry(PFN + 100).validated).toBe(false);
  });

  it('there is no un-smash: after PSMASH a 2M update overlaps until every 4K is made shared', () => {
    const rmp = new Rmp();
    rmp.rmpUpdate(H, private2M());
    rmp.pvalidateEntry(H, G, ASID, '2M', true);
    expect(rmp.psmash(H)).toBe(PSMASH_OK);
    expect(rmp.rmpUpdate(H, private2M())).toBe(RMPUPDATE_FAIL_OVERLAP);
    for (let i = 0; i < 512; i++) expect(rmp.rmpUpdate(H + i * SZ_4K, shared())).toBe(RMPUPDATE_OK);
    expect(rmp.rmpUpdate(H, private2M())).toBe(RMPUPDATE_OK);
    // Promotion by RMPUPDATE(2M) clears Validated: the guest must validate again.
    expect(rmp.entry(PFN).validated).toBe(false);
  });
});

describe('PSMASH', () => {
  it('splits an assigned 2M entry into 512 4K entries, validated preserved', () => {
    const rmp = new Rmp();
    rmp.rmpUpdate(H, private2M());
    expect(rmp.pvalidateEntry(H, G, ASID, '2M', true)).toBe(PVALIDATE_OK);
    expect(rmp.psmash(H)).toBe(PSMASH_OK);
    for (const i of [0, 1, 300, 511]) {
      expect(rmp.entry(PFN + i)).toEqual({
        assigned: true,
        asid: ASID,
        gpa: G + i * SZ_4K,
        size: '4K',
        validated: true,
        immutable: false,
        vmsa: false,
      });
    }
    // The 4K entries can now be changed one by one.
    expect(rmp.rmpUpdate(H + 3 * SZ_4K, shared())).toBe(RMPUPDATE_OK);
    expect(rmp.entry(PFN + 3).assigned).toBe(false);
    expect(rmp.entry(PFN + 4).validated).toBe(true);
  });

  const refused: { name: string; setup: (rmp: Rmp) => void; hpa: number }[] = [
    { name: 'unaligned', setup: (rmp) => rmp.rmpUpdate(H, private2M()), hpa: H + SZ_4K },
    { name: 'untouched region', setup: () => {}, hpa: H },
    { name: '4K entries', setup: (rmp) => rmp.rmpUpdate(H, private4K(G)), hpa: H },
    { name: 'an unassigned 2M entry', setup: (rmp) => rmp.rmpUpdate(H, shared('2M')), hpa: H },
    {
      name: 'an already smashed region',
      setup: (rmp) => {
        rmp.rmpUpdate(H, private2M());
        rmp.psmash(H);
      },
      hpa: H,
    },
  ];
  it.each(refused)('refuses $name with FAIL_INPUT', ({ setup, hpa }) => {
    const rmp = new Rmp();
    setup(rmp);
    expect(rmp.psmash(hpa)).toBe(PSMASH_FAIL_INPUT);
  });
});

describe('PVALIDATE (RMP part)', () => {
  const cases: {
    name: string;
    setup: (rmp: Rmp) => void;
    hpa: number;
    gpa: number;
    asid?: number;
    size: '4K' | '2M';
    validate?: boolean;
    outcome: number;
  }[] = [
    { name: '4K on a 4K entry', setup: (r) => r.rmpUpdate(H, private4K(G)), hpa: H, gpa: G, size: '4K', outcome: PVALIDATE_OK },
    { name: '2M on a 2M entry', setup: (r) => r.rmpUpdate(H, private2M()), hpa: H, gpa: G, size: '2M', outcome: PVALIDATE_OK },
    { name: '2M misaligned', setup: (r) => r.rmpUpdate(H, private2M()), hpa: H + SZ_4K, gpa: G + SZ_4K, size: '2M', outcome: PVALIDATE_FAIL_INPUT },
    { name: '2M on 4K entries', setup: (r) => r.rmpUpdate(H, private4K(G)), hpa: H, gpa: G, size: '2M', outcome: PVALIDATE_FAIL_SIZEMISMATCH },
    { name: '4K on a 2M entry', setup: (r) => r.rmpUpdate(H, private2M()), hpa: H + SZ_4K, gpa: G + SZ_4K, size: '4K', outcome: PVALIDATE_NPF_SIZEM },
    { name: 'unassigned', setup: () => {}, hpa: H, gpa: G, size: '4K', outcome: PVALIDATE_NPF_NOT_ASSIGNED },
    { name: 'wrong asid', setup: (r) => r.rmpUpdate(H, private4K(G)), hpa: H, gpa: G, asid: ASID + 1, size: '4K', outcome: PVALIDATE_NPF_ASID },
    { name: 'wrong gpa', setup: (r) => r.rmpUpdate(H, private4K(G)), hpa: H, gpa: G + SZ_4K, size: '4K', outcome: PVALIDATE_NPF_GPA },
    {
      name: 'wrong gpa inside a 2M entry',
      setup: (r) => r.rmpUpdate(H, private2M()),
      hpa: H + SZ_4K,
      gpa: G,
      size: '4K',
      outcome: PVALIDATE_NPF_GPA,
    },
    {
      name: 'immutable',
      setup: (r) => r.rmpUpdate(H, { ...private4K(G), immutable: true }),
      hpa: H,
      gpa: G,
      size: '4K',
      outcome: PVALIDATE_NPF_IMMUTABLE,
    },
    { name: 'rescind when not validated', setup: (r) => r.rmpUpdate(H, private4K(G)), hpa: H, gpa: G, size: '4K', validate: false, outcome: PVALIDATE_FAIL_NOUPDATE },
    {
      name: 'validate twice',
      setup: (r) => {
        r.rmpUpdate(H, private4K(G));
        r.pvalidateEntry(H, G, ASID, '4K', true);
      },
      hpa: H,
      gpa: G,
      size: '4K',
      outcome: PVALIDATE_FAIL_NOUPDATE,
    },
  ];
  it.each(cases)('$name -> $outcome', ({ setup, hpa, gpa, asid, size, validate, outcome }) => {
    const rmp = new Rmp();
    setup(rmp);
    expect(rmp.pvalidateEntry(hpa, gpa, asid ?? ASID, size, validate ?? true)).toBe(outcome);
  });

  it('validate then rescind a 2M entry flips validated on all 512 frames', () => {
    const rmp = new Rmp();
    rmp.rmpUpdate(H, private2M());
    expect(rmp.pvalidateEntry(H, G, ASID, '2M', true)).toBe(PVALIDATE_OK);
    expect(rmp.entry(PFN + 511).validated).toBe(true);
    expect(rmp.pvalidateEntry(H, G, ASID, '2M', false)).toBe(PVALIDATE_OK);
    expect(rmp.entry(PFN + 511).validated).toBe(false);
  });

  it('checks the asid of the whole 2M region through its authoritative entry', () => {
    const rmp = new Rmp();
    rmp.rmpUpdate(H + SZ_2M, private2M(G + SZ_2M));
    expect(rmp.pvalidateEntry(H + SZ_2M, G + SZ_2M, ASID, '2M', true)).toBe(PVALIDATE_OK);
    expect(rmp.entry(PFN + 512 + 17).validated).toBe(true);
  });
});

describe('the range-level RMP against the per-frame one (random sequences)', () => {
  it('gives the same statuses, entries, frames and runs on every sequence', () => {
    const problems: string[] = [];
    for (let seed = 1; seed <= 40; seed++) {
      const random = seedrandom(`rmp-${seed}`);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
      const rmp = new Rmp();
      const ref = new PerFrameRmp();
      // Three 2M regions; frames near region edges and a few in the middle.
      const frames = [0, 1, 2, 255, 510, 511, 512, 513, 1023, 1024, 1030, 1535];
      const gpas = [0, G, G + SZ_4K, 2 * G, G + 2 * SZ_4K];
      for (let step = 0; step < 300; step++) {
        const pfn = PFN + pick(frames);
        const r = random();
        let a: number;
        let b: number;
        if (r < 0.35) {
          const size = random() < 0.4 ? '2M' : '4K';
          const hpa = (size === '2M' ? PFN + pick([0, 512, 1024, 1]) : pfn) * SZ_4K;
          const args: RmpUpdateArgs = { assigned: random() < 0.7, asid: pick([0, ASID, ASID + 1]), gpa: pick(gpas) + (size === '4K' ? (pfn % 512) * SZ_4K : 0), size, immutable: random() < 0.03 };
          a = rmp.rmpUpdate(hpa, args);
          b = ref.rmpUpdate(hpa, args);
        } else if (r < 0.5) {
          const hpa = (PFN + pick([0, 512, 1024, 3])) * SZ_4K;
          a = rmp.psmash(hpa);
          b = ref.psmash(hpa);
        } else if (r < 0.6) {
          // The range methods against the per-frame reference frame by frame, until one fails.
          const count = 1 + Math.floor(random() * 700);
          const entry = ref.entry(pfn);
          if (random() < 0.5) {
            const args: RmpUpdateArgs = { assigned: random() < 0.7, asid: pick([0, ASID, ASID + 1]), gpa: pick([entry.gpa, pick(gpas) + (pfn % 512) * SZ_4K]), size: '4K', immutable: random() < 0.02 };
            a = rmp.rmpUpdate4KRun(pfn * SZ_4K, count, args);
            for (b = 0; b < count && ref.rmpUpdate((pfn + b) * SZ_4K, { ...args, gpa: args.gpa + (args.assigned ? b * SZ_4K : 0) }) === RMPUPDATE_OK; b++);
          } else {
            const validate = random() < 0.6;
            const gpa = random() < 0.9 ? entry.gpa : entry.gpa + SZ_4K;
            a = rmp.pvalidate4KRun(pfn * SZ_4K, gpa, ASID, validate, count);
            for (b = 0; b < count && ref.pvalidateEntry((pfn + b) * SZ_4K, gpa + b * SZ_4K, ASID, '4K', validate) === PVALIDATE_OK; b++);
          }
        } else {
          const size = random() < 0.3 ? '2M' : '4K';
          const entry = ref.entry(pfn);
          const gpa = size === '2M' ? entry.gpa - (entry.gpa % SZ_2M) : entry.gpa;
          const hpa = size === '2M' ? (pfn - (pfn % 512)) * SZ_4K : pfn * SZ_4K;
          const validate = random() < 0.6;
          const at = random() < 0.9 ? gpa : gpa + SZ_4K;
          a = rmp.pvalidateEntry(hpa, at, ASID, size, validate);
          b = ref.pvalidateEntry(hpa, at, ASID, size, validate);
        }
        if (a !== b) problems.push(`seed ${seed} step ${step}: status ${a}, per-frame ${b}`);
        if (step % 10 !== 0) continue;
        for (let f = PFN - 1; f < PFN + 1537; f++) {
          const x = JSON.stringify(rmp.entry(f));
          const y = JSON.stringify(ref.entry(f));
          if (x !== y) problems.push(`seed ${seed} step ${step} frame ${f}: ${x}, per-frame ${y}`);
          if (rmp.regionHasAssigned(f) !== ref.regionHasAssigned(f)) problems.push(`seed ${seed} step ${step} frame ${f}: regionHasAssigned`);
        }
        if ([...rmp.frames()].join() !== [...ref.frames()].join()) problems.push(`seed ${seed} step ${step}: frames()`);
        // runEnd: every frame of a run continues the first one; the next frame does not.
        for (let f = PFN - 600; f < PFN + 2100; ) {
          const end = rmp.runEnd(f, PFN + 2100);
          for (let g = f; g <= Math.min(end, PFN + 2099); g++) {
            if (sameRun(ref, f, g) !== g < end) problems.push(`seed ${seed} step ${step}: run from ${f} to ${end} wrong at ${g}`);
          }
          f = end;
        }
      }
    }
    expect(problems.slice(0, 5)).toEqual([]);
  });

  it('keeps a 2M entry and its PSMASH as one summary: no per-frame arrays until a frame differs', () => {
    const rmp = new Rmp();
    expect(rmp.rmpUpdate(H, private2M())).toBe(RMPUPDATE_OK);
    expect(rmp.psmash(H)).toBe(PSMASH_OK);
    expect(rmp.detailCount).toBe(0);
    expect(rmp.runEnd(PFN, PFN + 4096)).toBe(PFN + 512);
    expect(rmp.runEnd(PFN + 512, 2 ** 40)).toBe(2 ** 40);
    expect(rmp.rmpUpdate(H + 5 * SZ_4K, shared())).toBe(RMPUPDATE_OK);
    expect(rmp.detailCount).toBe(1);
    expect(rmp.runEnd(PFN, PFN + 4096)).toBe(PFN + 5);
    expect(rmp.runEnd(PFN + 5, PFN + 4096)).toBe(PFN + 6);
    expect(rmp.runEnd(PFN + 6, PFN + 4096)).toBe(PFN + 512);
  });
});

describe('runEnd() across stretches of 2M entries', () => {
  // A 1 TiB guest's 1G swiotlb pool is 512 hypervisor-owned 2M entries side by side: runEnd()
  // crosses such a stretch in one step, and must still stop exactly where a frame differs.
  const REGIONS = 10;
  const end = PFN + REGIONS * 512;

  it('keeps a pool shared 2M by 2M as one stretch, cut where a region changes', () => {
    const rmp = new Rmp();
    for (let k = 0; k < 512; k++) expect(rmp.rmpUpdate(H + k * SZ_2M, shared('2M'))).toBe(RMPUPDATE_OK);
    expect(rmp.lineStretches).toBe(1);
    expect(rmp.runEnd(PFN + 7, PFN + 512 * 512 + 9)).toBe(PFN + 512 * 512);
    expect(rmp.runEnd(PFN, 2 ** 40)).toBe(PFN + 512 * 512);
    // A 4K update inside region 100 cuts it out: the run from region 0 stops at its first frame.
    expect(rmp.rmpUpdate(H + 100 * SZ_2M + 3 * SZ_4K, shared())).toBe(RMPUPDATE_OK);
    expect(rmp.lineStretches).toBe(2);
    expect(rmp.runEnd(PFN + 1, 2 ** 40)).toBe(PFN + 100 * 512);
    expect(rmp.runEnd(PFN + 101 * 512, 2 ** 40)).toBe(PFN + 512 * 512);
    // The same 2M entry again puts it back between its neighbours: one stretch.
    expect(rmp.rmpUpdate(H + 100 * SZ_2M, shared('2M'))).toBe(RMPUPDATE_OK);
    expect(rmp.lineStretches).toBe(1);
    expect(rmp.runEnd(PFN + 5, 2 ** 40)).toBe(PFN + 512 * 512);
    // A refused update leaves region 200 as it was, out of the stretch: the walk crosses it frame
    // by frame and goes on over the stretch after it.
    expect(rmp.rmpUpdate(H + 200 * SZ_2M, private2M(G + SZ_4K))).toBe(RMPUPDATE_FAIL_INPUT);
    expect(rmp.lineStretches).toBe(2);
    expect(rmp.runEnd(PFN + 1, 2 ** 40)).toBe(PFN + 512 * 512);
    expect(rmp.runEnd(PFN + 200 * 512 + 4, PFN + 300 * 512 + 1)).toBe(PFN + 300 * 512 + 1);
    // Region 0 likewise: the walk enters the stretch after it at its start.
    expect(rmp.rmpUpdate(H, private2M(G + SZ_4K))).toBe(RMPUPDATE_FAIL_INPUT);
    expect(rmp.runEnd(PFN + 1, 2 ** 40)).toBe(PFN + 512 * 512);
    // Private 2M entries at consecutive GPAs are one line too; at other GPAs each is its own.
    const other = new Rmp();
    for (let k = 0; k < 4; k++) expect(other.rmpUpdate(H + k * SZ_2M, private2M(G + k * SZ_2M))).toBe(RMPUPDATE_OK);
    expect(other.rmpUpdate(H + 4 * SZ_2M, private2M(G))).toBe(RMPUPDATE_OK);
    expect(other.lineStretches).toBe(2);
    expect(other.runEnd(PFN + 9, 2 ** 40)).toBe(PFN + 4 * 512);
    // PVALIDATEd one by one, the four are one line again once all of them are validated.
    for (let k = 0; k < 4; k++) expect(other.pvalidateEntry(H + k * SZ_2M, G + k * SZ_2M, ASID, '2M', true)).toBe(PVALIDATE_OK);
    expect(other.lineStretches).toBe(2);
    expect(other.runEnd(PFN + 9, 2 ** 40)).toBe(PFN + 4 * 512);
    expect(other.runEnd(PFN + 2 * 512 + 9, 2 ** 40)).toBe(PFN + 4 * 512);
  });

  it('answers as the per-frame RMP does from any frame, on random sequences', () => {
    const problems: string[] = [];
    for (let seed = 1; seed <= 30; seed++) {
      const random = seedrandom(`rmp-stretch-${seed}`);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
      const rmp = new Rmp();
      const ref = new PerFrameRmp();
      for (let step = 0; step < 200; step++) {
        const k = Math.floor(random() * REGIONS);
        const r = random();
        let a: number;
        let b: number;
        if (r < 0.55) {
          // 2M entries: shared, or private at the GPA that continues the region before (a line), or elsewhere.
          // (A GPA off 2M is refused: the region leaves its stretch unchanged.)
          const args = random() < 0.5 ? shared('2M') : private2M(pick([G + k * SZ_2M, G + k * SZ_2M, 40 * SZ_2M, G + (k + 1) * SZ_2M, G + k * SZ_2M + SZ_4K]));
          if (args.assigned && random() < 0.2) args.asid = ASID + 1;
          a = rmp.rmpUpdate(H + k * SZ_2M, args);
          b = ref.rmpUpdate(H + k * SZ_2M, args);
        } else if (r < 0.7) {
          const i = pick([0, 1, 255, 511]);
          const args = random() < 0.5 ? shared() : private4K(G + k * SZ_2M + i * SZ_4K);
          a = rmp.rmpUpdate(H + k * SZ_2M + i * SZ_4K, args);
          b = ref.rmpUpdate(H + k * SZ_2M + i * SZ_4K, args);
        } else if (r < 0.8) {
          a = rmp.psmash(H + k * SZ_2M);
          b = ref.psmash(H + k * SZ_2M);
        } else {
          // PVALIDATE of a whole 2M entry, or of a frame (a smashed region): the Validated bit splits lines.
          const size = random() < 0.6 ? '2M' : '4K';
          const i = size === '2M' ? 0 : pick([0, 7]);
          const entry = ref.entry(PFN + k * 512 + i);
          const validate = random() < 0.6;
          a = rmp.pvalidateEntry(H + k * SZ_2M + i * SZ_4K, entry.gpa, ASID, size, validate);
          b = ref.pvalidateEntry(H + k * SZ_2M + i * SZ_4K, entry.gpa, ASID, size, validate);
        }
        if (a !== b) problems.push(`seed ${seed} step ${step}: status ${a}, per-frame ${b}`);
        if (step % 5 !== 0) continue;
        // From frames at and inside region edges, and limits inside and past the regions.
        for (const from of [PFN - 3, PFN, PFN + 1, PFN + 511, PFN + 512, PFN + 1000, PFN + 2048, PFN + 3071, PFN + 4608, end - 1]) {
          for (const limit of [end + 600, from + 1 + Math.floor(random() * (end + 600 - from))]) {
            const got = rmp.runEnd(from, limit);
            let want = from + 1;
            while (want < limit && sameRun(ref, from, want)) want++;
            if (got !== want) problems.push(`seed ${seed} step ${step}: runEnd(${from - PFN}, ${limit - PFN}) = ${got - PFN}, per-frame ${want - PFN}`);
          }
        }
      }
    }
    expect(problems.slice(0, 5)).toEqual([]);
  });
});
