// swiotlb-shared: memory the guest hands to an untrusted device must be shared for as long as the
// device may use it, and must not go back to the page allocator while still shared
// (research/amd-snp.md section 4 and section 6, oracles 11 and 12):
// - every swiotlb slot in use, and every live coherent buffer that is not private (an accepted
//   TIO device's buffers are private by design), is shared memory: the guest's page state says
//   shared AND the frame behind the GPA is unassigned in the RMP (the IOMMU lets an untrusted
//   device reach only unassigned frames);
// - a coherent buffer made of converted pages is private again once freed (dma_direct_free()
//   re-encrypts), or leaked when that fails; a leaked page is never handed out again.
//
// Incremental: the GFNs the step touched that lie in a live slot range or coherent buffer, the
// frames the step touched that back one (reverse index), every page of a buffer or slot range
// that appeared in the step, and the pages of buffers freed in the step. The frame behind a GPA
// is the NPT translation, else the host's backing.

import { SZ_4K, defineOracle, hex, type CoherentBuffer, type Finding, type Step, type View } from 'cocofuzz/api';

const SLOT = 2048;

interface Owner {
  what: string;
}

interface State {
  /** Live coherent buffers by id, as last seen. */
  buffers: Map<number, CoherentBuffer>;
  /** Key of the live slot ranges and buffers, to notice a change cheaply. */
  signature: string;
  /** GFN -> what needs it shared. */
  required: Map<number, Owner>;
  /** Frame -> GFN it backed when checked. */
  reverse: Map<number, number>;
  /** Size of the guest's leaked set when last seen. */
  leaked: number;
}

const states = new WeakMap<View, State>();

function signatureOf(view: View): string {
  const parts: string[] = [];
  for (const range of view.guest.swiotlb.liveMappings()) parts.push(`s${range.slotIndex}+${range.nslots}`);
  for (const buffer of view.guest.buffers) parts.push(`b${buffer.id}`);
  return parts.join(',');
}

function addPages(map: Map<number, Owner>, addr: number, len: number, owner: Owner): void {
  if (!(len > 0)) return;
  for (let gfn = Math.floor(addr / SZ_4K); gfn <= Math.floor((addr + len - 1) / SZ_4K); gfn++) if (!map.has(gfn)) map.set(gfn, owner);
}

/** GFNs that must be shared now, and what needs them. */
function requiredPages(view: View): Map<number, Owner> {
  const required = new Map<number, Owner>();
  const swiotlb = view.guest.swiotlb;
  for (const range of swiotlb.liveMappings()) {
    const start = swiotlb.base + range.slotIndex * SLOT;
    addPages(required, start, range.nslots * SLOT, { what: `swiotlb slots ${range.slotIndex}..${range.slotIndex + range.nslots - 1} (tlb ${hex(range.tlbAddr)})` });
  }
  for (const buffer of view.guest.buffers) {
    if (buffer.source === 'private') continue;
    addPages(required, buffer.gpa, buffer.bytes, { what: `coherent buffer ${buffer.id} (${buffer.source}, dev ${buffer.dev})` });
  }
  return required;
}

function frameOf(view: View, gpa: number): number | undefined {
  const leaf = view.npt.leafAt(gpa);
  if (leaf !== undefined) return leaf.pa + (gpa - leaf.iova);
  return view.host.backing(gpa)?.hpa;
}

function checkShared(view: View, state: State, gfn: number, owner: Owner, out: Finding[]): void {
  const gpa = gfn * SZ_4K;
  const page = view.guest.page(gfn);
  const hpa = frameOf(view, gpa);
  if (hpa !== undefined) state.reverse.set(Math.floor(hpa / SZ_4K), gfn);
  let problem = '';
  let entrySize: 'unassigned' | '4K' | '2M' = 'unassigned';
  if (page === undefined || !page.shared) problem = 'the guest holds the page private';
  else if (hpa !== undefined) {
    const entry = view.rmp.entry(Math.floor(hpa / SZ_4K));
    if (entry.assigned) {
      entrySize = entry.size;
      problem = `RMP[${entry.size}] at hpa ${hex(hpa)} is assigned (asid ${entry.asid}, gpa ${hex(entry.gpa)})`;
    }
  }
  if (problem === '') return;
  out.push({
    message: `${owner.what} at gpa ${hex(gpa)}: ${problem} ==> FAIL (memory an untrusted device uses is not shared)`,
    details: { gpa, ...(hpa !== undefined ? { hpa } : {}), ...(entrySize !== 'unassigned' ? { sizes: { rmp: entrySize } } : {}) },
  });
}

