// HostView.backingRunEnd (src/host/backing.ts runEnd): the run question the oracles walk host
// backing with. Checked against its per-page definition (same backing state, backingHpa advancing
// 4K per page, -1 throughout when nothing backs it) on worlds driven by generated cases of
// several pairings, and for what it is for: a swiotlb pool shared at boot as 2M chunks is one
// step, whatever its size (its chunks follow each other: one run of frames).

import { describe, expect, it } from 'vitest';
import { SZ_4K } from '../../src/api.ts';
import type { World } from '../../src/engine/world.ts';
import { generateCase } from '../../src/ops/generate.ts';
import { makeConfig, makeWorld } from '../helpers/world.ts';

/** The per-page definition: how far from `gfn` the state stays and the frames advance 4K a page. */
function referenceRunEnd(world: World, gfn: number, limit: number): number {
  const host = world.host;
  const shared = (g: number): boolean => host.sharedHpa(g * SZ_4K) >= 0;
  const first = host.backingHpa(gfn * SZ_4K);
  let at = gfn + 1;
  for (; at < limit; at++) {
    const hpa = host.backingHpa(at * SZ_4K);
    if (shared(at) !== shared(gfn)) break;
    if (first < 0 ? hpa >= 0 : hpa !== first + (at - gfn) * SZ_4K) break;
  }
  return at;
}

/** Every run boundary of [from, to), walked with backingRunEnd, equals the per-page one. */
function expectRunsMatch(world: World, from: number, to: number): number {
  let runs = 0;
  for (let gfn = from; gfn < to; runs++) {
    const end = world.host.backingRunEnd(gfn, to);
    expect(end, `run from gfn ${gfn}`).toBe(referenceRunEnd(world, gfn, to));
    gfn = end;
  }
  return runs;
}

describe('HostView.backingRunEnd', () => {
  for (const [hostPolicy, guestPolicy] of [
    ['kvm-4k', 'linux'],
    ['quiesce-dma', 'linux-2m-pool'],
    ['vfio-static', 'linux'],
    ['cut-on-convert', 'linux-2m-pool'],
  ] as const) {
    it(`matches its per-page definition after generated cases (${hostPolicy} + ${guestPolicy})`, () => {
      const config = makeConfig({ hostPolicy, guestPolicy });
      const pages = config.guestMemory / SZ_4K;
      for (let seed = 0; seed < 4; seed++) {
        const world = makeWorld({ hostPolicy, guestPolicy }, {}, `runs/${seed}`);
        const { ops } = generateCase(config, `backing-runs/${hostPolicy}/${seed}`, { steps: 40, weights: { during: 0 } });
        ops.forEach((op, i) => world.apply(op, i));
        expectRunsMatch(world, 0, pages);
        // Runs that start mid-region and limits that cut them.
        expectRunsMatch(world, 7, pages - 5);
      }
    });
  }

  it('walks a 1G pool shared at boot in one step, and nothing above guest memory', () => {
    const world = makeWorld({ hostPolicy: 'quiesce-dma', guestPolicy: 'linux-2m-pool', guestMemory: '4G', swiotlb: '1G' });
    const pool = world.guest.swiotlb;
    const first = pool.base / SZ_4K;
    const last = pool.end / SZ_4K;
    let steps = 0;
    for (let gfn = first; gfn < last; steps++) gfn = world.host.backingRunEnd(gfn, last);
    expect(steps).toBe(1);
    // Past guest memory nothing is backed: one run up to any limit.
    expect(world.host.backingRunEnd(world.config.guestMemory / SZ_4K, 2 ** 40)).toBe(2 ** 40);
  });
});
