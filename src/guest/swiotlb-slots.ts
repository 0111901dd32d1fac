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

/** Changed heads SwiotlbSlots keeps between two listings before it says "any" instead. */
const CHANGED_MAX = 64;

export class SwiotlbSlots {
  private readonly chunks: (Chunk | undefined)[];
  /** Counts slot writes: while it stays the same, the live allocations are the same (SwiotlbView.generation). */
  generation = 0;
  /** The slots whose `kind` is set (the head slots of the live allocations), ascending. */
  private readonly heads: number[] = [];
  /**
   * The head slots whose allocation was made or released since takeChanged() (in any order, a
   * head possibly twice): every allocation and release sets its head's kind, and nothing else
   * changes what describes a live allocation. Bounded: past CHANGED_MAX, `changedAll`.
   */
  private readonly changed = new Float64Array(CHANGED_MAX);
  private changedCount = 0;
  private changedAll = true;

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
   * How many heads were made or released since the last call (then wasChanged() asks about
   * them, until the next write), or -1 when too many were to keep, or before the first call: then
   * any head may have changed.
   */
  takeChanged(): number {
    const count = this.changedAll ? -1 : this.changedCount;
    this.changedCount = 0;
    this.changedAll = false;
    return count;
  }

  /** Whether `head` is among the first `count` heads takeChanged() counted. */
  wasChanged(head: number, count: number): boolean {
    for (let i = 0; i < count; i++) if (this.changed[i] === head) return true;
    return false;
  }

  setKind(i: number, value: number): void {
    if (!this.changedAll) {
      if (this.changedCount < CHANGED_MAX) this.changed[this.changedCount++] = i;
      else this.changedAll = true;
    }
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
