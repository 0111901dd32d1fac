// no-silent-remap: the point of PVALIDATE is that the host cannot remap a validated GPA quietly
// (DOMAIN.md, "The problem in one picture"). While the guest holds a page validated:
// - the frame behind it (the NPT translation, or the host's backing while the NPT leaf is zapped)
//   stays the frame the guest validated;
// - that frame stays assigned to the guest at that GPA with Validated set: any RMPUPDATE of it
//   clears Validated, which is how a host prepares a swap (research/amd-snp.md section 7, item 7);
// - its content changes only through the guest's own writes (CPU stores, bounce copies) and the
//   DMA of a device the guest accepted (TDI in RUN).
//
// State per case (kept per view), per 2M region: for each validated GFN, the frame and the content
// tokens of its two 2 KiB chunks the guest last saw, and per frame the GFN whose record names it. A
// region keeps typed arrays (cut from a shared buffer, lib/slab.ts) only once its GFNs differ: a 2M
// page the guest accepted on fresh frames is three numbers (Seen), and a step allocates only where
// a region first differs or a frame region's frames stop being named by consecutive GFNs. The
// reverse map is one number per frame region while the region's frames are named by consecutive
// GFNs (a 2M page the guest accepted): such a region is linked, unlinked and looked through at
// once, not frame by frame (and the part of it a step shared is unlinked by one fill of the
// region's reverse map). Incremental: the GFNs the step touched, and the GFNs whose recorded frame
// the step touched. A run of watched pages is judged piece by piece (pieceEnd: one translation onto
// one RMP run that is right for its first page), so a page costs a comparison of its frame and
// content with its record; where nothing wrote the piece's frames since the oracle's last pass
// (MemoryView.regionsWrittenSince, per 2M region: most steps write no memory at all) a stretch
// still on the frames a reverse number names costs nothing per page, any other page a comparison of
// its frame. Pages new to the oracle on frames no record names (a 2M page accepted and split in one
// step) are recorded stretch by stretch (recordStretch), the tokens of frames in a region nothing
// ever wrote without reading them (all 0). A page with something to report goes through examine(),
// the one place findings are made. Telling the guest's writes from anybody else's needs the step's
// calls and DMAs, so the full sweep checks the frame and its RMP entry, and takes the content as
// the new reference without judging it.

import { FRAME_LIMIT, argAt, callsIn, defaultRmpEntry, isEventRun, FRAMES_PER_2M, GUEST_PAGE_CONVERTING, GUEST_PAGE_SHARED, GUEST_PAGE_VALIDATED, SZ_4K, defineOracle, hex, type Finding, type FrameRange, type Step, type View } from 'cocofuzz/api';
import { deviceById } from './lib/devices.ts';
import { Findings } from './lib/findings.ts';
import { CpuFrames } from './lib/cpu-frames.ts';
import { RegionArrays } from './lib/regions.ts';
import { Float64Slab } from './lib/slab.ts';
import { regionOf, slotOf } from './lib/region-slot.ts';
import { overlaps, rangeHolding } from './lib/runs.ts';

const CHUNK = 2048;
const PAGE = SZ_4K;
/** No frame recorded (`Seen.pfn`), no GFN recorded (`reverse`). */
const NONE = -1;
/** `reverse`: two or more GFNs name this frame (a host aliasing bug): see `State.aliases`. */
const SEVERAL = -2;

/** What the guest saw of each of the 512 GFNs of one 2M region. */
interface Pages {
  pfn: Float64Array;
  t0: Float64Array;
  t1: Float64Array;
  /** The pass (check or sweep) that last examined the GFN (0: none; passes count from 1): each GFN once per pass. */
  pass: Float64Array;
}

/**
 * What the guest saw of the 512 GFNs of one 2M region. Most regions are uniform: no GFN recorded,
 * or all 512 on the frames from one 2M-aligned frame in order, on frames nothing ever wrote (a 2M
 * page the guest accepted), every GFN examined by the same pass. Such a region keeps no per-GFN
 * arrays (`pages` undefined): in a world of cases generated for a 1 TiB guest, 327 of 395 regions
 * were uniform (per world 9.26 -> 4.72 MiB). pagesOf() makes the arrays where a GFN first differs.
 */
interface Seen {
  pages: Pages | undefined;
  /** How many of the 512 GFNs have a record (`pfn` not NONE): 0 or 512 while uniform. */
  records: number;
  /** Uniform with 512 records: the frame of the region's first GFN. */
  base: number;
  /** Uniform: the pass that last examined every GFN of the region. */
  pass: number;
}

