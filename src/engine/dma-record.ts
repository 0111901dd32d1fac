// A DMA of a step (Step.dmas), as SimWorld.dma() records it. Its content tokens stay the runs the
// machine returns (model/memory.ts appendTokenRun(): pairs of first token and count), so a 1 GiB
// DMA write is one pair of numbers, not 524,288 tokens; `tokens`, the list of one token per 2 KiB
// chunk that oracles of API 1-3 read, is made from them the first time something asks (API 4).

import type { DmaRecord, DmaResult, RmpEntry, StrayFrame } from '../api.ts';
import { expandTokenRuns } from '../model/memory.ts';

export class RecordedDma implements DmaRecord {
  // Own properties made in the constructor, in one order (optional ones after, where present):
  // every record of a step has one hidden class to the oracles that read them.
  declare readonly dev: number;
  declare readonly iova: number;
  declare readonly len: number;
  declare readonly write: boolean;
  declare readonly legit: boolean;
  declare readonly tokenRuns: readonly number[];
  declare readonly result: DmaResult;
  declare target?: { kind: 'buf' | 'map'; id: number };
  declare during?: number;
  declare tdi?: 'unlocked' | 'locked' | 'run';
  declare rmpAtDma?: readonly RmpEntry[];
  declare strayFrames?: readonly StrayFrame[];
  #tokens: readonly number[] | undefined;

  constructor(dev: number, iova: number, len: number, write: boolean, legit: boolean, tokenRuns: readonly number[], result: DmaResult) {
    const self = this as { -readonly [K in 'dev' | 'iova' | 'len' | 'write' | 'legit' | 'tokenRuns' | 'result']: RecordedDma[K] };
    self.dev = dev;
    self.iova = iova;
    self.len = len;
    self.write = write;
    self.legit = legit;
    self.tokenRuns = tokenRuns;
    self.result = result;
  }

  /** One token per 2 KiB chunk the DMA moved, in order (made from tokenRuns once, on first read). */
  get tokens(): readonly number[] {
    return (this.#tokens ??= expandTokenRuns(this.tokenRuns));
  }

  /** As the plain record of API 3 printed, `tokens` listed, then `tokenRuns`. */
  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { dev: this.dev, iova: this.iova, len: this.len, write: this.write, legit: this.legit, tokens: this.tokens, tokenRuns: this.tokenRuns, result: this.result };
    for (const key of ['target', 'during', 'tdi', 'rmpAtDma', 'strayFrames'] as const) if (this[key] !== undefined) out[key] = this[key];
    return out;
  }
}
