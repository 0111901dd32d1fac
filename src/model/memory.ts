// Host physical memory contents, as tokens: every write gives the 2 KiB chunks it covers a fresh
// number from a monotonic counter, so an oracle can tell which write a byte came from
// (bounce-integrity, no-silent-remap) without storing data. The chunk is 2 KiB because that is
// the swiotlb slot (IO_TLB_SHIFT 11, include/linux/swiotlb.h), the smallest unit the guest
// bounces. The counter makes tokens deterministic for a given op sequence.
//
// A write's tokens are consecutive, so the chunks are stored as runs on which the token counts up
// by one (model/linear-runs.ts): a write of any length is one run, a copy chunk by chunk grows the
// run it continues, and memory costs what distinct writes left, not 8 KiB for every 2M region a
// write touched (a 1 TiB guest's bounce buffers, spread by Linux's next-fit search over its 1G
// pool, kept ~40 regions' arrays where a 64 MiB guest's kept ~24 for the same ops).
//
// Beside the tokens, each 2M region keeps the write stamp of the latest write into it (a second
// counter, one tick per write() or copy(): a copy writes old tokens, so tokens cannot tell it), so
// "was anything in these 2M regions written since stamp s" (regionsWrittenSince) is one compare per
// region. Per region, not per chunk: a stamp per chunk would double the stores of every write, to
// spare no-silent-remap (which asks per stretch of pages) 2% of its token re-reads: of the 414k
// pages its checks found in written regions over the bench workload's 3,000 cases, 404k were in
// stretches a per-chunk answer calls written too.

import { LinearRuns } from './linear-runs.ts';
import { appendTokenRun, expandTokenRuns } from './token-runs.ts';
import { SZ_2K, SZ_2M } from './size.ts';

const CHUNKS_PER_2M = SZ_2M / SZ_2K;

export class Memory {
  /** Chunk (hpa / 2K) -> its token; a chunk no run covers was never written (token 0). */
  private readonly tokens = new LinearRuns();
  /** 2M region (hpa / 2M) -> the write stamp of the latest write or copy into it; none: never written. */
  private readonly latest = new LinearRuns();
  private next = 1;
  /** The write stamp of the latest write() or copy(); 0 before any. */
  private stamp = 0;

  /** Chunks holding a token (for scale tests). */
  get chunkCount(): number {
    return this.tokens.coveredCount();
  }

  /** MemoryView: the token of the chunk holding `hpa`, 0 when never written. */
  token(hpa: number): number {
    return this.tokens.get(Math.floor(hpa / SZ_2K)) ?? 0;
  }

  /** MemoryView: the write stamp of the latest write or copy (0 before any). */
  get writeStamp(): number {
    return this.stamp;
  }

  /**
   * MemoryView: whether a write or copy after `stamp` wrote into a 2M region that the `len` bytes
   * at `hpa` overlap. One compare per region.
   */
  regionsWrittenSince(stamp: number, hpa: number, len: number): boolean {
    if (len <= 0) return false;
    const last = Math.floor((hpa + len - 1) / SZ_2M);
    for (let key = Math.floor(hpa / SZ_2M); key <= last; key++) {
      if ((this.latest.get(key) ?? 0) > stamp) return true;
    }
    return false;
  }

  /** Write `len` bytes at `hpa`: every chunk touched, even partly, gets a fresh token (writeRuns(), listed). */
  write(hpa: number, len: number): number[] {
    const runs: number[] = [];
    this.writeRuns(hpa, len, runs);
    return expandTokenRuns(runs);
  }

  /**
   * Write `len` bytes at `hpa`, every chunk touched getting a fresh token, the tokens appended to
   * `runs` (token-runs.ts: pairs of first token and count): a write's tokens are consecutive, so
   * a DMA of any length is one pair, stored as one run.
   */
  writeRuns(hpa: number, len: number, runs: number[]): void {
    if (len <= 0) return;
    this.stamp++;
    const first = Math.floor(hpa / SZ_2K);
    const end = Math.floor((hpa + len - 1) / SZ_2K) + 1;
    const token = this.next;
    this.tokens.set(first, end, token, 1);
    this.next += end - first;
    this.latest.set(Math.floor(first / CHUNKS_PER_2M), Math.floor((end - 1) / CHUNKS_PER_2M) + 1, this.stamp, 0);
    appendTokenRun(runs, token, end - first);
  }

