// Host physical memory contents, as tokens: every write gives the 2 KiB chunks it covers a fresh
// number from a monotonic counter, so an oracle can tell which write a byte came from
// (bounce-integrity, no-silent-remap) without storing data. The chunk is 2 KiB because that is
// the swiotlb slot (IO_TLB_SHIFT 11, include/linux/swiotlb.h), the smallest unit the guest
// bounces. Storage is one array of 1024 chunk tokens per 2M region written (allocated on the first
// write into it): it grows with what is written, never with the configured memory size, and a
// look-up is an array index, not a hash of a 2^41-range chunk number. The counter makes tokens
// deterministic for a given op sequence.
//
// Beside its tokens, a region keeps the write stamp of the latest write into it (a second counter,
// one tick per write() or copy(): a copy writes old tokens, so tokens cannot tell it), so "was
// anything in these 2M regions written since stamp s" (regionsWrittenSince) is one compare per
// region. Per region, not per chunk: a stamp per chunk would double each region's array and the
// stores of every write, to spare no-silent-remap (which asks per stretch of pages) 2% of its token
// re-reads: of the 414k pages its checks found in written regions over the bench workload's 3,000
// cases, 404k were in stretches a per-chunk answer calls written too. The stamp lives in the region's own array, so the
// boot cache's copy-on-write (RegionStore.writable) copies it with the tokens.

import { RegionStore } from './regions.ts';
import { appendTokenRun, expandTokenRuns } from './token-runs.ts';
import { offsetIn, SZ_2K, SZ_2M } from './size.ts';

const CHUNKS_PER_2M = SZ_2M / SZ_2K;
/** Where a region's array keeps the write stamp of the latest write into it (after the tokens). */
const LATEST = CHUNKS_PER_2M;

export class Memory {
  /**
   * 2M region index (hpa / 2M) -> the tokens of its 1024 chunks (0: never written), then the
   * write stamp of the latest write into the region (at LATEST).
   */
  private readonly regions = new RegionStore<Float64Array>();
  private next = 1;
  private written = 0;
  /** The write stamp of the latest write() or copy(); 0 before any. */
  private stamp = 0;

  /** Chunks holding a token (for scale tests). */
  get chunkCount(): number {
    return this.written;
  }

  private get(chunk: number): number {
    return this.regions.get(Math.floor(chunk / CHUNKS_PER_2M))?.[offsetIn(chunk, CHUNKS_PER_2M)] ?? 0;
  }

  private set(chunk: number, token: number): void {
    const key = Math.floor(chunk / CHUNKS_PER_2M);
    let region = this.regions.writable(key);
    if (region === undefined) {
      if (token === 0) return;
      region = this.regions.add(key, new Float64Array(LATEST + 1));
    }
    const i = offsetIn(chunk, CHUNKS_PER_2M);
    this.written += (token !== 0 ? 1 : 0) - ((region[i] ?? 0) !== 0 ? 1 : 0);
    region[i] = token;
    region[LATEST] = this.stamp;
  }

  /** MemoryView: the token of the chunk holding `hpa`, 0 when never written. */
  token(hpa: number): number {
    return this.get(Math.floor(hpa / SZ_2K));
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
      if ((this.regions.get(key)?.[LATEST] ?? 0) > stamp) return true;
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
   * a DMA of any length is one pair, and the chunks are stored region by region, one look-up per
   * 2M region rather than per chunk.
   */
  writeRuns(hpa: number, len: number, runs: number[]): void {
    if (len <= 0) return;
    this.stamp++;
    const end = Math.floor((hpa + len - 1) / SZ_2K) + 1;
    const first = this.next;
    for (let chunk = Math.floor(hpa / SZ_2K); chunk < end; ) {
      const key = Math.floor(chunk / CHUNKS_PER_2M);
      const stop = Math.min(end, (key + 1) * CHUNKS_PER_2M);
      const region = this.regions.writable(key) ?? this.regions.add(key, new Float64Array(LATEST + 1));
      const base = key * CHUNKS_PER_2M;
      let fresh = 0;
      for (let i = chunk - base, n = stop - base; i < n; i++) {
        if (region[i] === 0) fresh++;
        region[i] = this.next++;
      }
      this.written += fresh;
      region[LATEST] = this.stamp;
      chunk = stop;
    }
    appendTokenRun(runs, first, this.next - first);
  }

  /** The tokens of the chunks `len` bytes at `hpa` cover, appended to `runs` (appendTokenRun()), region by region. */
  readRuns(hpa: number, len: number, runs: number[]): void {
    if (len <= 0) return;
    const end = Math.floor((hpa + len - 1) / SZ_2K) + 1;
    for (let chunk = Math.floor(hpa / SZ_2K); chunk < end; ) {
      const key = Math.floor(chunk / CHUNKS_PER_2M);
      const stop = Math.min(end, (key + 1) * CHUNKS_PER_2M);
      const region = this.regions.get(key);
      const base = key * CHUNKS_PER_2M;
      if (region === undefined) appendTokenRun(runs, 0, stop - chunk);
      else for (let i = chunk - base, n = stop - base; i < n; ) {
        // The stretch of chunks whose tokens advance by one (or stay 0): one pair.
        const token = region[i]!;
        let j = i + 1;
        if (token === 0) while (j < n && region[j] === 0) j++;
        else while (j < n && region[j] === token + (j - i)) j++;
        appendTokenRun(runs, token, j - i);
        i = j;
      }
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
      const token = this.get(Math.floor((srcHpa + offset) / SZ_2K));
      this.set(chunk, token);
      out.push(token);
      offset = (chunk + 1) * SZ_2K - dstHpa;
    }
    return out;
  }
}
