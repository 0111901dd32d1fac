// `npm run schema`: writes schema/repro.schema.json from the parser's tables (src/repro/json-schema.ts).
import { writeFileSync } from 'node:fs';
import { reproJsonSchema } from '../src/repro/json-schema.ts';

const file = new URL('../schema/repro.schema.json', import.meta.url);
writeFileSync(file, `${JSON.stringify(reproJsonSchema(), null, 2)}\n`);
console.log(`wrote ${file.pathname}`);
