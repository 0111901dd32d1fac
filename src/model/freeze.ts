// Deep freezing of plain data (objects and arrays), for what is constant or read-only and shared:
// the page table formats, the boot record of a world. A copy of a booted world
// (model/graph-copy.ts) shares frozen data instead of copying it, so only data frozen all the way
// down may be frozen here (a frozen Map, Set or typed array still changes: they are refused).

export function freezeDeep<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  const proto = Object.getPrototypeOf(value) as object | null;
  if (proto !== Object.prototype && proto !== Array.prototype && proto !== null) {
    throw new Error(`freezeDeep: cannot freeze a ${(value as object).constructor.name}`);
  }
  Object.freeze(value);
  for (const v of Object.values(value as object)) freezeDeep(v);
  return value;
}
