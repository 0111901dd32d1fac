// Fresh zeroed Float64Arrays of one size, cut from larger buffers: a typed array of a few KiB has a
// backing store of its own outside the V8 heap, whose allocation and later collection cost more
// than zeroing it (a micro-benchmark: 1.2-2.7 us for a 16 KiB array of its own, 0.5 us cut from a
// buffer of 64). An oracle that makes a record per 2M region on every case takes them from here.
// A slice is never handed out twice: a buffer lives while any of its slices does.

export class Float64Slab {
  private buffer: Float64Array | undefined;
  private used = 0;

  /** Slices of `size` numbers, `perBuffer` of them per buffer. */
  constructor(
    private readonly size: number,
    private readonly perBuffer: number,
  ) {}

  /** A zeroed array of `size` numbers that nobody else holds. */
  take(): Float64Array {
    if (this.buffer === undefined || this.used === this.perBuffer) {
      this.buffer = new Float64Array(this.size * this.perBuffer);
      this.used = 0;
    }
    const start = this.used++ * this.size;
    return this.buffer.subarray(start, start + this.size);
  }
}
