// Host physical memory contents, as tokens: every write gives the 2 KiB chunks it covers a fresh
// number from a monotonic counter, so an oracle can tell which write a byte came from
// (bounce-integrity, no-silent-remap) without storing data. The chunk is 2 KiB because that is
// the swiotlb slot (IO_TLB_SHIFT 11, include/linux/swiotlb.h), the smallest unit the guest
// bounces. Storage is one array of 1024 chunk tokens per 2M region written (allocated on the first
// write into it): it grows with what is written, never with the configured memory size, and a
// look-up is an array index, not a hash of a 2^41-range chunk number. The counter makes tokens
// deterministic for a given op sequence.
//
// Beside its tokens, a region keeps when each chunk was last written (a write stamp: a second
// counter, one tick per write() or copy(), since a copy writes old tokens) and the latest stamp of
// any of its chunks, so "was anything in this range written since stamp s" (writtenSince) costs one
// compare per 2M region nothing wrote since s. The stamps live in the region's own array, so the
// boot cache's copy-on-write (RegionStore.writable) copies them with the tokens.

import { RegionStore } from './regions.ts';
import { offsetIn, SZ_2K, SZ_2M } from './size.ts';

const CHUNKS_PER_2M = SZ_2M / SZ_2K;
/** Where a region's array keeps the write stamps of its chunks (after their tokens). */
const STAMPS = CHUNKS_PER_2M;
/** Where a region's array keeps the latest write stamp of any of its chunks. */
const LATEST = 2 * CHUNKS_PER_2M;

export class Memory {
  /**
   * 2M region index (hpa / 2M) -> the tokens of its 1024 chunks (0: never written), then their
   * write stamps (at STAMPS), then the region's latest write stamp (at LATEST).
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
    region[STAMPS + i] = this.stamp;
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
   * MemoryView: whether a write or copy after `stamp` wrote a chunk of the `len` bytes at `hpa`.
   * A region nothing wrote since `stamp` costs one compare; another, one per chunk asked about.
   */
  writtenSince(stamp: number, hpa: number, len: number): boolean {
    if (len <= 0) return false;
    const first = Math.floor(hpa / SZ_2K);
    const last = Math.floor((hpa + len - 1) / SZ_2K);
    for (let key = Math.floor(first / CHUNKS_PER_2M); key * CHUNKS_PER_2M <= last; key++) {
      const region = this.regions.get(key);
      if (region === undefined || region[LATEST]! <= stamp) continue;
      const base = key * CHUNKS_PER_2M;
      const to = Math.min(last - base, CHUNKS_PER_2M - 1);
      for (let i = Math.max(first - base, 0); i <= to; i++) if (region[STAMPS + i]! > stamp) return true;
    }
    return false;
  }

  /** Write `len` bytes at `hpa`: every chunk touched, even partly, gets a fresh token. */
  write(hpa: number, len: number): number[] {
    return this.writeInto(hpa, len, []);
  }

  /** As write(), appending the tokens to `out` (no allocation on the DMA path). */
  writeInto(hpa: number, len: number, out: number[]): number[] {
    if (len <= 0) return out;
    this.stamp++;
    const last = Math.floor((hpa + len - 1) / SZ_2K);
    for (let chunk = Math.floor(hpa / SZ_2K); chunk <= last; chunk++) {
      const token = this.next++;
      this.set(chunk, token);
      out.push(token);
    }
    return out;
  }

  /** The tokens of the chunks `len` bytes at `hpa` cover, in order. */
  read(hpa: number, len: number): number[] {
    return this.readInto(hpa, len, []);
  }

  readInto(hpa: number, len: number, out: number[]): number[] {
    if (len <= 0) return out;
    const last = Math.floor((hpa + len - 1) / SZ_2K);
    for (let chunk = Math.floor(hpa / SZ_2K); chunk <= last; chunk++) out.push(this.get(chunk));
    return out;
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
