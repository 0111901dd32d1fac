// The guest kernel's per-4K-page state (accepted, shared, validated, converting), sparse: one
// byte per page in 512-byte arrays, one per 2M region the guest touched. The flags are the
// guest's beliefs (its unaccepted-memory bitmap, its encryption attributes and what it last
// PVALIDATEd), which the oracles compare with the hardware's truth.

import type { GuestPage } from '../api.ts';
import { FRAMES_PER_2M } from '../model/size.ts';

export const ACCEPTED = 1;
export const SHARED = 2;
export const VALIDATED = 4;
export const CONVERTING = 8;

export class PageStates {
  private readonly regions = new Map<number, Uint8Array>();

  flags(gfn: number): number {
    return this.regions.get(Math.floor(gfn / FRAMES_PER_2M))?.[gfn % FRAMES_PER_2M] ?? 0;
  }

  has(gfn: number, flag: number): boolean {
    return (this.flags(gfn) & flag) !== 0;
  }

  update(gfn: number, set: number, clear: number): void {
    const index = Math.floor(gfn / FRAMES_PER_2M);
    let region = this.regions.get(index);
    if (region === undefined) {
      if (set === 0) return;
      region = new Uint8Array(FRAMES_PER_2M);
      this.regions.set(index, region);
    }
    const i = gfn % FRAMES_PER_2M;
    region[i] = ((region[i] ?? 0) & ~clear) | set;
  }

  page(gfn: number): GuestPage | undefined {
    const flags = this.flags(gfn);
    if (flags === 0) return undefined;
    return {
      accepted: (flags & ACCEPTED) !== 0,
      shared: (flags & SHARED) !== 0,
      validated: (flags & VALIDATED) !== 0,
      converting: (flags & CONVERTING) !== 0,
    };
  }

  *pages(): Generator<number> {
    const keys = [...this.regions.keys()].sort((a, b) => a - b);
    for (const index of keys) {
      const region = this.regions.get(index);
      if (region === undefined) continue;
      for (let i = 0; i < FRAMES_PER_2M; i++) if ((region[i] ?? 0) !== 0) yield index * FRAMES_PER_2M + i;
    }
  }
}
