// Issue 15: a case's cost does not grow with the swiotlb pool. The boot snapshots and full sweeps
// of the built-in oracles, and computeMetrics, walk the world run by run (RmpView.runEnd,
// GuestView.pageRunEnd, HostView.backingRunEnd, PageTableView.linearEnd...), so a pool shared at
// boot in 2M regions costs them per region, not per 4K page. Counted, not timed: every call of a
// View method (and every value a View iterator yields) is one unit of work.

import { describe, expect, it } from 'vitest';
import { FRAMES_PER_2M, type View } from '../../src/api.ts';
import { computeMetrics } from '../../src/engine/metrics.ts';
import { builtinOracles } from '../../oracles/index.ts';
import { makeWorld } from '../helpers/world.ts';

/** `view` with every method call and iterator step below it counted in `counter.calls`. */
function counting(view: View, counter: { calls: number }): View {
  const proxies = new WeakMap<object, object>();
  const wrap = <T>(value: T): T => {
    if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) return value;
    const known = proxies.get(value);
    if (known !== undefined) return known as T;
    const proxy = new Proxy(value, {
      get(target, key) {
        const field: unknown = Reflect.get(target, key, target);
        if (typeof field !== 'function') return wrap(field);
        return (...args: unknown[]) => {
          counter.calls++;
          const result: unknown = (field as (...a: unknown[]) => unknown).apply(target, args);
          if (typeof result === 'object' && result !== null && typeof (result as Iterator<unknown>).next === 'function') {
            const iterator = result as Iterator<unknown>;
            return {
              next: () => {
                counter.calls++;
                return iterator.next();
              },
              [Symbol.iterator]() {
                return this;
              },
            };
          }
          return result;
        };
      },
    });
    proxies.set(value, proxy);
    return proxy;
  };
  return wrap(view);
}

/** The work of each oracle's boot and final sweep, and of computeMetrics, on a freshly booted world. */
function workOf(swiotlb: string): Map<string, number> {
  const work = new Map<string, number>();
  for (const oracle of builtinOracles) {
    const counter = { calls: 0 };
    const view = counting(makeWorld({ hostPolicy: 'quiesce-dma', guestPolicy: 'linux-2m-pool', guestMemory: '4G', swiotlb }), counter);
    oracle.boot?.(view);
    oracle.final?.(view);
    work.set(oracle.name, counter.calls);
  }
  const counter = { calls: 0 };
  computeMetrics(counting(makeWorld({ hostPolicy: 'quiesce-dma', guestPolicy: 'linux-2m-pool', guestMemory: '4G', swiotlb }), counter));
  work.set('computeMetrics', counter.calls);
  return work;
}

describe('oracle sweeps and metrics walk runs', () => {
  it('a 1G pool costs per 2M region, not per 4K page, over an 8M one', () => {
    const small = workOf('8M');
    const large = workOf('1G');
    // 1G - 8M more pool: 508 more 2M regions, 260096 more 4K pages.
    const extraRegions = (1024 - 8) / 2;
    const extraPages = extraRegions * FRAMES_PER_2M;
    for (const [name, calls] of large) {
      const extra = calls - (small.get(name) ?? 0);
      expect(extra, `${name}: ${small.get(name)} calls with an 8M pool, ${calls} with 1G`).toBeLessThanOrEqual(16 * extraRegions);
      expect(extra).toBeLessThan(extraPages / 16);
    }
  });
});
