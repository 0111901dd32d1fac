#!/usr/bin/env node
// The installed CLI runs the compiled JavaScript (`npm run build`, run by prepare and prepack).
// User plugins in TypeScript still load without a build: src/engine/plugins.ts compiles them with
// tsx's tsImport. From a checkout,
// `node --conditions=cocofuzz-source bin/run-ts.js src/cli/main.ts` runs the sources.
import { existsSync } from 'node:fs';

const main = new URL('../dist/bundle/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('cocofuzz: dist/ is missing: run `npm run build` in the cocofuzz checkout\n');
  process.exit(3);
}
await import(main.href);