interface State {
  /** GFN region (gfn / 512) -> what the guest saw there. */
  seen: RegionArrays<Seen>;
  /**
   * Frame region (pfn / 512) -> per frame, the GFN whose record names it (NONE, SEVERAL); or one
   * number: NONE (no frame named), else the GFN naming the region's first frame, frame i named by
   * that GFN + i.
   */
  reverse: RegionArrays<Float64Array | number>;
  /** Frames named by several GFNs -> those GFNs. */
  aliases: Map<number, Set<number>>;
  /** Counts the passes (`Seen.pass`). */
  pass: number;
  /**
   * GFNs whose record keeps the tokens of an earlier frame content: examine() found no frame
   * behind them (the NPT leaf zapped, no backing) and re-read nothing. Rare; usually empty.
   */
  stale: Set<number>;
  /**
   * The memory's write stamp (MemoryView.writeStamp) when the last pass ended: every record not
   * stale then held its frame's tokens, so a frame nothing wrote since still holds them.
   */
  since: number;
}

const states = new WeakMap<View, State>();

/**
 * The buffers of the `Seen` records: a case makes one for each region it validates. Eight records
 * (128 KiB) a buffer: a buffer lives while any of its records does, so with 64 (1 MiB) a world
 * kept alive could hold up to 1 MiB for one record, and the bench's retained memory per world
 * (eight worlds alive) moved by up to 128 KiB with where the last buffer happened to end. Zeroing
 * costs the same per record either way.
 */
const seenSlab = new Float64Slab(4 * FRAMES_PER_2M, 8);

/** A region with no record, examined by no pass yet. No closure: a case makes one per region it validates. */
const newSeen = (): Seen => ({ pages: undefined, records: 0, base: NONE, pass: 0 });

/**
 * The per-GFN arrays of region `seen`, made from its uniform form where a GFN is first looked at
 * one by one. The four arrays are views of one slice of a buffer shared with other regions
 * (lib/slab.ts).
 */
function pagesOf(seen: Seen): Pages {
  if (seen.pages !== undefined) return seen.pages;
  const buffer = seenSlab.take();
  const pages: Pages = {
    pfn: buffer.subarray(0, FRAMES_PER_2M),
    t0: buffer.subarray(FRAMES_PER_2M, 2 * FRAMES_PER_2M),
    t1: buffer.subarray(2 * FRAMES_PER_2M, 3 * FRAMES_PER_2M),
    pass: buffer.subarray(3 * FRAMES_PER_2M, 4 * FRAMES_PER_2M),
  };
  if (seen.records === 0) pages.pfn.fill(NONE);
  else for (let i = 0; i < FRAMES_PER_2M; i++) pages.pfn[i] = seen.base + i;
  // The tokens of frames nothing wrote are 0, as the slice comes.
  if (seen.pass !== 0) pages.pass.fill(seen.pass);
  seen.pages = pages;
  return pages;
}

/**
 * Region `seen` becomes uniform, every GFN examined by pass `pass`: no record (`base` NONE), or
 * all 512 on the frames from `base`, tokens 0.
 */
function makeUniform(seen: Seen, base: number, pass: number): void {
  seen.pages = undefined;
  seen.records = base === NONE ? 0 : FRAMES_PER_2M;
  seen.base = base;
  seen.pass = pass;
}

/** The frame of the first GFN of region `seen`, which records all 512. */
const firstFrame = (seen: Seen): number => (seen.pages === undefined ? seen.base : seen.pages.pfn[0]!);

/** The per-frame reverse map of frame region `index`, made from its one number when a frame first differs. */
function reverseOf(state: State, index: number): Float64Array {
  const region = state.reverse.get(index) ?? NONE;
  if (typeof region !== 'number') return region;
  const reverse = new Float64Array(FRAMES_PER_2M);
  for (let i = 0; i < FRAMES_PER_2M; i++) reverse[i] = region === NONE ? NONE : region + i;
  state.reverse.set(index, reverse);
  return reverse;
}

function unlink(state: State, pfn: number, gfn: number): void {
  const index = regionOf(pfn);
  const i = slotOf(pfn);
  const region = state.reverse.get(index) ?? NONE;
  // A linear region names this frame by one GFN: unlinking another changes nothing.
  if (typeof region === 'number' && (region === NONE || region + i !== gfn)) return;
  const reverse = typeof region === 'number' ? reverseOf(state, index) : region;
  if (reverse[i] === gfn) reverse[i] = NONE;
  else if (reverse[i] === SEVERAL) {
    const gfns = state.aliases.get(pfn)!;
    gfns.delete(gfn);
    if (gfns.size === 1) {
      reverse[i] = gfns.values().next().value!;
      state.aliases.delete(pfn);
    }
  }
}

