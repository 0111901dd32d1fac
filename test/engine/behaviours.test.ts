import { describe, expect, it } from 'vitest';
import type { Step } from '../../src/api.ts';
import { resultClass, stepBehaviours } from '../../src/engine/behaviours.ts';

// The labels as they were built per step before behaviours.ts cached them: the cache must give
// the same strings, whatever the order results come in.
function reference(step: Pick<Step, 'op' | 'skipped' | 'result' | 'calls' | 'faults'>): Set<string> {
  const out = new Set<string>();
  const op = step.op.op;
  if (step.skipped) out.add(`${op}:skipped`);
  if (step.result) out.add(`${op}=${step.result}`);
  for (const call of step.calls) out.add(`${op}>${call.prim}=${resultClass(call.result)}`);
  for (const fault of step.faults) out.add(`${op}!${fault.kind}`);
  return out;
}

describe('behaviour labels', () => {
  it('classes byte counts by power of two and keeps return codes', () => {
    expect(resultClass(4096)).toBe('2^12');
    expect(resultClass(8191)).toBe('2^12');
    expect(resultClass(16)).toBe('2^4');
    expect(resultClass(15)).toBe('15');
    expect(resultClass(-5)).toBe('-5');
    expect(resultClass('npf')).toBe('npf');
  });

  it('gives the labels built one by one, for results that share a key in one class and not the other', () => {
    // -5 and 16..31 (2^4), 4 and 4.5, 'npf' and a numeric string: none may share a label.
    const results: (number | string)[] = [-5, 16, 31, 32, 4, 4.5, 0, 'npf', '16', 4096, 2097152, 2097153, -1, 1];
    const ops = ['share', 'dma'];
    const prims = ['io_map', 'pvalidate'];
    let seed = 7;
    const pick = <T>(list: readonly T[]): T => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return list[seed % list.length]!;
    };
    for (let n = 0; n < 500; n++) {
      const calls = Array.from({ length: 1 + (n % 4) }, () => ({ prim: pick(prims), args: {}, result: pick(results) }));
      const step = {
        index: n,
        op: { op: pick(ops) },
        calls,
        faults: n % 3 === 0 ? [{ kind: pick(['npf', 'rmp']) }] : [],
        ...(n % 5 === 0 ? { skipped: 'nothing to refer to' } : {}),
        ...(n % 7 === 0 ? { result: `failed ${n}` } : {}),
      } as unknown as Step;
      const got = new Set<string>();
      stepBehaviours(step, got);
      expect([...got].sort()).toEqual([...reference(step)].sort());
    }
  });
});
