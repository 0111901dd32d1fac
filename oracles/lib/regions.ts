// Per-2M-region state of an oracle: one typed-array record per region (frame / 512) something
// touched, created on first use. A step's frames come in ranges, so consecutive look-ups mostly
// stay in one region: a one-entry cache answers those without hashing.

export class RegionArrays<T> {
  private readonly map = new Map<number, T>();
  private lastIndex = -1;
  private last: T | undefined;

  constructor(private readonly create: () => T) {}

  /** The record of region `index`, or undefined when none was created. */
  get(index: number): T | undefined {
    if (index === this.lastIndex) return this.last;
    // A miss is cached too: every record comes in through getOrCreate() or set(), which replace it.
    this.lastIndex = index;
    this.last = this.map.get(index);
    return this.last;
  }

  /** Region `index` now holds `value`. */
  set(index: number, value: T): void {
    this.map.set(index, value);
    this.lastIndex = index;
    this.last = value;
  }

  /** The record of region `index`, created when missing. */
  getOrCreate(index: number): T {
    let found = this.get(index);
    if (found === undefined) {
      found = this.create();
      this.set(index, found);
    }
    return found;
  }

  /** The regions held and their records, in creation order. */
  entries(): IterableIterator<[number, T]> {
    return this.map.entries();
  }
}