function link(state: State, pfn: number, gfn: number): void {
  const index = regionOf(pfn);
  const i = slotOf(pfn);
  const region = state.reverse.get(index) ?? NONE;
  if (typeof region === 'number' && region !== NONE && region + i === gfn) return;
  const reverse = typeof region === 'number' ? reverseOf(state, index) : region;
  const known = reverse[i]!;
  if (known === NONE) reverse[i] = gfn;
  else if (known === SEVERAL) state.aliases.get(pfn)!.add(gfn);
  else if (known !== gfn) {
    reverse[i] = SEVERAL;
    state.aliases.set(pfn, new Set([known, gfn]));
  }
}

function forget(state: State, gfn: number): void {
  const seen = state.seen.get(regionOf(gfn));
  const i = slotOf(gfn);
  if (seen === undefined || seen.records === 0) return;
  const pages = pagesOf(seen);
  if (pages.pfn[i] === NONE) return;
  unlink(state, pages.pfn[i]!, gfn);
  pages.pfn[i] = NONE;
  seen.records--;
  state.stale.delete(gfn);
}

/** GFNs [gfn, stop) are no longer stale (their records are new or gone). */
function unstale(state: State, gfn: number, stop: number): void {
  if (state.stale.size > 0) for (; gfn < stop; gfn++) state.stale.delete(gfn);
}

/**
 * Whether region `seen` of GFNs from `gfn` records all 512 pages on frames from a 2M-aligned
 * frame, one per page in order, linked as one reverse number: then forgetting it is one step.
 */
function linearRegion(state: State, seen: Seen, gfn: number): boolean {
  if (seen.records !== FRAMES_PER_2M) return false;
  const pfn = firstFrame(seen);
  if (slotOf(pfn) !== 0 || state.reverse.get(regionOf(pfn)) !== gfn) return false;
  if (seen.pages !== undefined) for (let i = 0; i < FRAMES_PER_2M; i++) if (seen.pages.pfn[i] !== pfn + i) return false;
  return true;
}

/** Forget GFNs [gfn, stop) of region `seen`, whose pages are no longer watched. */
function forgetPages(state: State, seen: Seen, gfn: number, stop: number): void {
  if (stop - gfn === FRAMES_PER_2M && (seen.records === 0 || linearRegion(state, seen, gfn))) {
    // A 2M page the guest stopped holding validated (shared, rescinded): one reverse number.
    if (seen.records !== 0) state.reverse.set(regionOf(firstFrame(seen)), NONE);
    makeUniform(seen, NONE, state.pass);
    unstale(state, gfn, stop);
    return;
  }
  const pages = pagesOf(seen);
  while (gfn < stop) {
    const i = slotOf(gfn);
    const n = pages.pfn[i] === NONE ? 0 : unlinkStretch(state, pages, gfn, stop);
    if (n > 0) {
      // Records named back by one reverse number, now unlinked: what forget() does page by page.
      pages.pfn.fill(NONE, i, i + n);
      pages.pass.fill(state.pass, i, i + n);
      seen.records -= n;
      unstale(state, gfn, gfn + n);
      gfn += n;
      continue;
    }
    pages.pass[i] = state.pass;
    if (pages.pfn[i] !== NONE) forget(state, gfn);
    gfn++;
  }
}

/**
 * Unlink the stretch of records from `gfn` (before `stop`, in a region's `pages`) that name consecutive
 * frames of one frame region whose one reverse number names them back (the pages of a 2M page the
 * guest accepted, part of it now shared): one fill of the region's reverse map. Returns its
 * length; 0 when the record of `gfn` is not so linked (then forget() goes page by page).
 */
function unlinkStretch(state: State, pages: Pages, gfn: number, stop: number): number {
  const i = slotOf(gfn);
  const pfn = pages.pfn[i]!;
  const index = regionOf(pfn);
  const first = slotOf(pfn);
  const region = state.reverse.get(index) ?? NONE;
  if (typeof region !== 'number' || region === NONE || region + first !== gfn) return 0;
  const most = Math.min(stop - gfn, FRAMES_PER_2M - first);
  let n = 1;
  while (n < most && pages.pfn[i + n] === pfn + n) n++;
  reverseOf(state, index).fill(NONE, first, first + n);
  return n;
}

