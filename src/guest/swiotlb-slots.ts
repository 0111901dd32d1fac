// The swiotlb pool's per-slot arrays (struct io_tlb_slot, one typed array per field, plus the
// model's head-slot bookkeeping), stored in chunks of SLOT_CHUNK slots allocated on the first
// write into them. A chunk never written holds what swiotlb_init_io_tlb_pool() leaves: every slot
// free, each IO_TLB_SEGSIZE segment one free run (`list` counting down to the segment end, clipped
// at the pool's end), no original address. So a pool costs what its mappings touched, not its
// size: a 32 GiB pool (16M slots) boots without allocating or initialising 16M slots. Slot indices
// may pass 2^32 in a huge pool: chunk arithmetic uses division, never bitwise operators.

/** Slots per chunk: a multiple of IO_TLB_SEGSIZE (128), so no segment, hence no free run and no
 *  Linux mapping, crosses a chunk. 4096 slots are 8 MiB of pool. */
export const SLOT_CHUNK = 4096;
const SEGSIZE = 128;
/**
 * `list` of a chunk that lies wholly inside the pool and was never written: each segment counts
 * down from SEGSIZE. Copied into a chunk at its first write instead of computing initialList() for
 * each of its slots (2% of the cheap ops' time with every oracle: the bench workload boots a fresh
 * world per case, whose first bounce writes a chunk).
 */
const INITIAL_LIST = Uint16Array.from({ length: SLOT_CHUNK }, (_, k) => SEGSIZE - (k % SEGSIZE));
/** Linux INVALID_PHYS_ADDR (~0): orig_addr of a free slot. */
const INVALID = -1;

