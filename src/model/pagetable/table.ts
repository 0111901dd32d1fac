// The table pages of the radix tree, kept in flat typed arrays indexed by table id.

/** An item holds nothing (PT_ENTRY_EMPTY). */
export const EMPTY = 0;
/** An item points to a lower table (PT_ENTRY_TABLE); its `entry` is the lower table's id. */
export const TABLE = 1;
// Any other kind is a leaf (PT_ENTRY_OA): the lg2 of the leaf's full size, and its `entry` is
// the leaf's base OA. Every replica of a contiguous amdv1 leaf holds the same kind and OA, as
// the hardware's replicated NextLevel=7 PTEs do, so any replica decodes the whole leaf
// (amdv1pt_entry_num_contig_lg2()).

// What a table's `linear` summary says about its items. The kernel has no such field (every
// walk reads the PTEs); the model keeps it so that a range question over a table of 512 4K
// leaves mapping one linear run (a swiotlb pool mapped 4K by 4K) costs one item, not 512.
/** Not known since the last write to the table: recomputed on the next question. */
export const SUMMARY_UNKNOWN = 0;
/** Every item is a leaf of exactly the item's size, and item i maps entry[0] + i * item size. */
export const SUMMARY_LINEAR = 1;
/** Anything else: empty items, lower tables, contiguous leaves, a break in the output. */
export const SUMMARY_MIXED = 2;

/**
 * All table pages of one page table. Item `i` of table `t` is slot `t * items + i` of the
 * arrays, so a walk reads numbers from a few typed arrays and a map or unmap in existing
 * tables allocates nothing; a new table costs no allocation either while the store has room.
 *
 * Ids of freed tables are reused only after release(), which pagetable.ts calls from sync():
 * the kernel puts gather->freelist pages back only after the IOTLB flush
 * (iommu_put_pages_list() in the driver's iotlb_sync), so a walk cache never sees a reused
 * page.
 */
export class TableStore {
  kind: Uint8Array;
  entry: Float64Array;
  level: Uint8Array;
  /** Non-empty items per table, so an empty subtree is recognized without a scan. */
  used: Uint16Array;
  /**
   * Per table, SUMMARY_*: whoever writes an item of a table resets its summary to
   * SUMMARY_UNKNOWN (or sets what it just built), and the walkers fill it in on demand.
   */
  linear: Uint8Array;

  private capacity: number;
  private next = 0;
  private readonly free: number[] = [];

  constructor(
    readonly items: number,
    initialCapacity = 8,
  ) {
    this.capacity = initialCapacity;
    this.kind = new Uint8Array(initialCapacity * items);
    this.entry = new Float64Array(initialCapacity * items);
    this.level = new Uint8Array(initialCapacity);
    this.used = new Uint16Array(initialCapacity);
    this.linear = new Uint8Array(initialCapacity);
  }

  /** A zeroed table. May replace the arrays: callers re-read them after allocating. */
  alloc(level: number): number {
    let id = this.free.pop();
    if (id === undefined) {
      if (this.next === this.capacity) this.grow();
      id = this.next++;
    }
    this.level[id] = level;
    this.used[id] = 0;
    this.linear[id] = SUMMARY_UNKNOWN;
    return id;
  }

  /** Takes back a page after the flush; clears what a replaced subtree left in it. */
  release(id: number): void {
    this.kind.fill(EMPTY, id * this.items, (id + 1) * this.items);
    this.used[id] = 0;
    this.linear[id] = SUMMARY_UNKNOWN;
    this.free.push(id);
  }

  /**
   * A quarter more room, not double: a table is 4.5 KiB of arrays and a world keeps its store's
   * whole capacity (a boot-cache copy copies it too). Doubling left a 1 TiB guest's NPT with 64
   * tables' room for 33 tables (139 KiB of its 2.3 MiB); the extra copies are few (tables are
   * made at boot and by splits) and amortised as doubling's are.
   */
  private grow(): void {
    const capacity = Math.max(this.capacity + 1, Math.ceil(this.capacity * 1.25));
    const kind = new Uint8Array(capacity * this.items);
    kind.set(this.kind);
    const entry = new Float64Array(capacity * this.items);
    entry.set(this.entry);
    const level = new Uint8Array(capacity);
    level.set(this.level);
    const used = new Uint16Array(capacity);
    used.set(this.used);
    const linear = new Uint8Array(capacity);
    linear.set(this.linear);
    this.kind = kind;
    this.entry = entry;
    this.level = level;
    this.used = used;
    this.linear = linear;
    this.capacity = capacity;
  }
}