/**
 * The guest's writes of a step (GFNs the guest itself, or a device it accepted, wrote): half-open
 * GFN ranges, reused from step to step. Gathered from the step's calls, events and DMAs on the
 * first has(): only a page whose content changed asks, and most steps have none.
 */
class Writes {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private count = 0;
  /** Where has() looks first: the write that answered last. */
  private hint = 0;
  private view: View | undefined;
  private step: Step | undefined;

  /** The writes of `step` (gathered when first asked). */
  of(view: View, step: Step): this {
    this.view = view;
    this.step = step;
    this.count = -1;
    return this;
  }

  /**
   * Pages are asked about in ascending order and a step's writes (a buffer filled page by page, a
   * bounce) mostly come in that order too: the look starts at the write that answered last, so such
   * a step costs one look per page rather than one per write (14% of examineWatched()'s own time on
   * the cheap ops). Any write found answers the same.
   */
  has(gfn: number): boolean {
    if (this.count < 0) this.gather(this.view!, this.step!);
    for (let k = 0, i = this.hint; k < this.count; k++, i = i + 1 === this.count ? 0 : i + 1) {
      if (gfn >= this.starts[i]! && gfn < this.ends[i]!) {
        this.hint = i;
        return true;
      }
    }
    return false;
  }

  /** The GFNs overlapping [addr, addr + len). */
  private add(addr: number, len: number): void {
    if (!(len > 0)) return;
    this.starts[this.count] = Math.floor(addr / PAGE);
    this.ends[this.count] = Math.floor((addr + len - 1) / PAGE) + 1;
    this.count++;
  }

  private gather(view: View, step: Step): void {
    this.count = 0;
    this.hint = 0;
    // The calls as recorded (a run of calls is one record, callAt() gives each of them).
    for (const record of step.callRuns ?? step.calls) {
      const written = record.prim === 'guest_access' && record.args.write === true && record.result === 'ok';
      if (!written && record.prim !== 'guest_copy') continue;
      // A run's calls share everything but their strided addresses (argAt()).
      for (let i = 0, n = callsIn(record); i < n; i++) {
        if (written) this.add(argAt(record, 'gpa', i), argAt(record, 'len', i) || 1);
        else this.add(argAt(record, 'dstGpa', i), argAt(record, 'len', i));
      }
    }
    // The events as logged: a driver's writes chunk by chunk are one run (eventsIn(), `stride`).
    for (const event of step.guestEventRuns ?? step.guestEvents) {
      if (event.kind === 'access' && event.write && event.ok) {
        // A run of writes at most a page apart covers every page from its first to its last.
        if (!isEventRun(event)) this.add(event.gpa, 1);
        else if (event.stride <= PAGE) this.add(event.gpa, (event.count - 1) * event.stride + 1);
        else for (let i = 0; i < event.count; i++) this.add(event.gpa + i * event.stride, 1);
      }
      else if (event.kind === 'bounce') this.add(event.to, event.len);
    }
    for (const dma of step.dmas) {
      if (!dma.write) continue;
      const device = deviceById(view, dma.dev);
      // An interleaved DMA counts with the TDI state it ran under (the op may change it later).
      if (device === undefined || !device.trusted || (dma.tdi ?? device.tdi) !== 'run') continue;
      for (const piece of dma.result.pieces) if (piece.gpa < view.vtom) this.add(piece.gpa, piece.len);
    }
  }
}

const writes = new Writes();

const found = new Findings();
/** Scratch for the allocation-free accessors. */
const entry = defaultRmpEntry();

/** The frame behind a GPA (NPT leaf kept: a pass walks the NPT once per leaf, not per page). */
const cpu = new CpuFrames();

/**
 * Re-examine watched page `gfn` (validated, private, not converting), whose record is slot `i` of
 * `seen`. `guestWrites` holds the GFNs the guest (or its accepted devices) wrote in the step;
 * undefined in the full sweep, which does not judge content.
 */
