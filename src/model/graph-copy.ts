// A deep copy of an object graph for the boot cache (engine/boot-cache.ts): the model's state is plain
// data in class instances (per-2M regions with typed arrays only where frames differ, runs, Maps
// of runs), so one generic copy keeps every class independent without a hand-written clone() per
// class that would silently miss the next field someone adds. Its cost is the number of objects
// and typed-array bytes of the state: runs and per-2M regions, never one object per 4K page (but
// a 4K IO page table stores one item per 4K leaf). Per-2M region maps copy themselves in O(1)
// (COPY_SELF below), so a pool's 2M regions cost nothing until a case writes one.
//
// Rules:
// - Identity is kept: an object reachable twice is copied once (aliases and cycles survive, and
//   two typed arrays over one ArrayBuffer still share their copy of it).
// - Prototypes are kept (methods live there and are shared); own enumerable string-keyed
//   properties are copied (the model keeps no state under symbols or in #private fields: the
//   one class with one, world.ts's RecordedStep, makes its own copy).
// - An object with a COPY_SELF method makes its own copy (model/regions.ts shares its regions
//   with the copy until either writes them), so the copy's cost does not grow with them.
// - Frozen objects and arrays are shared: freeze only what is immutable all the way down
//   (model/freeze.ts: the page table formats and error results, every world's boot record).
// - A function is never copied: a closure captures the objects of the graph it came from, so one
//   reached in the graph is an error unless the caller substituted it (substitute()) or said that
//   its owner builds its own again after the copy (rebinds()). That error is what catches the
//   next closure someone stores in the model.

type Obj = object;

/**
 * An object whose prototype has a method under this symbol copies itself: the copy is what the
 * method returns (called with no arguments), and the copy does not look inside it. For state that
 * shares what it can with its copy (model/regions.ts: per-2M regions, copy-on-write).
 */
export const COPY_SELF: unique symbol = Symbol('graph-copy: copies itself');

interface CopiesSelf {
  [COPY_SELF](): unknown;
}

interface TypedView {
  readonly buffer: ArrayBuffer;
  readonly byteOffset: number;
  readonly byteLength: number;
  readonly length: number;
  slice(): TypedView;
  constructor: new (buffer: ArrayBuffer, offset: number, length: number) => TypedView;
}

const TypedArray = Object.getPrototypeOf(Int8Array) as { prototype: Obj };

export class GraphCopyError extends Error {
  override name = 'GraphCopyError';
  /** Where in the graph (`.hostActor.ctx.random`), filled in on the way out. */
  path = '';
  constructor(readonly reason: string) {
    super(reason);
  }
}

export class GraphCopy {
  /** Each object of the source graph and its copy (or the substitute the caller gave). */
  private readonly copies = new Map<Obj, unknown>();
  /** The copy of the first typed array copied over each ArrayBuffer (its own buffer, sliced). */
  private readonly firstViews = new Map<ArrayBuffer, TypedView>();
  /** Objects whose function-valued properties their owner sets again after the copy (left out). */
  private readonly rebound = new Set<Obj>();

  /** Where the copy reaches `from`, use `to` (shared by reference, not copied). */
  substitute(from: Obj, to: unknown): void {
    this.copies.set(from, to);
  }

  /** `from`'s function-valued properties are left out of its copy: its owner sets them again. */
  rebinds(from: Obj): void {
    this.rebound.add(from);
  }

  copy<T>(value: T): T {
    try {
      return this.value(value, undefined) as T;
    } catch (error) {
      if (error instanceof GraphCopyError) error.message = `${error.path || 'the root'}: ${error.reason}`;
      throw error;
    }
  }

  /** `key`: the property, index or Map key `value` was reached by (formatted only for an error). */
  private value(value: unknown, key: unknown): unknown {
    if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return value;
    const done = this.copies.get(value);
    if (done !== undefined) return done;
    try {
      if (typeof value === 'function') throw new GraphCopyError(`cannot copy a function (${value.name || 'anonymous'}): it would keep the template's objects`);
      return this.object(value);
    } catch (error) {
      if (error instanceof GraphCopyError && key !== undefined) error.path = `${typeof key === 'number' ? `[${key}]` : `.${typeof key === 'string' ? key : typeof key}`}${error.path}`;
      throw error;
    }
  }

