// The warm worker pool of a campaign (issue 15, startup): worker threads are started once, as soon
// as the campaign begins (they load their module graph and plugins while the main thread prepares
// its own runner and corpus), and every phase (corpus replay, the cases, guided rounds) and every
// shrink on a worker reuses them. A worker is stateless between tasks (worker.ts prepares its
// runner once and each case builds its own world), so reuse changes no verdict. A worker the
// watchdog stopped is dead and never handed out again; the next take() starts a fresh one.

import type { CampaignJob } from './case-job.ts';
import { WatchedWorker, workerHeapMb } from './watchdog.ts';

export class WorkerPool {
  private readonly idle: WatchedWorker[] = [];
  private readonly all = new Set<WatchedWorker>();
  private closed = false;
  /** Each worker's heap limit, for as many workers as the campaign runs at once. */
  private readonly heapMb: number;

  /** Starts `warm` workers right away (their start-up overlaps whatever the caller does next). */
  constructor(
    private readonly job: CampaignJob,
    warm = 0,
  ) {
    this.heapMb = workerHeapMb(Math.max(1, warm));
    for (let i = 0; i < warm; i++) this.idle.push(this.start());
  }

  /** An idle live worker, ready; a new one when none is idle. Rejects if a new worker cannot start. */
  async take(): Promise<WatchedWorker> {
    if (this.closed) throw new Error('the worker pool is closed');
    for (;;) {
      // A fresh worker is handed out once ready, alive or not (its task then reports it gone).
      const fresh = this.idle.length === 0;
      const worker = this.idle.shift() ?? this.start();
      try {
        await worker.ready;
      } catch (error) {
        this.drop(worker);
        throw error;
      }
      if (fresh || worker.alive) return worker;
      this.drop(worker);
    }
  }

  /** Hands a worker back after its task: kept warm while alive, forgotten once dead. */
  give(worker: WatchedWorker): void {
    if (this.closed || !worker.alive) this.drop(worker);
    else this.idle.push(worker);
  }

  /** Ends every worker, idle or not (the campaign is over). */
  close(): void {
    this.closed = true;
    for (const worker of this.all) worker.close();
    this.all.clear();
    this.idle.length = 0;
  }

  private start(): WatchedWorker {
    const worker = new WatchedWorker(this.job, this.heapMb);
    this.all.add(worker);
    return worker;
  }

  private drop(worker: WatchedWorker): void {
    worker.close();
    this.all.delete(worker);
  }
}