function checkFreed(view: View, buffer: CoherentBuffer, out: Finding[]): void {
  if (buffer.source !== 'pages') return;
  const leaked = view.guest.leaked;
  for (let gfn = Math.floor(buffer.gpa / SZ_4K); gfn <= Math.floor((buffer.gpa + buffer.bytes - 1) / SZ_4K); gfn++) {
    if (leaked.has(gfn)) continue;
    const page = view.guest.page(gfn);
    if (page === undefined || !page.shared) continue;
    out.push({
      message: `coherent buffer ${buffer.id} (pages, dev ${buffer.dev}) freed, but gpa ${hex(gfn * SZ_4K)} is still shared and not leaked ==> FAIL (shared page returned to the page allocator)`,
      details: { gpa: gfn * SZ_4K, dev: buffer.dev, buffer: buffer.id },
    });
    return;
  }
}

function checkReuse(view: View, buffers: Iterable<CoherentBuffer>, out: Finding[]): void {
  const leaked = view.guest.leaked;
  if (leaked.size === 0) return;
  for (const buffer of buffers) {
    if (buffer.source !== 'pages' && buffer.source !== 'private') continue;
    for (let gfn = Math.floor(buffer.gpa / SZ_4K); gfn <= Math.floor((buffer.gpa + buffer.bytes - 1) / SZ_4K); gfn++) {
      if (!leaked.has(gfn)) continue;
      out.push({
        message: `coherent buffer ${buffer.id} (${buffer.source}, dev ${buffer.dev}) uses gpa ${hex(gfn * SZ_4K)}, a page leaked by an earlier free ==> FAIL (leaked page reused)`,
        details: { gpa: gfn * SZ_4K, dev: buffer.dev, buffer: buffer.id },
      });
      break;
    }
  }
}

/** Compare the live buffers with the last ones seen: freed ones are judged, new ones returned. */
function diffBuffers(view: View, state: State, out: Finding[]): CoherentBuffer[] {
  const live = new Map<number, CoherentBuffer>();
  const fresh: CoherentBuffer[] = [];
  for (const buffer of view.guest.buffers) {
    live.set(buffer.id, { ...buffer });
    if (!state.buffers.has(buffer.id)) fresh.push(buffer);
  }
  for (const [id, buffer] of state.buffers) if (!live.has(id)) checkFreed(view, buffer, out);
  state.buffers = live;
  return fresh;
}

function sweep(view: View): Finding[] {
  let state = states.get(view);
  if (state === undefined) {
    state = { buffers: new Map(), signature: '', required: new Map(), reverse: new Map(), leaked: 0 };
    states.set(view, state);
  }
  const out: Finding[] = [];
  diffBuffers(view, state, out);
  state.signature = signatureOf(view);
  state.required = requiredPages(view);
  state.reverse.clear();
  for (const [gfn, owner] of state.required) checkShared(view, state, gfn, owner, out);
  state.leaked = view.guest.leaked.size;
  checkReuse(view, view.guest.buffers, out);
  return out;
}

export default defineOracle({
  name: 'swiotlb-shared',
  description:
    'every swiotlb slot in use and every live non-private coherent buffer is shared memory for its whole life, and private again (or leaked, never reused) after free',
  severity: 'security',
  // test/oracles/sweep-coverage.test.ts: the check finds whatever the end-of-case sweep finds.
  checkCoversFinal: true,

  check(view: View, step: Step) {
    const state = states.get(view);
    if (state === undefined) return sweep(view);
    const out: Finding[] = [];
    const signature = signatureOf(view);
    const toCheck = new Set<number>();
    if (signature !== state.signature) {
      const before = state.required;
      state.signature = signature;
      state.required = requiredPages(view);
      for (const gfn of state.required.keys()) if (!before.has(gfn)) toCheck.add(gfn);
      const fresh = diffBuffers(view, state, out);
      if (view.guest.leaked.size === state.leaked) checkReuse(view, fresh, out);
    }
    if (view.guest.leaked.size !== state.leaked) {
      state.leaked = view.guest.leaked.size;
      checkReuse(view, view.guest.buffers, out);
    }
    for (const gfn of step.gfns) if (state.required.has(gfn)) toCheck.add(gfn);
    for (const pfn of step.frames) {
      const gfn = state.reverse.get(pfn);
      if (gfn !== undefined && state.required.has(gfn)) toCheck.add(gfn);
    }
    for (const gfn of toCheck) {
      const owner = state.required.get(gfn);
      if (owner !== undefined) checkShared(view, state, gfn, owner, out);
    }
    return out;
  },

  final(view: View) {
    return sweep(view);
  },
});