  private object(source: Obj): Obj {
    const proto = Object.getPrototypeOf(source) as Obj | null;
    const kind = proto === null ? 'plain' : kindOf(proto);
    if (kind === 'plain') {
      if (Object.isFrozen(source)) return source;
      if (COPY_SELF in source) return this.remember(source, (source as CopiesSelf)[COPY_SELF]() as Obj);
      const from = source as Record<string, unknown>;
      let keys = Object.keys(from);
      if (this.rebound.size > 0 && this.rebound.has(source)) keys = keys.filter((key) => typeof from[key] !== 'function');
      // A shallow copy first (remembered before the recursion, for cycles), then each object
      // property replaced by its copy: stores to properties the copy already has.
      const out = this.remember(source, shallowCopy(from, proto, keys));
      for (const key of keys) {
        const v = from[key];
        if (v !== null && (typeof v === 'object' || typeof v === 'function')) out[key] = this.value(v, key);
      }
      return out;
    }
    if (kind === 'typed') {
      const view = source as TypedView;
      const buffer = view.buffer;
      if (!this.copies.has(buffer) && !this.firstViews.has(buffer) && view.byteOffset === 0 && view.byteLength === buffer.byteLength) {
        // The first view over its whole buffer: slice(), which makes a small array the way
        // `new Uint8Array(n)` did, inside the heap (a view over a copied ArrayBuffer is always
        // outside it, and the ops of a restored world ran 15% slower over those).
        const out = this.remember(source, view.slice());
        this.firstViews.set(buffer, out);
        return out;
      }
      return this.remember(source, new view.constructor(this.buffer(buffer), view.byteOffset, view.length));
    }
    if (kind === 'array') {
      if (Object.isFrozen(source)) return source;
      const from = source as unknown[];
      // slice(): the copy keeps the source's elements kind (numbers unboxed in a PACKED_DOUBLE
      // array, say). Arrays built here by push or literal would all share one allocation site,
      // whose feedback soon makes every copy hold boxed numbers: restored worlds ran their ops
      // 15% slower that way. Then each object element is replaced by its copy.
      const out = this.remember(source, from.slice());
      for (let i = 0; i < from.length; i++) {
        const v = from[i];
        if (v !== null && (typeof v === 'object' || typeof v === 'function')) out[i] = this.value(v, i);
      }
      return out;
    }
    if (kind === 'buffer') return this.buffer(source as ArrayBuffer);
    if (kind === 'map') {
      const out = this.remember(source, new Map<unknown, unknown>());
      for (const [k, v] of source as Map<unknown, unknown>) out.set(this.value(k, 'key'), this.value(v, k));
      return out;
    }
    if (kind === 'set') {
      const out = this.remember(source, new Set<unknown>());
      for (const v of source as Set<unknown>) out.add(this.value(v, 'item'));
      return out;
    }
    throw new GraphCopyError(`cannot copy a ${source.constructor.name} (a built-in this copy does not know)`);
  }

  /** The copy of `source`: the buffer of its first view's copy, if a view was copied first. */
  private buffer(source: ArrayBuffer): ArrayBuffer {
    const copied = this.copies.get(source) as ArrayBuffer | undefined;
    if (copied !== undefined) return copied;
    return this.remember(source, this.firstViews.get(source)?.buffer ?? source.slice(0));
  }

  private remember<T>(source: Obj, copy: T): T {
    this.copies.set(source, copy);
    return copy;
  }
}

/** Beyond this many properties, or shapes of one prototype, an object is copied key by key. */
const MAX_NAMED_PROPERTIES = 128;
const MAX_SHAPES_PER_PROTOTYPE = 32;

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

type ShallowCopier = new (source: Record<string, unknown>) => Record<string, unknown>;
/** Per prototype, per list of own keys: a constructor that copies exactly those properties. */
const copiers = new Map<Obj, Map<string, ShallowCopier>>();

/**
 * `from`'s `keys` on a new object of prototype `proto`, made by a constructor (cached per
 * prototype and key list) that stores each property by name, as a class constructor does. Copies
 * made with Object.create() and `out[key] =` ran every op of a restored world at half speed: V8
 * turns an object that gets more than a few properties by computed keys into a dictionary, and
 * Reflect.construct() with the class as new.target gives each copy a map of its own, so every
 * property access in the model went megamorphic. These copies share one fast map per class.
 */