function examine(view: View, state: State, seen: Seen, i: number, gfn: number, guestWrites: Writes | undefined, out: Findings): void {
  const pages = pagesOf(seen);
  const gpa = gfn * PAGE;
  const hpa = cpu.hpa(view, gpa);
  if (hpa < 0) {
    if (pages.pfn[i] !== NONE) state.stale.add(gfn);
    return;
  }
  state.stale.delete(gfn);
  const viaNpt = cpu.viaNpt;
  const pfn = Math.floor(hpa / PAGE);
  const base = pfn * PAGE;
  const t0 = view.memory.token(base);
  const t1 = view.memory.token(base + CHUNK);
  const previousPfn = pages.pfn[i]!;
  const previousT0 = pages.t0[i]!;
  const previousT1 = pages.t1[i]!;
  if (previousPfn !== pfn) {
    if (previousPfn !== NONE) unlink(state, previousPfn, gfn);
    else seen.records++;
    link(state, pfn, gfn);
    pages.pfn[i] = pfn;
  }
  pages.t0[i] = t0;
  pages.t1[i] = t1;
  const via = viaNpt ? 'NPT' : 'host backing';
  if (previousPfn !== NONE && previousPfn !== pfn) {
    out.push({
      message: `validated gpa ${hex(gpa)}: ${via} --> hpa ${hex(base)}, but the guest validated hpa ${hex(previousPfn * PAGE)} ==> FAIL (backing frame changed behind the guest's back)`,
      details: { gpa, hpa: base, previousHpa: previousPfn * PAGE },
    });
    return;
  }
  view.rmp.load(pfn, entry);
  let problem = '';
  if (!entry.assigned) problem = 'RMP entry no longer assigned';
  else if (entry.asid !== view.asid) problem = `RMP entry now belongs to asid ${entry.asid}`;
  else if (entry.gpa !== gpa) problem = `RMP entry now at gpa ${hex(entry.gpa)}`;
  else if (!entry.validated) problem = 'RMP Validated cleared';
  if (problem !== '') {
    const nptSize = viaNpt ? view.npt.leafAt(gpa)?.size : undefined;
    out.push({
      message: `validated gpa ${hex(gpa)}: ${via} --> RMP[${entry.size}] at hpa ${hex(base)} ==> FAIL (${problem} while the guest holds it validated)`,
      details: { gpa, hpa: base, sizes: { rmp: entry.size, ...(nptSize !== undefined ? { npt: nptSize } : {}) } },
    });
    return;
  }
  if (previousPfn === NONE || guestWrites === undefined || guestWrites.has(gfn)) return;
  const changed = previousT0 !== t0 ? 0 : previousT1 !== t1 ? 1 : -1;
  if (changed < 0) return;
  out.push({
    message: `validated gpa ${hex(gpa)} at hpa ${hex(base)}: content of bytes ${hex(changed * CHUNK)}..${hex(changed * CHUNK + CHUNK - 1)} changed without a guest write ==> FAIL (content changed behind the guest's back)`,
    details: { gpa, hpa: base + changed * CHUNK, sizes: { rmp: entry.size } },
  });
}

/** Examine `gfn` unless this pass did already: a page no longer watched only loses its record. */
function examineOnce(view: View, state: State, gfn: number, guestWrites: Writes | undefined, out: Findings): void {
  const seen = state.seen.getOrCreate(regionOf(gfn));
  const pages = pagesOf(seen);
  const i = slotOf(gfn);
  if (pages.pass[i] === state.pass) return;
  pages.pass[i] = state.pass;
  if (isWatched(view.guest.pageFlags(gfn))) examine(view, state, seen, i, gfn, guestWrites, out);
  else forget(state, gfn);
}

/** The first frame of the piece pieceEnd() found. */
let pieceFrame = 0;

/**
 * The end of the piece of watched GFNs [gfn, end) that needs no per-page look-up: one translation
 * (an NPT leaf, or one run of the host's backing while the NPT has no leaf) leads it onto
 * contiguous frames from `pieceFrame`, all in one RMP run (RmpView.runEnd: same assigned, ASID,
 * Validated, a GPA advancing 4K per frame) whose first entry is right for `gfn`, so every entry of
 * the piece is. Returns `gfn` when the first page itself is not such a piece: examine() judges it.
 */
function pieceEnd(view: View, gfn: number, end: number): number {
  const gpa = gfn * PAGE;
  const hpa = cpu.hpa(view, gpa);
  if (hpa < 0) return gfn;
  end = cpu.linearEnd(view, gfn, end);
  const pfn = Math.floor(hpa / PAGE);
  view.rmp.load(pfn, entry);
  if (!entry.assigned || entry.asid !== view.asid || entry.gpa !== gpa || !entry.validated) return gfn;
  pieceFrame = pfn;
  return gfn + (view.rmp.runEnd(pfn, pfn + (end - gfn)) - pfn);
}

