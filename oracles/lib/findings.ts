// The findings of one check, gathered in a reused array. Most steps are clean, and returning a
// fresh empty array from every check of every oracle is garbage the collector pays for: take()
// hands the findings over in a new array only when there are some, and undefined otherwise
// (which the Oracle contract allows).

import type { Finding } from 'cocofuzz/api';

export class Findings {
  private readonly list: Finding[] = [];

  get length(): number {
    return this.list.length;
  }

  push(finding: Finding): void {
    this.list.push(finding);
  }

  /** The findings gathered since the last take(), or undefined when there are none. */
  take(): Finding[] | undefined {
    if (this.list.length === 0) return undefined;
    const taken = this.list.slice();
    this.list.length = 0;
    return taken;
  }
}
