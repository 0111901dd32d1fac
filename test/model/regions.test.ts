import { describe, expect, it } from 'vitest';
import { GraphCopy } from '../../src/model/graph-copy.ts';
import { RegionMap } from '../../src/model/regions.ts';

// RegionMap's copy for the boot cache shares the regions of the map it copies until it writes
// one (issue 15: a restored world's cost must not grow with the 2M regions its pools span).

class Chunk {
  count = 0;
  bytes: Uint8Array | undefined = undefined;
  words: Uint32Array | undefined = undefined;
}

function template(): RegionMap<Chunk> {
  const map = new RegionMap<Chunk>();
  for (const key of [3, 1, 7]) {
    const chunk = map.add(key, new Chunk());
    chunk.count = key;
    chunk.bytes = new Uint8Array(8).fill(key);
    chunk.words = new Uint32Array(chunk.bytes.buffer);
  }
  return map;
}

describe('RegionMap copy-on-write', () => {
  it('gives a copy the same regions without copying any, and copies one only when it is written', () => {
    const original = template();
    const copy = new GraphCopy().copy(original);
    expect(copy).not.toBe(original);
    expect([...copy.keys()]).toEqual([1, 3, 7]);
    // Read: the very object of the original (nothing copied).
    expect(copy.get(3)).toBe(original.get(3));
    const mine = copy.writable(3)!;
    expect(mine).not.toBe(original.get(3));
    expect(mine).toBeInstanceOf(Chunk);
    mine.count = 30;
    mine.bytes![0] = 99;
    // The copy kept the alias between bytes and words, and the original is untouched.
    expect(mine.words![0]! & 0xff).toBe(99);
    expect(original.get(3)!.count).toBe(3);
    expect(original.get(3)!.bytes![0]).toBe(3);
    expect(copy.get(3)).toBe(mine);
    expect(copy.writable(3)).toBe(mine);
  });

  it('adds and deletes in a copy without changing the original, whose keys stay its own', () => {
    const original = template();
    const copy = new GraphCopy().copy(original);
    copy.add(5, new Chunk());
    copy.delete(1);
    copy.delete(1);
    expect([...copy.keys()]).toEqual([3, 5, 7]);
    expect(copy.get(1)).toBeUndefined();
    expect(copy.writable(1)).toBeUndefined();
    expect(copy.size).toBe(3);
    expect([...copy.values()].map((c) => c.count)).toEqual([3, 0, 7]);
    expect(copy.keyAt(copy.seek(4))).toBe(5);
    expect([...original.keys()]).toEqual([1, 3, 7]);
    expect(original.get(1)!.count).toBe(1);
    // A copy of a copy sees the copy's changes, not the original's regions it removed.
    const second = new GraphCopy().copy(copy);
    expect([...second.keys()]).toEqual([3, 5, 7]);
    expect(second.get(1)).toBeUndefined();
    expect(second.get(5)).toBe(copy.get(5));
  });

  it('drops removed regions from the index, and takes a removed one again', () => {
    const map = new RegionMap<Chunk>();
    for (let key = 0; key < 8; key++) map.add(key, new Chunk());
    for (let key = 2; key < 6; key++) map.delete(key);
    expect(map.size).toBe(4);
    expect(map.keyAt(map.seek(2))).toBe(6);
    map.add(3, new Chunk());
    expect([...map.keys()]).toEqual([0, 1, 3, 6, 7]);
    expect(map.get(2)).toBeUndefined();
    expect(map.size).toBe(5);
  });

  it('refuses any change to a map that was copied: its copies read its regions', () => {
    const original = template();
    new GraphCopy().copy(original);
    expect(() => original.writable(3)).toThrow(/copied/);
    expect(() => original.add(9, new Chunk())).toThrow(/copied/);
    expect(() => original.delete(1)).toThrow(/copied/);
    // Reading it stays possible.
    expect(original.get(7)!.count).toBe(7);
  });

  it('walks its regions in order exactly as get() reads them, through adds, deletes and copies on write', () => {
    // seek()/keyAt()/valueAt() are the run queries' walk (Rmp.runEnd()): a
    // position left pointing at a template's region after writable() copied it would let a run
    // query read state the case already changed. Random changes over a chain of copies.
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    let map = new RegionMap<Chunk>();
    // What the map must hold: the object add() took or writable() last returned for each key (the
    // look-up cache keeps two entries, and keys here come in any order).
    const expected = new Map<number, Chunk>();
    const frozen = new Set<Chunk>();
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 40; i++) {
        const key = random(24);
        const action = random(4);
        if (action === 0 && map.get(key) === undefined) expected.set(key, map.add(key, new Chunk()));
        else if (action === 1) {
          map.delete(key);
          expected.delete(key);
        } else if (action === 2) {
          const chunk = map.writable(key);
          if (chunk !== undefined) {
            // Never a region a frozen map (a template) holds: that one is copied first.
            expect(frozen.has(chunk)).toBe(false);
            chunk.count++;
            expected.set(key, chunk);
          }
        } else {
          expect(map.get(key)).toBe(expected.get(key));
          const other = random(24);
          expect(map.get(other)).toBe(expected.get(other));
        }
        const keys = [...map.keys()];
        for (let k = 0; k < 26; k++) {
          const at = map.seek(k);
          expect(map.keyAt(at)).toBe(keys.find((held) => held >= k));
          if (map.keyAt(at) === k) expect(map.valueAt(at)).toBe(map.get(k));
        }
        expect(map.values()).toEqual(keys.map((key) => map.get(key)));
        map.values().forEach((chunk, at) => expect(chunk).toBe(map.get(keys[at]!)));
      }
      for (let k = 0; k < 26; k++) expect(map.get(k)).toBe(expected.get(k));
      for (const chunk of map.values()) frozen.add(chunk);
      map = new GraphCopy().copy(map);
    }
  });

  it('copies a template region for writable() however the look-up cache reached it', () => {
    // The cache keeps two entries and whether each is the copy's own: a template region read,
    // then another, then read again from the second entry must still be copied before a write.
    const original = template();
    const copy = new GraphCopy().copy(original);
    copy.get(1);
    copy.get(3);
    copy.get(1);
    const mine = copy.writable(1)!;
    expect(mine).not.toBe(original.get(1));
    mine.count = 10;
    expect(original.get(1)!.count).toBe(1);
    // The copy's own region, read back through the second entry, is written in place.
    copy.get(7);
    copy.get(1);
    expect(copy.writable(1)).toBe(mine);
  });
});
