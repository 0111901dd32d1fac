// The swiotlb pool's per-slot state (struct io_tlb_slot, one field at a time, plus the model's
// head-slot bookkeeping), each field stored as linear runs (model/linear-runs.ts): Linux writes a
// mapping's slots as one stretch (list 0, alloc_size counting down by IO_TLB_SIZE, orig_addr
// counting up by it) and renumbers free runs counting down, so a live mapping is a handful of runs
// whatever its length. A slot no run covers holds what swiotlb_init_io_tlb_pool() leaves: free,
// each IO_TLB_SEGSIZE segment one free run (`list` counting down to the segment end, clipped at
// the pool's end), no original address, zero elsewhere; writing that state back forgets the runs.
// So a pool costs what its live mappings hold, not its size nor how far next-fit has walked: a
// 32 GiB pool (16M slots) boots without allocating anything per slot, and a 1 TiB guest's 1G
// pool no longer keeps 8 MiB chunks of slot arrays (31 bytes a slot) behind every mapping its
// cursor passed (1.3 MiB per world in the scale bench's long case, against ~100 live mappings).

import { LinearRuns } from '../model/linear-runs.ts';

const SEGSIZE = 128;
/** Linux INVALID_PHYS_ADDR (~0): orig_addr of a free slot. */
const INVALID = -1;

/**
 * Allocations and releases the change log keeps (changesSince()): a reader further behind than
 * this lists the live allocations instead. Oracles ask after every step that wrote a slot, which
 * makes one or two changes.
 */
export const CHANGES_KEPT = 64;
/** Numbers per change in changesSince()'s answer: +1 / -1, slotIndex, nslots, tlbAddr, allocSize. */
export const CHANGE_WIDTH = 5;
/** Numbers per change in the log: the generation after it, then the CHANGE_WIDTH numbers. */
const LOG_WIDTH = CHANGE_WIDTH + 1;

export class SwiotlbSlots {
  // struct io_tlb_slot (Linux: list and pad_slots are unsigned short, alloc_size unsigned int).
  private readonly listRuns = new LinearRuns();
  private readonly origAddrRuns = new LinearRuns();
  private readonly allocSizeRuns = new LinearRuns();
  private readonly padSlotsRuns = new LinearRuns();
  // Model-only, on the head slot of a live allocation.
  private readonly kindRuns = new LinearRuns();
  private readonly mapSizeRuns = new LinearRuns();
  private readonly headOffsetRuns = new LinearRuns();
  /** Counts slot writes: while it stays the same, the live allocations are the same (SwiotlbView.generation). */
  generation = 0;
  /** The slots whose `kind` is set (the head slots of the live allocations), ascending. */
  private readonly heads: number[] = [];
  /**
   * The change log: the last CHANGES_KEPT allocations and releases (a ring, LOG_WIDTH numbers
   * each, the generation after the change first), made on the first change. Readers only read it,
   * each from the generation it last saw, so no reader can take from another what it has not
   * read yet (the log liveMappings() once emptied on every listing could not serve two readers).
   */
  private log: Float64Array | undefined = undefined;
  /** Changes ever logged; change n sits at (n % CHANGES_KEPT) * LOG_WIDTH. */
  private logged = 0;
  /** The generation after the newest change the ring has dropped (0: none dropped). */
  private forgotten = 0;

  constructor(readonly nslabs: number) {}

  /** `list` of a slot nobody wrote: the free run from it to the end of its segment (or pool). */
  private initialList(i: number): number {
    return Math.min(SEGSIZE - (i % SEGSIZE), this.nslabs - i);
  }

  /**
   * The segments (IO_TLB_SEGSIZE slots each) where some slot differs from the initial state,
   * ascending: every other segment is one whole free run with nothing recorded (checkInvariants()).
   */
  writtenSegments(): number[] {
    const segments = new Set<number>();
    const add = (start: number, end: number): void => {
      for (let s = Math.floor(start / SEGSIZE); s * SEGSIZE < end; s++) segments.add(s);
    };
    for (const runs of this.fields()) runs.forEachRun(add);
    return [...segments].sort((a, b) => a - b);
  }

