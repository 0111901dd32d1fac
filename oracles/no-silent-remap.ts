// no-silent-remap: the point of PVALIDATE is that the host cannot remap a validated GPA quietly
// (DOMAIN.md, "The problem in one picture"). While the guest holds a page validated:
// - the frame behind it (the NPT translation, or the host's backing while the NPT leaf is zapped)
//   stays the frame the guest validated;
// - that frame stays assigned to the guest at that GPA with Validated set: any RMPUPDATE of it
//   clears Validated, which is how a host prepares a swap (research/amd-snp.md section 7, item 7);
// - its content changes only through the guest's own writes (CPU stores, bounce copies) and the
//   DMA of a device the guest accepted (TDI in RUN).
//
// State per case (kept per view): for each validated GFN, the frame and the content tokens of its
// two 2 KiB chunks the guest last saw. Incremental: the GFNs the step touched, and the GFNs whose
// recorded frame the step touched. Telling the guest's writes from anybody else's needs the step's
// calls and DMAs, so the full sweep checks the frame and its RMP entry, and takes the content as
// the new reference without judging it.

import { SZ_4K, defineOracle, hex, type Finding, type Step, type View } from 'cocofuzz/api';

const CHUNK = 2048;
const PAGE = SZ_4K;

interface Seen {
  pfn: number;
  t0: number;
  t1: number;
}

interface State {
  seen: Map<number, Seen>;
  /** Frame -> the GFN (or GFNs) whose record names it. */
  reverse: Map<number, number | Set<number>>;
}

const states = new WeakMap<View, State>();

function unlink(state: State, pfn: number, gfn: number): void {
  const gfns = state.reverse.get(pfn);
  if (gfns === gfn) state.reverse.delete(pfn);
  else if (typeof gfns === 'object') {
    gfns.delete(gfn);
    if (gfns.size === 0) state.reverse.delete(pfn);
  }
}

function link(state: State, pfn: number, gfn: number): void {
  const gfns = state.reverse.get(pfn);
  if (gfns === undefined) state.reverse.set(pfn, gfn);
  else if (typeof gfns === 'number') {
    if (gfns !== gfn) state.reverse.set(pfn, new Set([gfns, gfn]));
  } else gfns.add(gfn);
}

function forget(state: State, gfn: number): void {
  const seen = state.seen.get(gfn);
  if (seen === undefined) return;
  state.seen.delete(gfn);
  unlink(state, seen.pfn, gfn);
}

/**
 * Re-examine `gfn`. `guestWrites` holds the GFNs the guest (or its accepted devices) wrote in the
 * step; undefined in the full sweep, which does not judge content.
 */
function examine(view: View, state: State, gfn: number, guestWrites: ReadonlySet<number> | undefined, out: Finding[]): void {
  const page = view.guest.page(gfn);
  if (page === undefined || !page.validated || page.shared || page.converting) {
    forget(state, gfn);
    return;
  }
  const gpa = gfn * PAGE;
  const leaf = view.npt.leafAt(gpa);
  const hpa = leaf !== undefined ? leaf.pa + (gpa - leaf.iova) : view.host.backing(gpa)?.hpa;
  if (hpa === undefined) return;
  const pfn = Math.floor(hpa / PAGE);
  const base = pfn * PAGE;
  const t0 = view.memory.token(base);
  const t1 = view.memory.token(base + CHUNK);
  let before = state.seen.get(gfn);
  const previous = before === undefined ? undefined : { pfn: before.pfn, t0: before.t0, t1: before.t1 };
  if (before === undefined) {
    before = { pfn, t0, t1 };
    state.seen.set(gfn, before);
    link(state, pfn, gfn);
  } else {
    if (before.pfn !== pfn) {
      unlink(state, before.pfn, gfn);
      link(state, pfn, gfn);
      before.pfn = pfn;
    }
    before.t0 = t0;
    before.t1 = t1;
  }
  const via = leaf !== undefined ? 'NPT' : 'host backing';
  if (previous !== undefined && previous.pfn !== pfn) {
    out.push({
      message: `validated gpa ${hex(gpa)}: ${via} --> hpa ${hex(base)}, but the guest validated hpa ${hex(previous.pfn * PAGE)} ==> FAIL (backing frame changed behind the guest's back)`,
      details: { gpa, hpa: base, previousHpa: previous.pfn * PAGE },
    });
    return;
  }
  const entry = view.rmp.entry(pfn);
  let problem = '';
  if (!entry.assigned) problem = 'RMP entry no longer assigned';
  else if (entry.asid !== view.asid) problem = `RMP entry now belongs to asid ${entry.asid}`;
  else if (entry.gpa !== gpa) problem = `RMP entry now at gpa ${hex(entry.gpa)}`;
  else if (!entry.validated) problem = 'RMP Validated cleared';
  if (problem !== '') {
    out.push({
      message: `validated gpa ${hex(gpa)}: ${via} --> RMP[${entry.size}] at hpa ${hex(base)} ==> FAIL (${problem} while the guest holds it validated)`,
      details: { gpa, hpa: base, sizes: { rmp: entry.size, ...(leaf !== undefined ? { npt: leaf.size } : {}) } },
    });
    return;
  }
  if (previous === undefined || guestWrites === undefined || guestWrites.has(gfn)) return;
  const changed = previous.t0 !== t0 ? 0 : previous.t1 !== t1 ? 1 : -1;
  if (changed < 0) return;
  out.push({
    message: `validated gpa ${hex(gpa)} at hpa ${hex(base)}: content of bytes ${hex(changed * CHUNK)}..${hex(changed * CHUNK + CHUNK - 1)} changed without a guest write ==> FAIL (content changed behind the guest's back)`,
    details: { gpa, hpa: base + changed * CHUNK, sizes: { rmp: entry.size } },
  });
}