interface Chunk {
  // struct io_tlb_slot (Linux: list and pad_slots are unsigned short).
  readonly list: Uint16Array;
  /**
   * orig_addr + 1: a new chunk's zeros read as INVALID_PHYS_ADDR without filling the array (the
   * fill was a third of a chunk's making, which the bench workload pays per case).
   */
  readonly origAddr1: Float64Array;
  readonly allocSize: Float64Array;
  readonly padSlots: Uint16Array;
  // Model-only, on the head slot of a live allocation.
  readonly kind: Uint8Array;
  readonly mapSize: Float64Array;
  readonly headOffset: Uint16Array;
}

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
  private readonly chunks: (Chunk | undefined)[];
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

  constructor(readonly nslabs: number) {
    this.chunks = new Array<Chunk | undefined>(Math.ceil(nslabs / SLOT_CHUNK)).fill(undefined);
  }

  /** `list` of a slot nobody wrote: the free run from it to the end of its segment (or pool). */
  private initialList(i: number): number {
    return Math.min(SEGSIZE - (i % SEGSIZE), this.nslabs - i);
  }

  /** Whether chunk `c` (slots c*SLOT_CHUNK ..) was ever written; an unwritten one is all free. */
  written(c: number): boolean {
    return this.chunks[c] !== undefined;
  }

  /** The head slots of the live allocations, ascending (read-only: setKind() keeps it). */
  liveHeads(): readonly number[] {
    return this.heads;
  }

  get chunkCount(): number {
    return this.chunks.length;
  }

  /** The chunk of slot `i`, made on first use: every setter, and only they, come here to write. */
  private chunk(i: number): Chunk {
    this.generation++;
    const c = Math.floor(i / SLOT_CHUNK);
    let chunk = this.chunks[c];
    if (chunk === undefined) {
      const first = c * SLOT_CHUNK;
      const list = new Uint16Array(SLOT_CHUNK);
      if (first + SLOT_CHUNK <= this.nslabs) list.set(INITIAL_LIST);
      else for (let k = 0; k < SLOT_CHUNK && first + k < this.nslabs; k++) list[k] = this.initialList(first + k);
      chunk = {
        list,
        origAddr1: new Float64Array(SLOT_CHUNK),
        allocSize: new Float64Array(SLOT_CHUNK),
        padSlots: new Uint16Array(SLOT_CHUNK),
        kind: new Uint8Array(SLOT_CHUNK),
        mapSize: new Float64Array(SLOT_CHUNK),
        headOffset: new Uint16Array(SLOT_CHUNK),
      };
      this.chunks[c] = chunk;
    }
    return chunk;
  }

  list(i: number): number {
    const chunk = this.chunks[Math.floor(i / SLOT_CHUNK)];
    return chunk === undefined ? this.initialList(i) : (chunk.list[i % SLOT_CHUNK] ?? 0);
  }
  origAddr(i: number): number {
    const chunk = this.chunks[Math.floor(i / SLOT_CHUNK)];
    return chunk === undefined ? INVALID : chunk.origAddr1[i % SLOT_CHUNK]! - 1;
  }
  allocSize(i: number): number {
    return this.chunks[Math.floor(i / SLOT_CHUNK)]?.allocSize[i % SLOT_CHUNK] ?? 0;
  }
  padSlots(i: number): number {
    return this.chunks[Math.floor(i / SLOT_CHUNK)]?.padSlots[i % SLOT_CHUNK] ?? 0;
  }
  kind(i: number): number {
    return this.chunks[Math.floor(i / SLOT_CHUNK)]?.kind[i % SLOT_CHUNK] ?? 0;
  }
  mapSize(i: number): number {
    return this.chunks[Math.floor(i / SLOT_CHUNK)]?.mapSize[i % SLOT_CHUNK] ?? 0;
  }
  headOffset(i: number): number {
    return this.chunks[Math.floor(i / SLOT_CHUNK)]?.headOffset[i % SLOT_CHUNK] ?? 0;
  }

  /** Sets field `field` of slots [from, to) to `value`: one fill per chunk (a 2M block is 1024 slots). */
  fill(field: 'list' | 'origAddr' | 'allocSize' | 'padSlots', from: number, to: number, value: number): void {
    for (let i = from; i < to; ) {
      const first = Math.floor(i / SLOT_CHUNK) * SLOT_CHUNK;
      const stop = Math.min(to, first + SLOT_CHUNK);
      const chunk = this.chunk(i);
      if (field === 'origAddr') chunk.origAddr1.fill(value + 1, i - first, stop - first);
      else chunk[field].fill(value, i - first, stop - first);
      i = stop;
    }
  }

  /** alloc_size of slots [from, to): `size` at `from`, `step` less at each slot after it. */
  setAllocSizeRun(from: number, to: number, size: number, step: number): void {
    for (let i = from; i < to; ) {
      const first = Math.floor(i / SLOT_CHUNK) * SLOT_CHUNK;
      const stop = Math.min(to, first + SLOT_CHUNK);
      const allocSize = this.chunk(i).allocSize;
      for (; i < stop; i++) allocSize[i - first] = size - (i - from) * step;
    }
  }

  /**
   * Renumbers `list` over [from, to) from the end: a slot holding 0 (used) stays 0, a free one
   * counts the free slots from it to the next used slot or its segment's end (the free runs Linux
   * keeps). Chunk by chunk, without a chunk look-up per slot (a chunk release renumbers whole
   * segments).
   */
  renumberFreeRuns(from: number, to: number): void {
    let count = 0;
    for (let i = to - 1; i >= from; ) {
      const first = Math.floor(i / SLOT_CHUNK) * SLOT_CHUNK;
      const list = this.chunk(i).list;
      for (const stop = Math.max(from, first); i >= stop; i--) {
        if (i % SEGSIZE === SEGSIZE - 1) count = 0;
        count = list[i - first] === 0 ? 0 : count + 1;
        list[i - first] = count;
      }
    }
  }

  setList(i: number, value: number): void {
    this.chunk(i).list[i % SLOT_CHUNK] = value;
  }
  setOrigAddr(i: number, value: number): void {
    this.chunk(i).origAddr1[i % SLOT_CHUNK] = value + 1;
  }
  setAllocSize(i: number, value: number): void {
    this.chunk(i).allocSize[i % SLOT_CHUNK] = value;
  }
  setPadSlots(i: number, value: number): void {
    this.chunk(i).padSlots[i % SLOT_CHUNK] = value;
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
    const chunk = this.chunk(i);
    const was = chunk.kind[i % SLOT_CHUNK]!;
    chunk.kind[i % SLOT_CHUNK] = value;
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
    this.chunk(i).mapSize[i % SLOT_CHUNK] = value;
  }
  setHeadOffset(i: number, value: number): void {
    this.chunk(i).headOffset[i % SLOT_CHUNK] = value;
  }
}