  /** The head slots of the live allocations, ascending (read-only: setKind() keeps it). */
  liveHeads(): readonly number[] {
    return this.heads;
  }

  /** Runs stored over all fields: what the slots weigh (tests, the scale bench). */
  get runCount(): number {
    let n = 0;
    for (const runs of this.fields()) n += runs.size;
    return n;
  }

  private fields(): LinearRuns[] {
    return [this.listRuns, this.origAddrRuns, this.allocSizeRuns, this.padSlotsRuns, this.kindRuns, this.mapSizeRuns, this.headOffsetRuns];
  }

  list(i: number): number {
    return this.listRuns.get(i) ?? this.initialList(i);
  }
  origAddr(i: number): number {
    return this.origAddrRuns.get(i) ?? INVALID;
  }
  allocSize(i: number): number {
    return this.allocSizeRuns.get(i) ?? 0;
  }
  padSlots(i: number): number {
    return this.padSlotsRuns.get(i) ?? 0;
  }
  kind(i: number): number {
    return this.kindRuns.get(i) ?? 0;
  }
  mapSize(i: number): number {
    return this.mapSizeRuns.get(i) ?? 0;
  }
  headOffset(i: number): number {
    return this.headOffsetRuns.get(i) ?? 0;
  }

  /**
   * Sets a field of slots [from, to) to value, value + step, ...: one run. Every write comes
   * here, and counts as one slot write (`generation`). A stretch set to the initial state is
   * forgotten instead of stored (zero; INVALID_PHYS_ADDR for orig_addr; `list` below).
   */
  private setRun(runs: LinearRuns, initial: number, from: number, to: number, value: number, step: number): void {
    this.generation++;
    if (value === initial && (step === 0 || to - from === 1)) runs.clear(from, to);
    else runs.set(from, to, value, step);
  }

  /** Sets field `field` of slots [from, to) to `value` (a 2M block is 1024 slots: one run). */
  fill(field: 'list' | 'origAddr' | 'allocSize' | 'padSlots', from: number, to: number, value: number): void {
    if (field === 'list') this.setListRun(from, to, value, 0);
    else if (field === 'origAddr') this.setRun(this.origAddrRuns, INVALID, from, to, value, 0);
    else if (field === 'allocSize') this.setRun(this.allocSizeRuns, 0, from, to, value, 0);
    else this.setRun(this.padSlotsRuns, 0, from, to, value, 0);
  }

  /** alloc_size of slots [from, to): `size` at `from`, `step` less at each slot after it. */
  setAllocSizeRun(from: number, to: number, size: number, step: number): void {
    this.setRun(this.allocSizeRuns, 0, from, to, size, -step);
  }

  /** orig_addr of slots [from, to): `addr` at `from`, `step` more at each slot after it. */
  setOrigAddrRun(from: number, to: number, addr: number, step: number): void {
    this.setRun(this.origAddrRuns, INVALID, from, to, addr, step);
  }

  /**
   * `list` of slots [from, to): `value` at `from`, then `step` more at each slot after it (a
   * free run counts down: step -1). Where the run it ends up in is the segment's initial free
   * run, the run is forgotten: a segment whose mappings are all released costs nothing again.
   */
  setListRun(from: number, to: number, value: number, step: number): void {
    this.generation++;
    const runs = this.listRuns;
    runs.set(from, to, value, step);
    const k = runs.lastSetRun();
    const start = runs.runStart(k);
    const end = runs.runEnd(k);
    const segmentEnd = Math.min((Math.floor(start / SEGSIZE) + 1) * SEGSIZE, this.nslabs);
    if (end <= segmentEnd && runs.runValue(k) === segmentEnd - start && (runs.runStep(k) === -1 || end - start === 1)) runs.clear(start, end);
  }

