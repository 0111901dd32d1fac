// Host physical memory contents, as tokens: every write gives the 2 KiB chunks it covers a fresh
// number from a monotonic counter, so an oracle can tell which write a byte came from
// (bounce-integrity, no-silent-remap) without storing data. The chunk is 2 KiB because that is
// the swiotlb slot (IO_TLB_SHIFT 11, include/linux/swiotlb.h), the smallest unit the guest
// bounces. Storage is a Map keyed by hpa / 2048: it grows with what is written, never with the
// configured memory size. The counter makes tokens deterministic for a given op sequence.

import { SZ_2K } from './size.ts';

export class Memory {
  private readonly chunks = new Map<number, number>();
  private next = 1;

  /** Chunks ever written (for scale tests). */
  get chunkCount(): number {
    return this.chunks.size;
  }

  /** MemoryView: the token of the chunk holding `hpa`, 0 when never written. */
  token(hpa: number): number {
    return this.chunks.get(Math.floor(hpa / SZ_2K)) ?? 0;
  }

  /** Write `len` bytes at `hpa`: every chunk touched, even partly, gets a fresh token. */
  write(hpa: number, len: number): number[] {
    return this.writeInto(hpa, len, []);
  }

  /** As write(), appending the tokens to `out` (no allocation on the DMA path). */
  writeInto(hpa: number, len: number, out: number[]): number[] {
    if (len <= 0) return out;
    const last = Math.floor((hpa + len - 1) / SZ_2K);
    for (let chunk = Math.floor(hpa / SZ_2K); chunk <= last; chunk++) {
      const token = this.next++;
      this.chunks.set(chunk, token);
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
    for (let chunk = Math.floor(hpa / SZ_2K); chunk <= last; chunk++) out.push(this.chunks.get(chunk) ?? 0);
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
    const last = Math.floor((dstHpa + len - 1) / SZ_2K);
    let offset = 0;
    for (let chunk = Math.floor(dstHpa / SZ_2K); chunk <= last; chunk++) {
      const token = this.chunks.get(Math.floor((srcHpa + offset) / SZ_2K)) ?? 0;
      if (token === 0) this.chunks.delete(chunk);
      else this.chunks.set(chunk, token);
      out.push(token);
      offset = (chunk + 1) * SZ_2K - dstHpa;
    }
    return out;
  }
}