function shallowCopy(from: Record<string, unknown>, proto: Obj | null, keys: readonly string[]): Record<string, unknown> {
  // An own "__proto__" (JSON.parse makes one) would be stored through the prototype setter by
  // either path below, giving the copy another prototype: refuse it (the pair boots per case).
  if (keys.includes('__proto__')) throw new GraphCopyError('an own "__proto__" property cannot be copied');
  const Copier = proto === null || keys.length > MAX_NAMED_PROPERTIES ? undefined : copierFor(proto, keys);
  if (Copier !== undefined) return new Copier(from);
  const out = Object.create(proto) as Record<string, unknown>;
  for (const key of keys) out[key] = from[key];
  return out;
}

function copierFor(proto: Obj, keys: readonly string[]): ShallowCopier | undefined {
  // Most objects of a class have its one shape: compare with the last key list first (property
  // names are internalized strings: comparing them is cheap, joining them is not).
  const last = lastCopier.get(proto);
  if (last !== undefined && sameKeys(last.keys, keys)) return last.Copier;
  let shapes = copiers.get(proto);
  if (shapes === undefined) copiers.set(proto, (shapes = new Map<string, ShallowCopier>()));
  const id = keys.join('\u0000');
  let Copier = shapes.get(id);
  if (Copier === undefined) {
    // An object whose keys are data (a policy's state keyed by address) has no fixed shape.
    if (shapes.size >= MAX_SHAPES_PER_PROTOTYPE) return undefined;
    // `this.name =` where the key is an identifier: V8 counts those to size the object's in-object
    // room (`this["name"]` would leave the fields in a slower out-of-object store). Other keys are
    // quoted by JSON.stringify: property names, never code.
    const store = (key: string): string => (IDENTIFIER.test(key) ? `this.${key} = source.${key};` : `this[${JSON.stringify(key)}] = source[${JSON.stringify(key)}];`);
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    Copier = new Function('source', keys.map(store).join('\n')) as unknown as ShallowCopier;
    Copier.prototype = proto;
    shapes.set(id, Copier);
  }
  lastCopier.set(proto, { keys, Copier });
  return Copier;
}

/** Per prototype, the copier found last and the key list it copies. */
const lastCopier = new Map<Obj, { keys: readonly string[]; Copier: ShallowCopier }>();

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

type Kind = 'plain' | 'array' | 'typed' | 'buffer' | 'map' | 'set' | 'unknown';

/** Each prototype's kind, found once (a copy meets a few dozen prototypes and many objects). */
const kinds = new Map<Obj, Kind>();

function kindOf(proto: Obj): Kind {
  let kind = kinds.get(proto);
  if (kind === undefined) {
    kind = classify(proto);
    kinds.set(proto, kind);
  }
  return kind;
}

/**
 * What copies an object of this prototype. `plain`: made by `class` or an object literal, its
 * state in own properties. A built-in that keeps its data in internal slots (Date, RegExp,
 * WeakMap, Promise, DataView...) is `unknown`: copied key by key it would be an empty object.
 */
function classify(proto: Obj): Kind {
  // Only the built-ins themselves: a subclass (of Map, say) would lose its prototype and fields.
  if (proto === Object.prototype) return 'plain';
  if (proto === Array.prototype) return 'array';
  if (Object.getPrototypeOf(proto) === TypedArray.prototype) return 'typed';
  if (proto === ArrayBuffer.prototype) return 'buffer';
  if (proto === Map.prototype) return 'map';
  if (proto === Set.prototype) return 'set';
  for (let p: Obj | null = proto; p !== null; p = Object.getPrototypeOf(p) as Obj | null) {
    if (p === Object.prototype) return 'plain';
    if (BUILTIN_PROTOTYPES.has(p)) return 'unknown';
  }
  return 'plain';
}

const BUILTIN_PROTOTYPES: ReadonlySet<Obj> = new Set<Obj>([
  Array.prototype,
  TypedArray.prototype,
  ArrayBuffer.prototype,
  Map.prototype,
  Set.prototype,
  Date.prototype,
  RegExp.prototype,
  Promise.prototype,
  WeakMap.prototype,
  WeakSet.prototype,
  WeakRef.prototype,
  Error.prototype,
  DataView.prototype,
  Function.prototype,
]);
