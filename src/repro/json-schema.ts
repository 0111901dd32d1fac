// The JSON Schema of repro files (schema/repro.schema.json, shipped as 'cocofuzz/schema/repro.json'),
// built from the same tables the parser uses (OP_SPECS, the config fields), so an editor validates
// what cocofuzz accepts. `npm run schema` writes the file; a test checks it is current and that
// every corpus file validates against it. The parser stays the authority: it also checks what a
// schema cannot say (a device id within the config's devices, alignment of addresses).

import { CONFIG_FIELDS, DEFAULT_DMA_MASK, MIN_DMA_MASK } from '../ops/config.ts';
import { DURING, type FieldKind, OP_SPECS } from '../ops/schema.ts';
import { REPRO_FORMAT } from './format.ts';

type Schema = Record<string, unknown>;

const hexOrInt = (description: string): Schema => ({
  description,
  anyOf: [{ type: 'string', pattern: '^(0[xX][0-9a-fA-F]+|[0-9]+)$' }, { type: 'integer', minimum: 0 }],
});
const size = (description: string): Schema => ({
  description,
  anyOf: [{ type: 'string', pattern: '^([0-9]+[KMGTkmgt]?|0[xX][0-9a-fA-F]+)$' }, { type: 'integer', minimum: 0 }],
});

const KIND_SCHEMA: Record<FieldKind, Schema> = {
  addr: hexOrInt('a 4K-aligned guest or host physical address, "0x200000"'),
  iova: hexOrInt('a device address, "0x200000"'),
  pagesize: { enum: ['4K', '2M'], description: 'a page size' },
  pages: { type: 'integer', minimum: 1, description: 'a count of 4K pages' },
  bytes: size('a byte count, 4096 or "4K"'),
  bool: { type: 'boolean' },
  dev: { type: 'integer', minimum: 0, description: 'a device id of the config' },
  ref: { type: 'integer', minimum: 0, description: 'an index into the live objects of that kind, taken modulo their count' },
  dir: { enum: ['to_device', 'from_device', 'bidirectional'] },
  table: { enum: ['npt', 'iommu'] },
  asid: { type: 'integer', minimum: 0 },
  align: size('a power-of-two alignment, 4096 or "2M"'),
};

/** What each config field means (README.md "Config" says the same in prose). */
export const CONFIG_DOCS: Record<string, Schema> = {
  arch: { const: 'snp', description: 'the architecture model: AMD SEV-SNP' },
  guestMemory: size('guest memory size, like "64M" (default 64M; at least 8M)'),
  hugeBacking: { type: 'boolean', description: 'back guest memory with 2M guest_memfd folios where possible (default true)' },
  devices: {
    type: 'array',
    description: 'devices, ids 0..n-1 in order (default: dev0 trusted s2, dev1 untrusted s2)',
    items: {
      type: 'object',
      additionalProperties: false,
      properties: {
        id: { type: 'integer', minimum: 0 },
        trusted: { type: 'boolean', description: 'can become a TIO device in RUN state through tdi_accept' },
        iommu: { enum: ['s2', 'nested'], description: 'host stage 2 only, or a guest vIOMMU stage 1 over it' },
        dmaMask: {
          type: 'integer',
          minimum: MIN_DMA_MASK,
          maximum: 64,
          description: `the coherent DMA mask in bits (dma_set_coherent_mask(); default ${DEFAULT_DMA_MASK}, written only when not ${DEFAULT_DMA_MASK})`,
        },
      },
    },
  },
  swiotlb: size('swiotlb pool size (default: Linux 6% of RAM in [64M, 1G], capped at 1/8 of guest memory, 2M units)'),
  cpus: { type: 'integer', minimum: 1, maximum: 256, description: 'guest CPUs: the swiotlb areas (default 2)' },
  vtom: hexOrInt('virtual top of memory, 2M-aligned (default: above all guest memory)'),
  hostPolicy: { type: 'string', minLength: 1, description: 'a built-in host policy name or a .ts/.js file inside the repro file\'s directory tree (default kvm-iommu-4k)' },
  guestPolicy: { type: 'string', minLength: 1, description: 'a built-in guest policy name or a .ts/.js file inside the repro file\'s directory tree (default linux)' },
  adversary: { enum: ['none', 'host'], description: '"host" enables the raw hardware ops (hw_*)' },
  discard: {
    enum: ['on-private', 'none', 'in-place'],
    description:
      "QEMU's memory for shared pages (default on-private: kvm_convert_memory() discards a page's RAM frame at its first conversion to private; none: hugetlb RAM, never discarded; in-place: guest_memfd backs both states); written only when not the default",
  },
};

export function reproJsonSchema(): Schema {
  const missing = [...CONFIG_FIELDS].filter((field) => !(field in CONFIG_DOCS));
  if (missing.length > 0) throw new Error(`config fields without documentation: ${missing.join(', ')}`);
  const opSchema = (name: string, during?: Schema): Schema => {
    const spec = OP_SPECS[name as keyof typeof OP_SPECS];
    const properties: Schema = { op: { const: name } };
    for (const [field, fieldSpec] of Object.entries(spec.fields)) properties[field] = KIND_SCHEMA[fieldSpec.kind];
    if (during) properties.during = during;
    const required = ['op', ...Object.entries(spec.fields).filter(([, f]) => !f.optional).map(([field]) => field)];
    const op: Schema = { type: 'object', description: `${name} (${spec.actor}): ${spec.description}`, properties, required, additionalProperties: false };
    if (spec.oneOf) op.oneOf = spec.oneOf.map((field) => ({ required: [field] }));
    return op;
  };
  // Any top-level op may carry `during`; the inner ops (dma, touch) cannot carry it themselves.
  const during: Schema = {
    type: 'array',
    description: DURING.description,
    items: {
      type: 'object',
      additionalProperties: false,
      required: ['after', 'op'],
      properties: {
        after: { type: 'integer', minimum: 0, maximum: DURING.maxAfter, description: 'primitive calls of the outer op before this one runs' },
        op: { anyOf: DURING.innerOps.map((name) => opSchema(name)) },
      },
    },
  };
  const ops = Object.keys(OP_SPECS).map((name) => opSchema(name, during));
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://www.npmjs.com/package/cocofuzz/schema/repro.json',
    title: `cocofuzz repro file (${REPRO_FORMAT})`,
    type: 'object',
    additionalProperties: false,
    required: ['format', 'config', 'ops'],
    properties: {
      $schema: { type: 'string', description: 'this schema, for editors' },
      format: { const: REPRO_FORMAT },
      title: { type: 'string' },
      config: {
        type: 'object',
        additionalProperties: false,
        required: ['arch'],
        properties: Object.fromEntries([...CONFIG_FIELDS].map((field) => [field, CONFIG_DOCS[field]])),
      },
      seed: { type: ['string', 'number'], description: 'the case seed (policies draw their choices from it)' },
      ops: { type: 'array', items: { anyOf: ops } },
      oracles: { type: 'array', items: { type: 'string', pattern: '\\.(m?[jt]s)$' }, description: 'user oracle files the verdict needs, relative to the repro file and inside its directory tree' },
      expect: {
        anyOf: [
          { type: 'object', additionalProperties: false, required: ['verdict'], properties: { verdict: { const: 'clean' } } },
          {
            type: 'object',
            additionalProperties: false,
            required: ['verdict', 'oracle'],
            properties: { verdict: { const: 'violation' }, oracle: { type: 'string', minLength: 1 }, step: { type: 'integer', minimum: -1 } },
          },
        ],
      },
    },
  };
}
