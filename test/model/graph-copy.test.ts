import { describe, expect, it } from 'vitest';
import { GraphCopy, GraphCopyError } from '../../src/model/graph-copy.ts';
import { freezeDeep } from '../../src/model/freeze.ts';

class Region {
  count = 0;
  bytes = new Uint8Array(4);
  words = new Uint32Array(this.bytes.buffer);
  owner: Holder | undefined;
  bump(): number {
    return ++this.count;
  }
}

class Holder {
  readonly regions = new Map<number, Region>();
  readonly seen = new Set<number>([1, 2]);
  readonly list: number[] = [1.5, 2.5];
  readonly shared: Region;
  constructor() {
    const region = new Region();
    region.owner = this;
    this.regions.set(3, region);
    this.shared = region;
  }
}

describe('GraphCopy', () => {
  it('copies every object once, keeps prototypes, aliases, cycles and typed arrays over one buffer', () => {
    const source = new Holder();
    const copy = new GraphCopy().copy(source);
    expect(copy).toBeInstanceOf(Holder);
    const region = copy.regions.get(3)!;
    expect(region).not.toBe(source.regions.get(3));
    expect(region).toBe(copy.shared);
    expect(region.owner).toBe(copy);
    expect(region.bump()).toBe(1);
    expect(source.shared.count).toBe(0);
    region.words[0] = 0x01010101;
    expect([...region.bytes]).toEqual([1, 1, 1, 1]);
    expect([...source.shared.bytes]).toEqual([0, 0, 0, 0]);
    copy.list.push(3);
    copy.seen.add(9);
    expect(source.list).toEqual([1.5, 2.5]);
    expect(source.seen.has(9)).toBe(false);
  });

  it('refuses a closure and says where it is, unless substituted or rebound', () => {
    const source = { ctx: { random: () => 1, n: 1 }, other: { f: () => 2 } };
    expect(() => new GraphCopy().copy(source)).toThrow(GraphCopyError);
    expect(() => new GraphCopy().copy(source)).toThrow(/^\.ctx\.random: cannot copy a function \(random\)/);
    const rebound = new GraphCopy();
    rebound.rebinds(source.ctx);
    const replacement = { f: () => 3 };
    rebound.substitute(source.other, replacement);
    const copy = rebound.copy(source);
    expect(copy.ctx).toEqual({ n: 1 });
    expect(copy.other).toBe(replacement);
  });

  it('shares frozen data and refuses built-ins it cannot copy, subclasses of Map included', () => {
    const frozen = freezeDeep({ calls: [{ prim: 'psmash', args: { hpa: 0 } }] });
    expect(Object.isFrozen(frozen.calls[0]!.args)).toBe(true);
    expect(new GraphCopy().copy({ frozen }).frozen).toBe(frozen);
    class Counts extends Map<number, number> {}
    expect(() => new GraphCopy().copy({ when: new Date(0) })).toThrow(/\.when: cannot copy a Date/);
    expect(() => new GraphCopy().copy({ counts: new Counts() })).toThrow(/\.counts: cannot copy a Counts/);
    expect(() => freezeDeep({ map: new Map() })).toThrow(/cannot freeze a Map/);
  });

  it('refuses an own __proto__ property (stored, it would change the copy\'s prototype)', () => {
    const state = JSON.parse('{"pool":{"__proto__":{"polluted":true},"n":1}}') as { pool: { n: number } };
    expect(() => new GraphCopy().copy(state)).toThrow(/^\.pool: an own "__proto__" property cannot be copied/);
  });
});
