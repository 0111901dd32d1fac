// Labels by their parts, each built once: the coverage signal's features (coverage.ts) and the
// behaviour labels (behaviours.ts) meet the same few hundred after every step, and a label built
// anew would be concatenated and hashed anew by every Set it goes into. Two levels (an op kind,
// then a part of the op's outcome); dropped past a limit, so free text cannot grow it forever.

/** Labels kept per Names before it starts over (not reached in practice; memory stays bounded). */
export const NAMES_LIMIT = 100_000;

export class Names<K> {
  private readonly byKind = new Map<string, Map<K, string>>();
  private size = 0;

  get(kind: string, part: K, make: (kind: string, part: K) => string): string {
    let names = this.byKind.get(kind);
    if (names === undefined) {
      names = new Map();
      this.byKind.set(kind, names);
    }
    let name = names.get(part);
    if (name === undefined) {
      if (++this.size > NAMES_LIMIT) {
        this.byKind.clear();
        this.size = 1;
        names = new Map();
        this.byKind.set(kind, names);
      }
      name = make(kind, part);
      names.set(part, name);
    }
    return name;
  }
}
