// After `tsc -p tsconfig.build.json`: relative imports in the emitted .d.ts files still end in .ts
// (rewriteRelativeImportExtensions rewrites only the JavaScript). TypeScript 5 resolves those,
// older compilers reject them, so the declarations get the .js specifiers the JavaScript has.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

function* declarations(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* declarations(path);
    else if (entry.name.endsWith('.d.ts')) yield path;
  }
}

let files = 0;
for (const file of declarations(new URL('../dist', import.meta.url).pathname)) {
  const text = readFileSync(file, 'utf8');
  const rewritten = text.replace(/((?:from|import)\s*\(?\s*['"])(\.{1,2}\/[^'"]*?)\.ts(['"])/g, '$1$2.js$3');
  if (rewritten !== text) {
    writeFileSync(file, rewritten);
    files++;
  }
}
// On stderr: `npm pack --json` prints lifecycle scripts' stdout into its JSON.
process.stderr.write(`dts-extensions: .ts -> .js specifiers in ${files} declaration file(s)\n`);