  /**
   * Renumbers `list` over [from, to) from the end: a slot holding 0 (used) stays 0, a free one
   * counts the free slots from it to the next used slot or its segment's end (the free runs Linux
   * keeps). One run per free stretch (a chunk release renumbers whole segments).
   */
  renumberFreeRuns(from: number, to: number): void {
    for (let end = to; end > from; ) {
      const segmentStart = Math.max(from, Math.floor((end - 1) / SEGSIZE) * SEGSIZE);
      // Within the segment, from its end: used slots stay, each free stretch counts down to its end.
      let stretchEnd = end;
      for (let i = end - 1; i >= segmentStart - 1; i--) {
        if (i >= segmentStart && this.list(i) !== 0) continue;
        if (stretchEnd > i + 1) this.setListRun(i + 1, stretchEnd, stretchEnd - (i + 1), -1);
        stretchEnd = i;
      }
      end = segmentStart;
    }
  }

  setPadSlots(i: number, value: number): void {
    this.setRun(this.padSlotsRuns, 0, i, i + 1, value, 0);
  }
  /**
   * Log an allocation (sign 1) or a release (-1) of slots [slotIndex, slotIndex + nslots), handed
   * out as tlbAddr for allocSize bytes. Counts as a slot write (`generation` moves), so the change
   * is after every generation a reader saw before it.
   */
  logChange(sign: 1 | -1, slotIndex: number, nslots: number, tlbAddr: number, allocSize: number): void {
    const generation = ++this.generation;
    const log = (this.log ??= new Float64Array(CHANGES_KEPT * LOG_WIDTH));
    const at = (this.logged % CHANGES_KEPT) * LOG_WIDTH;
    if (this.logged >= CHANGES_KEPT) this.forgotten = log[at]!;
    log[at] = generation;
    log[at + 1] = sign;
    log[at + 2] = slotIndex;
    log[at + 3] = nslots;
    log[at + 4] = tlbAddr;
    log[at + 5] = allocSize;
    this.logged++;
  }

  /**
   * SwiotlbView.changesSince(): the changes made after generation `since`, oldest first,
   * CHANGE_WIDTH numbers each, written into `out` from index 0; returns how many numbers, or -1
   * when the log no longer reaches back to `since` (or `since` is a generation not reached yet).
   * Reads the log without consuming it: O(changes since).
   */
  changesSince(since: number, out: number[]): number {
    if (!(since <= this.generation)) return -1;
    const log = this.log;
    if (log === undefined) return 0;
    const oldest = Math.max(0, this.logged - CHANGES_KEPT);
    let first = this.logged;
    while (first > oldest && log[((first - 1) % CHANGES_KEPT) * LOG_WIDTH]! > since) first--;
    if (first === oldest && this.forgotten > since) return -1;
    let n = 0;
    for (let c = first; c < this.logged; c++) {
      const at = (c % CHANGES_KEPT) * LOG_WIDTH;
      for (let k = 1; k < LOG_WIDTH; k++) out[n++] = log[at + k]!;
    }
    return n;
  }

  setKind(i: number, value: number): void {
    const was = this.kind(i);
    this.setRun(this.kindRuns, 0, i, i + 1, value, 0);
    if ((was === 0) === (value === 0)) return;
    // Binary search for i's place among the heads.
    let lo = 0;
    let hi = this.heads.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.heads[mid]! < i) lo = mid + 1;
      else hi = mid;
    }
    if (value === 0) this.heads.splice(lo, 1);
    else this.heads.splice(lo, 0, i);
  }
  setMapSize(i: number, value: number): void {
    this.setRun(this.mapSizeRuns, 0, i, i + 1, value, 0);
  }
  setHeadOffset(i: number, value: number): void {
    this.setRun(this.headOffsetRuns, 0, i, i + 1, value, 0);
  }
}
