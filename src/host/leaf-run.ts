// Adjacent page-table leaves of one size that a host procedure removes one by one (KVM's zap of
// the NPT, VFIO's unmap of the IO S2, leaf after leaf): gathered so that the model unmaps them in
// one walk and records one run of calls (Recorder.callRun()), where no interleaved op can run
// between two of them (Recorder.batching). Without batching every leaf goes on its own, as before.

export class LeafRun {
  iova = 0;
  size = 0;
  count = 0;
  private batching = false;

  /** A new gathering (the previous one was flushed); `batching` as the recorder says. */
  start(batching: boolean): this {
    this.batching = batching;
    this.count = 0;
    return this;
  }

  /** Whether the leaf [iova, iova + size) continues the run (then it is in it). */
  extend(iova: number, size: number): boolean {
    if (this.count === 0 || size !== this.size || iova !== this.iova + this.count * this.size) return false;
    this.count++;
    return true;
  }

  /** Starts a run at this leaf when batching (true), else leaves it to the caller (false). */
  begin(iova: number, size: number): boolean {
    if (!this.batching) return false;
    this.iova = iova;
    this.size = size;
    this.count = 1;
    return true;
  }
}