/**
 * examineOnce() for a run [from, to) of watched pages: one record look-up per 2M region, and per
 * piece of one translation and RMP run (pieceEnd), where a page only compares its frame and content
 * with its record. A page with something to report goes through examine(), which reports it as
 * the page-by-page check would.
 */
function examineWatched(view: View, state: State, from: number, to: number, guestWrites: Writes | undefined, out: Findings): void {
  for (let gfn = from; gfn < to; ) {
    const index = regionOf(gfn);
    const seen = state.seen.getOrCreate(index);
    const stop = Math.min(to, (index + 1) * FRAMES_PER_2M);
    while (gfn < stop) {
      const end = pieceEnd(view, gfn, stop);
      if (end === gfn) {
        const i = slotOf(gfn);
        const pages = pagesOf(seen);
        if (pages.pass[i] !== state.pass) {
          pages.pass[i] = state.pass;
          examine(view, state, seen, i, gfn, guestWrites, out);
        }
        gfn++;
        continue;
      }
      if (end - gfn === FRAMES_PER_2M && newRegion(state, seen, pieceFrame)) {
        recordRegion(view, state, seen, gfn, pieceFrame);
        gfn = end;
        continue;
      }
      let pfn = pieceFrame;
      // A check (not the sweep) where nothing wrote the piece's frames since the last pass (most
      // steps write no memory at all): a page still on its frame keeps its record's tokens.
      const quiet = guestWrites !== undefined && !view.memory.regionsWrittenSince(state.since, pfn * PAGE, (end - gfn) * PAGE);
      // Still on their frames, their frames not written: the records are right as they stand.
      if (quiet && state.stale.size === 0) {
        const same = unchangedEnd(state, seen, gfn, pfn, end);
        pfn += same - gfn;
        gfn = same;
      }
      if (gfn === end) continue;
      const pages = pagesOf(seen);
      for (; gfn < end; gfn++, pfn++) {
        const i = slotOf(gfn);
        if (pages.pass[i] === state.pass) continue;
        if (pages.pfn[i] === NONE) {
          const n = recordStretch(view, state, seen, gfn, pfn, end);
          if (n > 0) {
            gfn += n - 1;
            pfn += n - 1;
            continue;
          }
        }
        pages.pass[i] = state.pass;
        const previousPfn = pages.pfn[i]!;
        // Still on its frame, which nothing wrote: the record is right as it stands.
        if (previousPfn === pfn && quiet && (state.stale.size === 0 || !state.stale.has(gfn))) continue;
        const base = pfn * PAGE;
        const t0 = view.memory.token(base);
        const t1 = view.memory.token(base + CHUNK);
        if (previousPfn === pfn) {
          const changed = pages.t0[i] !== t0 || pages.t1[i] !== t1;
          if (changed && guestWrites !== undefined && !guestWrites.has(gfn)) {
            // Content changed behind the guest's back: examine() reports it.
            examine(view, state, seen, i, gfn, guestWrites, out);
            continue;
          }
        } else if (previousPfn === NONE) {
          link(state, pfn, gfn);
          pages.pfn[i] = pfn;
          seen.records++;
        } else {
          // The frame changed behind the guest's back: examine() reports it.
          examine(view, state, seen, i, gfn, guestWrites, out);
          continue;
        }
        pages.t0[i] = t0;
        pages.t1[i] = t1;
        if (state.stale.size > 0) state.stale.delete(gfn);
      }
    }
  }
}

/**
 * The end (at most `end`) of the pages from `gfn` whose records name the frames from `pfn` in order,
 * as one reverse number says, and that this pass has not examined yet; they are marked examined.
 * Returns `gfn` when there is no such stretch (the pages then go one by one).
 */
function unchangedEnd(state: State, seen: Seen, gfn: number, pfn: number, end: number): number {
  const reverse = state.reverse.get(regionOf(pfn)) ?? NONE;
  if (typeof reverse !== 'number' || reverse === NONE || reverse + slotOf(pfn) !== gfn) return gfn;
  const first = slotOf(gfn);
  const last = first + Math.min(end - gfn, FRAMES_PER_2M - slotOf(pfn), FRAMES_PER_2M - first);
  if (seen.pages === undefined) {
    // Uniform: one pass examined every page or none; a stretch of the whole region keeps it so.
    if (seen.pass === state.pass) return gfn;
    if (last - first === FRAMES_PER_2M) {
      seen.pass = state.pass;
      return gfn + FRAMES_PER_2M;
    }
  }
  const pages = pagesOf(seen);
  for (let i = first; i < last; i++) if (pages.pass[i] === state.pass) return gfn;
  pages.pass.fill(state.pass, first, last);
  return gfn + (last - first);
}