function addRange(set: Set<number>, addr: number, len: number): void {
  if (!(len > 0)) return;
  for (let gfn = Math.floor(addr / SZ_4K); gfn <= Math.floor((addr + len - 1) / SZ_4K); gfn++) set.add(gfn);
}

/** GFNs the guest itself, or a device it accepted, wrote during the step. */
function guestWritesOf(view: View, step: Step): Set<number> {
  const writes = new Set<number>();
  for (const call of step.calls) {
    if (call.prim === 'guest_access' && call.args.write === true && call.result === 'ok') addRange(writes, Number(call.args.gpa), Number(call.args.len ?? 1));
    else if (call.prim === 'guest_copy') addRange(writes, Number(call.args.dstGpa), Number(call.args.len));
  }
  for (const event of step.guestEvents) {
    if (event.kind === 'access' && event.write && event.ok) writes.add(Math.floor(event.gpa / SZ_4K));
    else if (event.kind === 'bounce') addRange(writes, event.to, event.len);
  }
  for (const dma of step.dmas) {
    if (!dma.write) continue;
    const device = view.devices.find((d) => d.id === dma.dev);
    // An interleaved DMA counts with the TDI state it ran under (the op may change it later).
    if (device === undefined || !device.trusted || (dma.tdi ?? device.tdi) !== 'run') continue;
    for (const piece of dma.result.pieces) if (piece.gpa < view.vtom) addRange(writes, piece.gpa, piece.len);
  }
  return writes;
}

function sweep(view: View): Finding[] {
  let state = states.get(view);
  if (state === undefined) {
    state = { seen: new Map(), reverse: new Map() };
    states.set(view, state);
  }
  const out: Finding[] = [];
  const current = new Set<number>();
  for (const gfn of view.guest.pages()) {
    current.add(gfn);
    examine(view, state, gfn, undefined, out);
  }
  for (const gfn of [...state.seen.keys()]) if (!current.has(gfn)) forget(state, gfn);
  return out;
}

export default defineOracle({
  name: 'no-silent-remap',
  description: 'while the guest holds a GPA validated, its backing frame and content never change behind its back',
  severity: 'security',

  check(view: View, step: Step) {
    const state = states.get(view);
    if (state === undefined) return sweep(view);
    const gfns = new Set<number>(step.gfns);
    for (const pfn of step.frames) {
      const known = state.reverse.get(pfn);
      if (typeof known === 'number') gfns.add(known);
      else if (known !== undefined) for (const gfn of known) gfns.add(gfn);
    }
    const writes = guestWritesOf(view, step);
    const out: Finding[] = [];
    for (const gfn of gfns) examine(view, state, gfn, writes, out);
    return out;
  },

  final(view: View) {
    return sweep(view);
  },
});
