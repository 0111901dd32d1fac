// MemoryView.writeStamp / regionsWrittenSince() against a brute-force reference: a log of every
// chunk a write or copy set, with the stamp of that write, searched in full for each question. The
// reference also keeps the tokens, so a copy of never-written memory into a region nothing wrote
// (which changes nothing, and makes no region) counts as no write, as in the model. Half the runs
// copy the memory as the boot cache does (GraphCopy) and go on writing the copy: the template must
// keep its answers, and the copy its own when the template is written again. The DMA path's
// writeRuns() and readRuns() (tokens as runs), and writeEach() (a fill chunk by chunk, as so many
// one-chunk writes), are checked against the same reference.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GraphCopy } from '../../src/model/graph-copy.ts';
import { Memory } from '../../src/model/memory.ts';
import { expandTokenRuns } from '../../src/model/token-runs.ts';
import { SZ_2K, SZ_2M } from '../../src/model/size.ts';

/** What the model must answer, kept the slow way. */
class Reference {
  stamp = 0;
  next = 1;
  readonly tokens = new Map<number, number>();
  /** Regions holding a region array in the model (a non-zero token landed there once). */
  readonly regions = new Set<number>();
  /** [stamp, region] per chunk set. */
  readonly log: [number, number][] = [];

  clone(): Reference {
    const copy = new Reference();
    copy.stamp = this.stamp;
    copy.next = this.next;
    for (const [k, v] of this.tokens) copy.tokens.set(k, v);
    for (const r of this.regions) copy.regions.add(r);
    copy.log.push(...this.log);
    return copy;
  }

  private set(chunk: number, token: number): void {
    const region = Math.floor((chunk * SZ_2K) / SZ_2M);
    if (token === 0 && !this.regions.has(region)) return;
    this.regions.add(region);
    this.tokens.set(chunk, token);
    this.log.push([this.stamp, region]);
  }

  write(hpa: number, len: number): void {
    if (len <= 0) return;
    this.stamp++;
    for (let c = Math.floor(hpa / SZ_2K); c <= Math.floor((hpa + len - 1) / SZ_2K); c++) this.set(c, this.next++);
  }

  copy(src: number, dst: number, len: number): void {
    if (len <= 0) return;
    this.stamp++;
    let offset = 0;
    for (let c = Math.floor(dst / SZ_2K); c <= Math.floor((dst + len - 1) / SZ_2K); c++) {
      this.set(c, this.tokens.get(Math.floor((src + offset) / SZ_2K)) ?? 0);
      offset = (c + 1) * SZ_2K - dst;
    }
  }

  tokensOf(hpa: number, len: number): number[] {
    const out: number[] = [];
    if (len > 0) for (let c = Math.floor(hpa / SZ_2K); c <= Math.floor((hpa + len - 1) / SZ_2K); c++) out.push(this.tokens.get(c) ?? 0);
    return out;
  }

  regionsWrittenSince(stamp: number, hpa: number, len: number): boolean {
    if (len <= 0) return false;
    const first = Math.floor(hpa / SZ_2M);
    const last = Math.floor((hpa + len - 1) / SZ_2M);
    return this.log.some(([s, region]) => s > stamp && region >= first && region <= last);
  }
}

/** Addresses in a few 2M regions, some next to each other, one above 2^44 (no 32-bit truncation). */
const BASES = [0, SZ_2M, 2 * SZ_2M, 7 * SZ_2M, 2 ** 44 + 5 * SZ_2M];
const address = fc.record({ base: fc.constantFrom(...BASES), offset: fc.integer({ min: 0, max: SZ_2M - 1 }) }).map(({ base, offset }) => base + offset);
const length = fc.oneof(fc.integer({ min: 0, max: 3 * SZ_2K }), fc.integer({ min: 0, max: 2 * SZ_2M }));
const op = fc.oneof(
  fc.record({ kind: fc.constant('write' as const), hpa: address, len: length }),
  fc.record({ kind: fc.constant('writeRuns' as const), hpa: address, len: length }),
  fc.record({ kind: fc.constant('copy' as const), src: address, hpa: address, len: length }),
  fc.record({ kind: fc.constant('each' as const), hpa: address, len: length }),
);
const question = fc.record({ stamp: fc.nat(), hpa: address, len: length });

