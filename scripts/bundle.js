// After `tsc -p tsconfig.build.json`: the package's JavaScript as dist/bundle/, its entry points
// (api, index, vitest, the CLI's main, the campaign worker) with code splitting, so every module
// is in exactly one file and a plugin's `cocofuzz/api` (package.json "exports") is the very module
// instance the CLI or worker runs: one engine, one PolicyError class for instanceof (a TypeScript
// plugin in an ES module scope too: src/engine/plugins.ts importTypeScript()). Node's loader
// costs per file (resolve, open, compile): `cocofuzz oracles` loaded 136 files, a worker ~100
// (issue 15: CLI start under 0.3 s, a worker's under 0.1 s). yargs and seedrandom are bundled (no
// plugin sees them); fast-check (a user's property tests share its classes), vitest and tsx (loaded
// only for TypeScript plugins) stay imports. The per-file JavaScript tsc wrote is removed
// afterwards: what ships is the bundle, and its declarations (.d.ts) stay where tsc wrote them.
import { build } from 'esbuild';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('../dist/', import.meta.url));
const EXTERNAL = ['fast-check', 'vitest', 'tsx', 'tsx/*'];

const result = await build({
  entryPoints: {
    api: join(dist, 'src/api.js'),
    index: join(dist, 'src/index.js'),
    vitest: join(dist, 'src/vitest.js'),
    main: join(dist, 'src/cli/main.js'),
    // watchdog.ts starts `new URL('./worker.js', import.meta.url)`: the chunks sit beside it.
    worker: join(dist, 'src/engine/worker.js'),
  },
  outdir: join(dist, 'bundle'),
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: EXTERNAL,
  plugins: [
    {
      // The built-in oracles import `cocofuzz/api` as a plugin does; package.json maps that to
      // this bundle, which is being made: here it is tsc's output of the same module.
      name: 'own-package',
      setup(b) {
        b.onResolve({ filter: /^cocofuzz(\/|$)/ }, (args) => {
          const entry = { cocofuzz: 'index', 'cocofuzz/api': 'api', 'cocofuzz/vitest': 'vitest' }[args.path];
          if (entry === undefined) return { errors: [{ text: `${args.path}: not an entry point of the package` }] };
          return { path: join(dist, 'src', `${entry}.js`) };
        });
      },
    },
  ],
  logLevel: 'error',
  metafile: true,
});

/** tsc's per-file JavaScript, now inside the bundle. */
function removeJs(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) removeJs(path);
    else if (entry.name.endsWith('.js')) rmSync(path);
  }
}
removeJs(join(dist, 'src'));
removeJs(join(dist, 'oracles'));

const inputs = Object.keys(result.metafile.inputs).length;
const outputs = Object.keys(result.metafile.outputs).length;
// stderr: `npm pack --json` prints the build's stdout before its JSON.
console.error(`bundle: ${inputs} modules -> ${outputs} files in dist/bundle/`);
