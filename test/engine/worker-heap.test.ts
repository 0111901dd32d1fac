// Each campaign worker's heap limit (watchdog.ts workerHeapMb): V8 grows a heap of 2 GiB or more
// by up to 4x between major GCs and a smaller one by at most 2x, so workers get 2 GiB where the
// machine has room for every worker's limit at once (one more worker than the campaign runs: a
// shrink's, or a dead worker's heap not yet freed), and 512 MB where it does not.

import { describe, expect, it } from 'vitest';
import { ROOMY_WORKER_HEAP_MB, WORKER_HEAP_MB, workerHeapMb } from '../../src/engine/watchdog.ts';

const GiB = 2 ** 30;

describe('workerHeapMb', () => {
  it('gives 2 GiB while the workers together stay within half the memory', () => {
    expect(workerHeapMb(1, 24 * GiB)).toBe(ROOMY_WORKER_HEAP_MB);
    expect(workerHeapMb(5, 24 * GiB)).toBe(ROOMY_WORKER_HEAP_MB);
    expect(workerHeapMb(15, 64 * GiB)).toBe(ROOMY_WORKER_HEAP_MB);
  });

  it('falls back to 512 MB past that, so a runaway hook in every worker cannot take the machine', () => {
    expect(workerHeapMb(6, 24 * GiB)).toBe(WORKER_HEAP_MB);
    expect(workerHeapMb(16, 64 * GiB)).toBe(WORKER_HEAP_MB);
    expect(workerHeapMb(1, 2 * GiB)).toBe(WORKER_HEAP_MB);
  });
});