function apply(memory: Memory, reference: Reference, o: { kind: 'write' | 'writeRuns' | 'copy' | 'each'; hpa: number; len: number; src?: number }): void {
  if (o.kind === 'write') {
    memory.write(o.hpa, o.len);
    reference.write(o.hpa, o.len);
  } else if (o.kind === 'writeRuns') {
    // A DMA write: its tokens are consecutive, one pair appended to what the runs held.
    const runs = [0, 3];
    const first = reference.next;
    memory.writeRuns(o.hpa, o.len, runs);
    reference.write(o.hpa, o.len);
    expect(runs).toEqual(o.len > 0 ? [0, 3, first, reference.next - first] : [0, 3]);
  } else if (o.kind === 'each') {
    // A buffer filled chunk by chunk: as many one-chunk writes, in one call.
    const count = Math.ceil(o.len / SZ_2K);
    memory.writeEach(o.hpa, count);
    for (let i = 0; i < count; i++) reference.write(Math.floor(o.hpa / SZ_2K) * SZ_2K + i * SZ_2K, 1);
  } else {
    memory.copy(o.src!, o.hpa, o.len);
    reference.copy(o.src!, o.hpa, o.len);
  }
}

function agree(memory: Memory, reference: Reference, questions: { stamp: number; hpa: number; len: number }[]): void {
  expect(memory.writeStamp).toBe(reference.stamp);
  expect(memory.chunkCount).toBe([...reference.tokens.values()].filter((token) => token !== 0).length);
  for (const q of questions) {
    const runs: number[] = [];
    memory.readRuns(q.hpa, q.len, runs);
    expect(expandTokenRuns(runs), `tokens at ${q.hpa}, len ${q.len}`).toEqual(reference.tokensOf(q.hpa, q.len));
    // Pairs as short as they can be: no pair continues the one before it.
    for (let r = 2; r < runs.length; r += 2) expect(runs[r] === 0 ? runs[r - 2] === 0 : runs[r - 2] !== 0 && runs[r - 2]! + runs[r - 1]! === runs[r]).toBe(false);
    // Stamps the run really had (0..writeStamp), and one beyond it.
    const stamp = q.stamp % (reference.stamp + 2);
    expect(memory.regionsWrittenSince(stamp, q.hpa, q.len), `stamp ${stamp}, hpa ${q.hpa}, len ${q.len}`).toBe(reference.regionsWrittenSince(stamp, q.hpa, q.len));
  }
}

describe('Memory write stamps (regionsWrittenSince)', () => {
  it('answers as a brute-force log of every write, also across a boot-cache copy', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 12 }), fc.array(op, { maxLength: 12 }), fc.boolean(), fc.array(question, { minLength: 1, maxLength: 30 }), (before, after, copied, questions) => {
        const template = new Memory();
        const templateReference = new Reference();
        for (const o of before) apply(template, templateReference, o);
        agree(template, templateReference, questions);
        const memory = copied ? new GraphCopy().copy(template) : template;
        const reference = copied ? templateReference.clone() : templateReference;
        for (const o of after) apply(memory, reference, o);
        agree(memory, reference, questions);
        if (copied) {
          // The template is as it was, and writing it leaves the copy as it was.
          agree(template, templateReference, questions);
          const rewritten = templateReference.clone();
          for (const o of before) apply(template, rewritten, o);
          agree(memory, reference, questions);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('counts copies, which write old tokens, and the region of every chunk a write straddles', () => {
    const memory = new Memory();
    memory.write(0, SZ_2K);
    const stamp = memory.writeStamp;
    expect(memory.regionsWrittenSince(stamp, 0, SZ_2M)).toBe(false);
    // A copy of an old token is a write all the same.
    memory.copy(0, SZ_2M, SZ_2K);
    expect(memory.regionsWrittenSince(stamp, SZ_2M + SZ_2M / 2, 1)).toBe(true);
    expect(memory.regionsWrittenSince(stamp, 0, SZ_2M)).toBe(false);
    // Two bytes across the boundary of regions 2 and 3: both are written.
    const later = memory.writeStamp;
    memory.write(3 * SZ_2M - 1, 2);
    expect(memory.regionsWrittenSince(later, 2 * SZ_2M, 1)).toBe(true);
    expect(memory.regionsWrittenSince(later, 3 * SZ_2M + SZ_2M - 1, 1)).toBe(true);
    expect(memory.regionsWrittenSince(later, SZ_2M, SZ_2M)).toBe(false);
    expect(memory.regionsWrittenSince(later, SZ_2M, SZ_2M + 1)).toBe(true);
    // Copying never-written memory into a never-written region changes nothing.
    const quiet = memory.writeStamp;
    memory.copy(9 * SZ_2M, 10 * SZ_2M, SZ_2K);
    expect(memory.regionsWrittenSince(quiet, 10 * SZ_2M, SZ_2M)).toBe(false);
    expect(memory.regionsWrittenSince(0, 0, 0)).toBe(false);
  });
});