/**
 * New records for the pages from `gfn` (before `end`, in region `seen`, on frames from `pfn` of one
 * translation and RMP run) that have none, were not examined this pass, and whose frames no record
 * names: what examineWatched() does page by page for such a page (link, record frame and tokens),
 * for the stretch at once (the 4K pages of a 2M page the guest accepted and split in one step).
 * Returns how many pages it recorded; 0 when `gfn` is not such a page.
 */
function recordStretch(view: View, state: State, seen: Seen, gfn: number, pfn: number, end: number): number {
  const index = regionOf(pfn);
  const region = state.reverse.get(index) ?? NONE;
  // A linear region names every one of its frames.
  if (typeof region === 'number' && region !== NONE) return 0;
  const i = slotOf(gfn);
  const first = slotOf(pfn);
  const most = Math.min(end - gfn, FRAMES_PER_2M - first);
  const pages = pagesOf(seen);
  let n = 0;
  while (n < most && pages.pfn[i + n] === NONE && pages.pass[i + n] !== state.pass && (typeof region === 'number' || region[first + n] === NONE)) n++;
  if (n === 0) return 0;
  const reverse = reverseOf(state, index);
  for (let k = 0; k < n; k++) reverse[first + k] = gfn + k;
  recordPages(view, state, seen, gfn, pfn, n);
  return n;
}

/**
 * Records for the `n` pages from `gfn` (in region `seen`, which holds none of them) on the frames
 * from `pfn`: frame and content tokens, examined this pass. Linking the frames back is the caller's.
 */
function recordPages(view: View, state: State, seen: Seen, gfn: number, pfn: number, n: number): void {
  const pages = pagesOf(seen);
  const i = slotOf(gfn);
  for (let k = 0; k < n; k++) pages.pfn[i + k] = pfn + k;
  if (view.memory.regionsWrittenSince(0, pfn * PAGE, n * PAGE)) {
    for (let k = 0; k < n; k++) {
      const base = (pfn + k) * PAGE;
      pages.t0[i + k] = view.memory.token(base);
      pages.t1[i + k] = view.memory.token(base + CHUNK);
    }
  } else {
    // Frames never written (fresh frames the guest accepted): every token is 0.
    pages.t0.fill(0, i, i + n);
    pages.t1.fill(0, i, i + n);
  }
  pages.pass.fill(state.pass, i, i + n);
  seen.records += n;
  unstale(state, gfn, gfn + n);
}

/**
 * Whether the whole region `seen` may take new records onto the 512 frames from `pfn` at once: it
 * holds none, none of its pages was examined this pass, and no record names a frame of the
 * 2M-aligned frame region.
 */
function newRegion(state: State, seen: Seen, pfn: number): boolean {
  if (seen.records !== 0 || slotOf(pfn) !== 0 || (state.reverse.get(regionOf(pfn)) ?? NONE) !== NONE) return false;
  return seen.pages === undefined ? seen.pass !== state.pass : seen.pages.pass.indexOf(state.pass) < 0;
}

/**
 * A 2M page the guest newly holds validated (an accept), on frames from `pfn` that one translation
 * and one right RMP run lead to (pieceEnd): what examineWatched() does for each of its pages, with
 * one reverse number for the frame region.
 */
function recordRegion(view: View, state: State, seen: Seen, gfn: number, pfn: number): void {
  if (view.memory.regionsWrittenSince(0, pfn * PAGE, FRAMES_PER_2M * PAGE)) {
    recordPages(view, state, seen, gfn, pfn, FRAMES_PER_2M);
  } else {
    // Fresh frames (every token 0), every page examined now: the region is uniform.
    makeUniform(seen, pfn, state.pass);
    unstale(state, gfn, gfn + FRAMES_PER_2M);
  }
  state.reverse.set(regionOf(pfn), gfn);
}

/**
 * examineOnce() for GFNs [from, to), run by run of equal page flags: a page that is not validated
 * and private only loses its record, so such a run costs per 2M region, and nothing where this
 * oracle records nothing (a swiotlb pool shared in one step).
 */
function examineRange(view: View, state: State, from: number, to: number, guestWrites: Writes, out: Findings): void {
  for (let gfn = from; gfn < to; ) {
    const end = view.guest.pageRunEnd(gfn, to);
    if (isWatched(view.guest.pageFlags(gfn))) {
      examineWatched(view, state, gfn, end, guestWrites, out);
      gfn = end;
      continue;
    }
    while (gfn < end) {
      const index = regionOf(gfn);
      const stop = Math.min(end, (index + 1) * FRAMES_PER_2M);
      const seen = state.seen.get(index);
      if (seen !== undefined) forgetPages(state, seen, gfn, stop);
      gfn = stop;
    }
  }
}