  /**
   * `count` writes of one chunk each, from the chunk holding `hpa` on (a driver filling a buffer
   * chunk by chunk): the tokens and write stamps of that many one-chunk writeRuns() calls, stored
   * at once (one token run; each 2M region stamped with its last chunk's write).
   */
  writeEach(hpa: number, count: number): void {
    if (count <= 0) return;
    const first = Math.floor(hpa / SZ_2K);
    const end = first + count;
    this.tokens.set(first, end, this.next, 1);
    this.next += count;
    for (let key = Math.floor(first / CHUNKS_PER_2M); key * CHUNKS_PER_2M < end; key++) {
      const last = Math.min(end, (key + 1) * CHUNKS_PER_2M) - 1;
      this.latest.set(key, key + 1, this.stamp + (last - first) + 1, 0);
    }
    this.stamp += count;
  }

  /** The tokens of the chunks `len` bytes at `hpa` cover, appended to `runs` (appendTokenRun()), run by run. */
  readRuns(hpa: number, len: number, runs: number[]): void {
    if (len <= 0) return;
    const tokens = this.tokens;
    const end = Math.floor((hpa + len - 1) / SZ_2K) + 1;
    for (let chunk = Math.floor(hpa / SZ_2K); chunk < end; ) {
      // A run counts up by one (writes and copies store nothing else); chunks no run covers were
      // never written, up to the next run.
      const stop = Math.min(end, tokens.stretchEnd(chunk));
      appendTokenRun(runs, tokens.get(chunk) ?? 0, stop - chunk);
      chunk = stop;
    }
  }

  /** The tokens of the chunks `len` bytes at `hpa` cover, in order (readRuns(), listed). */
  read(hpa: number, len: number): number[] {
    const runs: number[] = [];
    this.readRuns(hpa, len, runs);
    return expandTokenRuns(runs);
  }

  /**
   * Copy `len` bytes (a CPU memcpy, e.g. a swiotlb bounce). Each destination chunk takes the
   * token of the source chunk holding the source byte that lands on the destination chunk's
   * first covered byte: exact when source and destination share their offset within a chunk
   * (swiotlb keeps `orig & min_align_mask & 2047`), an approximation otherwise. Never-written
   * source chunks copy as 0 (the destination chunk is then forgotten, as if never written).
   */
  copy(srcHpa: number, dstHpa: number, len: number): number[] {
    return this.copyInto(srcHpa, dstHpa, len, []);
  }

  copyInto(srcHpa: number, dstHpa: number, len: number, out: number[]): number[] {
    if (len <= 0) return out;
    this.stamp++;
    const last = Math.floor((dstHpa + len - 1) / SZ_2K);
    let offset = 0;
    for (let chunk = Math.floor(dstHpa / SZ_2K); chunk <= last; chunk++) {
      const token = this.tokens.get(Math.floor((srcHpa + offset) / SZ_2K)) ?? 0;
      this.set(chunk, token);
      out.push(token);
      offset = (chunk + 1) * SZ_2K - dstHpa;
    }
    return out;
  }

  /**
   * One chunk's token, from a copy. Token 0 (copied from never-written memory) forgets the chunk;
   * it stamps the region only if the region was written before (a copy of nothing into a region
   * nothing wrote changes nothing).
   */
  private set(chunk: number, token: number): void {
    const key = Math.floor(chunk / CHUNKS_PER_2M);
    const latest = this.latest.get(key);
    if (token === 0) {
      if (latest === undefined) return;
      this.tokens.clear(chunk, chunk + 1);
    } else {
      this.tokens.set(chunk, chunk + 1, token, 1);
    }
    if (latest !== this.stamp) this.latest.set(key, key + 1, this.stamp, 0);
  }
}
