// Throughput of the IO page table model (src/model/pagetable) on amdv1, the SEV-SNP host
// format: random 4K map+unmap pairs (the DMA API streaming pattern) and a mixed-size workload.
// Run directly: node bin/run-ts.js bench/pagetable.ts [--quick]
import { pathToFileURL } from 'node:url';
import { createPageTable, type PageTable } from '../src/model/pagetable/index.ts';

const PAGE = 4096;

/** xorshift32: deterministic and cheap enough not to show in the figures. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

interface Workload {
  /** Runs `iterations` steps; returns the number of page table operations done. */
  run(iterations: number): number;
}

/**
 * Random 4K pages in a 4G window with 4096 live mappings: each step maps a new page and
 * unmaps the oldest live one (a pair); sync() every 256 steps, like a flush queue.
 */
function pairs4k(): Workload {
  const pt = createPageTable({ format: 'amdv1' });
  const random = rng(0x4b1d);
  const live = 4096;
  const ring = new Float64Array(live).fill(-1);
  let head = 0;
  let step = 0;
  return {
    run(iterations) {
      for (let n = 0; n < iterations; n++) {
        const old = ring[head]!;
        if (old >= 0) pt.unmap(old, PAGE);
        const iova = Math.floor(random() * 1048576) * PAGE;
        ring[head] = pt.map(iova, iova + 0x100000000, PAGE).error === undefined ? iova : -1;
        head = (head + 1) % live;
        if (++step % 256 === 0) pt.sync();
      }
      return iterations;
    },
  };
}

/**
 * Mixed sizes: lengths of 1-4 times a power of two from 4K to 1G, aligned to it, in a 64G
 * window, 256 live mappings; collisions are skipped. Counts map and unmap calls.
 */
function mixed(): Workload {
  const pt: PageTable = createPageTable({ format: 'amdv1' });
  const random = rng(0x5eed);
  const live = 256;
  const iovas = new Float64Array(live).fill(-1);
  const lens = new Float64Array(live);
  let head = 0;
  let step = 0;
  return {
    run(iterations) {
      let ops = 0;
      for (let n = 0; n < iterations; n++) {
        const old = iovas[head]!;
        if (old >= 0) {
          pt.unmap(old, lens[head]!);
          ops++;
        }
        // Bias toward small sizes, as DMA traffic is: lg2 = 12 + floor(19 * r^2).
        const r = random();
        const unit = 2 ** (12 + Math.floor(19 * r * r));
        const len = unit * (1 + Math.floor(random() * 4));
        const iova = Math.floor((random() * 64 * 2 ** 30) / unit) * unit;
        const result = pt.map(iova, iova, len);
        ops++;
        if (result.error === undefined) {
          iovas[head] = iova;
          lens[head] = len;
        } else {
          if (result.mapped > 0) pt.unmap(iova, result.mapped);
          iovas[head] = -1;
        }
        head = (head + 1) % live;
        if (++step % 64 === 0) pt.sync();
      }
      return ops;
    },
  };
}

/** Operations per second over about `ms` milliseconds, after a warm-up of the same length. */
function measure(workload: Workload, ms: number): number {
  const batch = 10_000;
  const warmUntil = performance.now() + ms;
  while (performance.now() < warmUntil) workload.run(batch);
  let ops = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    ops += workload.run(batch);
    now = performance.now();
  }
  return Math.round((ops * 1000) / (now - start));
}

export async function benchPageTable(options: { quick?: boolean } = {}): Promise<Record<string, number>> {
  const ms = options.quick ? 300 : 2000;
  const pairs = measure(pairs4k(), ms);
  // Yield between the two measurements so a caller's timers and output can run.
  await new Promise((resolve) => setImmediate(resolve));
  const mixedOps = measure(mixed(), ms);
  return {
    'amdv1 random 4K map+unmap pairs/s': pairs,
    'amdv1 mixed 4K..1G map/unmap ops/s': mixedOps,
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const figures = await benchPageTable({ quick: process.argv.includes('--quick') });
  for (const [name, value] of Object.entries(figures)) console.log(`${name.padEnd(40)} ${value.toLocaleString('en-US')}`);
}
