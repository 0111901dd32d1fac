// fast-check arbitraries over the same vocabulary, built from the schema: one arbitrary per field
// kind. Property tests and the plain fc.commands baseline in bench/ use these; campaigns use the
// faster seeded generator (generate.ts).

import fc from 'fast-check';
import { SZ_2M, SZ_4K } from '../model/size.ts';
import { type FieldKind, OP_SPECS } from './schema.ts';
import type { Case, Config, Op, OpName } from './types.ts';

function fieldArbitrary(kind: FieldKind, config: Config): fc.Arbitrary<unknown> {
  const pages = Math.floor(config.guestMemory / SZ_4K);
  // Bias toward 2M boundaries and a few hot regions, as the campaign generator does.
  const page = fc.oneof(
    { arbitrary: fc.integer({ min: 0, max: Math.max(0, Math.floor(config.guestMemory / SZ_2M) - 1) }).map((r) => r * SZ_2M), weight: 2 },
    { arbitrary: fc.integer({ min: 0, max: Math.min(pages, 1024) - 1 }).map((p) => p * SZ_4K), weight: 3 },
    { arbitrary: fc.integer({ min: 0, max: pages - 1 }).map((p) => p * SZ_4K), weight: 1 },
  );
  switch (kind) {
    case 'addr':
    case 'iova':
      return page;
    case 'pagesize':
      return fc.constantFrom('4K', '2M');
    case 'pages':
      return fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 16 }), fc.constant(512));
    case 'bytes':
      return fc.constantFrom(64, 512, 2048, 4096, 8192, 65536);
    case 'bool':
      return fc.boolean();
    case 'dev':
      return fc.integer({ min: 0, max: config.devices.length - 1 });
    case 'ref':
      return fc.integer({ min: 0, max: 3 });
    case 'dir':
      return fc.constantFrom('to_device', 'from_device', 'bidirectional');
    case 'table':
      return fc.constantFrom('npt', 'iommu');
    case 'asid':
      return fc.constantFrom(1, 2);
    case 'align':
      return fc.constantFrom(64, 4096);
  }
}

export function opArbitrary(name: OpName, config: Config): fc.Arbitrary<Op> {
  const spec = OP_SPECS[name];
  const required: Record<string, fc.Arbitrary<unknown>> = {};
  const optional: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [field, fieldSpec] of Object.entries(spec.fields)) {
    if (spec.oneOf?.includes(field)) continue;
    (fieldSpec.optional ? optional : required)[field] = fieldArbitrary(fieldSpec.kind, config);
  }
  let base = fc.record({ ...required, ...optional }, { requiredKeys: Object.keys(required) });
  if (spec.oneOf) {
    const choices = spec.oneOf.map((field) => fieldArbitrary(spec.fields[field]!.kind, config).map((value) => ({ [field]: value })));
    base = fc.tuple(base, fc.oneof(...choices)).map(([rest, one]) => ({ ...rest, ...one }));
  }
  return base.map((fields) => ({ op: name, ...fields }) as Op);
}

/** Any op the config allows (adversary ops only with `adversary: "host"`). */
export function anyOpArbitrary(config: Config): fc.Arbitrary<Op> {
  const names = (Object.keys(OP_SPECS) as OpName[]).filter((name) => OP_SPECS[name].actor !== 'adversary' || config.adversary === 'host');
  return fc.oneof(...names.map((name) => opArbitrary(name, config)));
}

export function caseArbitrary(config: Config, options: { maxOps?: number } = {}): fc.Arbitrary<Case> {
  return fc.record({
    config: fc.constant(config),
    seed: fc.string({ minLength: 1, maxLength: 8 }),
    ops: fc.array(anyOpArbitrary(config), { minLength: 1, maxLength: options.maxOps ?? 40 }),
  });
}