/** The page flags of a page this oracle watches: validated, private, not converting. */
const isWatched = (flags: number): boolean => (flags & (GUEST_PAGE_VALIDATED | GUEST_PAGE_SHARED | GUEST_PAGE_CONVERTING)) === GUEST_PAGE_VALIDATED;

/** Examine every page the guest holds validated and private; forget the records of the others. */
function sweep(view: View): Finding[] | undefined {
  let state = states.get(view);
  if (state === undefined) {
    state = { seen: new RegionArrays(newSeen), reverse: new RegionArrays<Float64Array | number>(() => NONE), aliases: new Map(), pass: 0, stale: new Set(), since: 0 };
    states.set(view, state);
  }
  state.pass++;
  cpu.forget();
  const out = found;
  // Run by run of equal page flags: only validated private pages have a frame to watch (the
  // others, a swiotlb pool shared at boot among them, lose their records below).
  for (let gfn = 0; gfn < FRAME_LIMIT; ) {
    const end = view.guest.pageRunEnd(gfn, FRAME_LIMIT);
    if (isWatched(view.guest.pageFlags(gfn))) examineWatched(view, state, gfn, end, undefined, out);
    gfn = end;
  }
  for (const [index, seen] of state.seen.entries()) {
    // A uniform region was examined by this pass whole, or not at all (none of its pages is watched now).
    if (seen.records === 0 || (seen.pages === undefined && seen.pass === state.pass)) continue;
    const pages = pagesOf(seen);
    for (let i = 0; i < FRAMES_PER_2M; i++) if (pages.pfn[i] !== NONE && pages.pass[i] !== state.pass) forget(state, index * FRAMES_PER_2M + i);
  }
  state.since = view.memory.writeStamp;
  return out.take();
}

export default defineOracle({
  name: 'no-silent-remap',
  description: 'while the guest holds a GPA validated, its backing frame and content never change behind its back',
  severity: 'security',
  checkCoversFinal: true,

  boot(view: View) {
    states.delete(view);
    return sweep(view);
  },

  check(view: View, step: Step) {
    const state = states.get(view);
    if (state === undefined) return sweep(view);
    const guestWrites = writes.of(view, step);
    const out = found;
    state.pass++;
    cpu.forget();
    for (const range of step.gfnRanges) examineRange(view, state, range.start, range.end, guestWrites, out);
    // Then the GFNs whose recorded frame the step touched, as the records stood before the step.
    let touched: FrameRange | undefined;
    for (const range of step.frameRanges) {
      for (let pfn = range.start; pfn < range.end; ) {
        const index = regionOf(pfn);
        const stop = Math.min(range.end, (index + 1) * FRAMES_PER_2M);
        const reverse = state.reverse.get(index) ?? NONE;
        if (reverse === NONE) {
          pfn = stop;
          continue;
        }
        if (typeof reverse === 'number') {
          // Frames named by consecutive GFNs: those the step touched are skipped at once. A GFN
          // examined may change the region (unlink), so the next frame reads it again.
          const gfn = reverse + slotOf(pfn);
          touched = rangeHolding(step.gfnRanges, gfn);
          if (touched !== undefined) {
            pfn += Math.min(stop - pfn, touched.end - gfn);
          } else {
            examineOnce(view, state, gfn, guestWrites, out);
            pfn++;
          }
          continue;
        }
        for (; pfn < stop; pfn++) {
          const gfn = reverse[slotOf(pfn)]!;
          if (gfn === NONE) continue;
          if (gfn !== SEVERAL) {
            // A frame range the step converted names the GFNs of its GFN range, in order: one
            // search finds the range, the frames after it hit the same one.
            if (touched === undefined || gfn < touched.start || gfn >= touched.end) touched = rangeHolding(step.gfnRanges, gfn);
            if (touched === undefined) examineOnce(view, state, gfn, guestWrites, out);
          } else {
            for (const alias of [...state.aliases.get(pfn)!]) if (!overlaps(step.gfnRanges, alias, alias + 1)) examineOnce(view, state, alias, guestWrites, out);
          }
        }
      }
    }
    state.since = view.memory.writeStamp;
    return out.take();
  },

  final(view: View) {
    return sweep(view);
  },
});
