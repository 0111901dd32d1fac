// A list of numbers an oracle refills on every check (the leaves to look at, the findings already
// made). The array only grows and `count` says how much of it is in use: clear() is one store.
// Truncating an array instead (`length = 0`) is a runtime call in V8 that also drops its backing
// store, which the next step then grows again.

export class NumberList {
  private readonly items: number[] = [];
  /** How many numbers the list holds. */
  count = 0;

  clear(): void {
    this.count = 0;
  }

  push(value: number): void {
    this.items[this.count++] = value;
  }

  /** The number at index `i` (< count). */
  at(i: number): number {
    return this.items[i]!;
  }

  includes(value: number): boolean {
    for (let i = 0; i < this.count; i++) if (this.items[i] === value) return true;
    return false;
  }

  /** push() unless the list holds `value` already. */
  pushOnce(value: number): void {
    if (!this.includes(value)) this.push(value);
  }
}
