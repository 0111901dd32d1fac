// `npm run golden`: records test/golden/findings.json (see test/golden/record.ts).
import { writeFileSync } from 'node:fs';
import { recordAll } from '../test/golden/record.ts';

const file = new URL('../test/golden/findings.json', import.meta.url);
const started = performance.now();
const golden = await recordAll();
writeFileSync(file, `${JSON.stringify(golden, null, 1)}\n`);
console.log(`wrote ${file.pathname} (${Object.keys(golden).length} runs, ${Math.round(performance.now() - started)} ms)`);
