import type { CommandModule } from 'yargs';
import { type FieldKind, OP_SPECS } from '../ops/schema.ts';

// How each field kind is written in a repro file (the codec reads them; schema.ts names them).
const KIND_TEXT: Record<FieldKind, string> = {
  addr: '4K-aligned address, "0x200000"',
  iova: 'device address, "0x200000"',
  pagesize: '"4K" | "2M" | "1G"',
  pages: 'count of 4K pages',
  bytes: 'byte count, 4096 or "4K"',
  bool: 'true | false',
  dev: 'device id from the config',
  ref: 'index into the live objects of that kind (modulo their count)',
  dir: '"to_device" | "from_device" | "bidirectional"',
  table: '"npt" | "iommu"',
  asid: 'ASID number',
  align: 'alignment in bytes, a power of two',
};

export const opsCommand: CommandModule<object, { json: boolean }> = {
  command: 'ops',
  describe: 'list every operation (the kinds --weights takes) with its actor and fields',
  builder: (yargs) =>
    yargs
      .option('json', { type: 'boolean', default: false, describe: 'the table as JSON' })
      .example('$0 ops', 'every op, its actor and its fields')
      .example('$0 fuzz --weights dma=30,host_sync=0', 'then weigh kinds by these names'),
  handler: (args) => {
    if (args.json) {
      console.log(JSON.stringify(OP_SPECS, null, 2));
      return;
    }
    for (const [name, spec] of Object.entries(OP_SPECS)) {
      console.log(`${name}  (${spec.actor}${spec.actor === 'adversary' ? ', only with "adversary": "host"' : ''}): ${spec.description}`);
      for (const [field, fieldSpec] of Object.entries(spec.fields)) {
        const oneOf = spec.oneOf?.includes(field) ? ', one of ' + spec.oneOf.join(' | ') : '';
        console.log(`    ${field}${fieldSpec.optional ? '?' : ''}  ${KIND_TEXT[fieldSpec.kind]}${oneOf}`);
      }
    }
  },
};
