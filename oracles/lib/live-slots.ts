// The swiotlb pool's live slot ranges as an oracle last saw them, kept up to date from
// SwiotlbView.changesSince() (API v3): a step that maps or unmaps through swiotlb applies its one
// or two changes, instead of listing and comparing every live range (liveMappings()). Ranges
// are kept as numbers, in liveMappings()' order (ascending head slot, that is ascending tlbAddr:
// a head slot holds one live allocation, and tlbAddr lies in its head slot). When the pool's log
// no longer reaches back to the last look (more changes than it keeps), or on the first look,
// the ranges are listed again from liveMappings().

import type { SwiotlbView } from 'cocofuzz/api';
import { NumberList } from './number-list.ts';
import { firstEndAbove } from './runs.ts';

/** Numbers per change in changesSince()'s answer: 1 / -1, slotIndex, nslots, tlbAddr, allocSize. */
const CHANGE = 5;

export class LiveSlots {
  /** The live ranges: the first `count` of each array (they only grow: clearing is one store). */
  readonly slotIndex: number[] = [];
  readonly nslots: number[] = [];
  readonly tlbAddr: number[] = [];
  readonly allocSize: number[] = [];
  count = 0;
  /**
   * The tlbAddr of each range that the last follow() found new, the first `freshCount`: its four
   * numbers were not those of a range live before it (a range released and made again just as
   * it was is not new).
   */
  private readonly fresh: number[] = [];
  freshCount = 0;
  /** `swiotlb.generation` when last followed (-1: never): unchanged, so are the ranges. */
  generation = -1;
  /** changesSince()'s answer (reused). */
  private readonly changes: number[] = [];
  /** The ranges, live before this follow(), that it saw released: slotIndex, nslots, tlbAddr, allocSize each. */
  private readonly gone = new NumberList();

  /**
   * Bring the ranges up to date with `swiotlb`. Returns whether any range was allocated or
   * released since the last call (the first call: whether any is live); `fresh` then says which
   * of the live ones are new.
   */
  follow(swiotlb: SwiotlbView): boolean {
    if (swiotlb.generation === this.generation) {
      this.freshCount = 0;
      return false;
    }
    const n = this.generation < 0 ? -1 : swiotlb.changesSince(this.generation, this.changes);
    this.generation = swiotlb.generation;
    if (n < 0) return this.relist(swiotlb);
    this.freshCount = 0;
    this.gone.clear();
    const changes = this.changes;
    for (let c = 0; c < n; c += CHANGE) {
      const slotIndex = changes[c + 1]!;
      const nslots = changes[c + 2]!;
      const tlbAddr = changes[c + 3]!;
      const allocSize = changes[c + 4]!;
      if (changes[c] === 1) this.add(slotIndex, nslots, tlbAddr, allocSize);
      else this.remove(slotIndex, nslots, tlbAddr, allocSize);
    }
    return n > 0;
  }

  /** Whether range `i` is new since the last follow(). */
  isFresh(i: number): boolean {
    const tlbAddr = this.tlbAddr[i];
    for (let k = 0; k < this.freshCount; k++) if (this.fresh[k] === tlbAddr) return true;
    return false;
  }

  /**
   * The index of the live range handed out as `tlbAddr`, or where it would go: the first whose
   * tlbAddr is above `tlbAddr - 1` (addresses are whole numbers; lib/runs.ts's binary search).
   */
  indexOf(tlbAddr: number): number {
    return firstEndAbove(this.tlbAddr, this.count, tlbAddr - 1);
  }

  private add(slotIndex: number, nslots: number, tlbAddr: number, allocSize: number): void {
    const at = this.indexOf(tlbAddr);
    for (let k = this.count; k > at; k--) this.set(k, this.slotIndex[k - 1]!, this.nslots[k - 1]!, this.tlbAddr[k - 1]!, this.allocSize[k - 1]!);
    this.set(at, slotIndex, nslots, tlbAddr, allocSize);
    this.count++;
    if (!hasKey(this.gone, slotIndex, nslots, tlbAddr, allocSize)) this.fresh[this.freshCount++] = tlbAddr;
  }

  private remove(slotIndex: number, nslots: number, tlbAddr: number, allocSize: number): void {
    const at = this.indexOf(tlbAddr);
    if (at >= this.count || this.tlbAddr[at] !== tlbAddr) throw new Error(`LiveSlots: the pool released slots at ${tlbAddr}, which were not live`);
    for (let k = at; k + 1 < this.count; k++) this.set(k, this.slotIndex[k + 1]!, this.nslots[k + 1]!, this.tlbAddr[k + 1]!, this.allocSize[k + 1]!);
    this.count--;
    // A range made since the last follow() is simply no longer new; one live before it is gone.
    if (!this.dropFresh(tlbAddr)) pushKey(this.gone, slotIndex, nslots, tlbAddr, allocSize);
  }

  /** List the ranges again; the new ones are those whose numbers no range had before. */
  private relist(swiotlb: SwiotlbView): boolean {
    // The ranges before, as keys (rare: a first look, or a log overrun).
    const before = this.gone;
    before.clear();
    for (let i = 0; i < this.count; i++) pushKey(before, this.slotIndex[i]!, this.nslots[i]!, this.tlbAddr[i]!, this.allocSize[i]!);
    this.freshCount = 0;
    this.count = 0;
    for (const range of swiotlb.liveMappings()) {
      this.set(this.count++, range.slotIndex, range.nslots, range.tlbAddr, range.allocSize);
      if (!hasKey(before, range.slotIndex, range.nslots, range.tlbAddr, range.allocSize)) this.fresh[this.freshCount++] = range.tlbAddr;
    }
    return this.freshCount > 0 || this.count * 4 !== before.count;
  }

  /** Take `tlbAddr` out of the fresh ones if it is there (the last takes its place); whether it was. */
  private dropFresh(tlbAddr: number): boolean {
    for (let k = 0; k < this.freshCount; k++) {
      if (this.fresh[k] !== tlbAddr) continue;
      this.fresh[k] = this.fresh[--this.freshCount]!;
      return true;
    }
    return false;
  }

  private set(i: number, slotIndex: number, nslots: number, tlbAddr: number, allocSize: number): void {
    this.slotIndex[i] = slotIndex;
    this.nslots[i] = nslots;
    this.tlbAddr[i] = tlbAddr;
    this.allocSize[i] = allocSize;
  }
}

/** Appends a range to `keys` as its four numbers. */
function pushKey(keys: NumberList, slotIndex: number, nslots: number, tlbAddr: number, allocSize: number): void {
  keys.push(slotIndex);
  keys.push(nslots);
  keys.push(tlbAddr);
  keys.push(allocSize);
}

/** Whether `keys` (four numbers per range) holds the range. */
function hasKey(keys: NumberList, slotIndex: number, nslots: number, tlbAddr: number, allocSize: number): boolean {
  for (let k = 0; k < keys.count; k += 4) {
    if (keys.at(k) === slotIndex && keys.at(k + 1) === nslots && keys.at(k + 2) === tlbAddr && keys.at(k + 3) === allocSize) return true;
  }
  return false;
}
