// After `tsc -p tsconfig.build.json`: the campaign worker thread (dist/src/engine/worker.js) as one
// file, dist/src/engine/worker-bundle.js. A worker loads its module graph afresh; as ~100 modules
// that was 65-75 ms of a ~110 ms start, almost all of it Node's loader (resolving, opening,
// compiling file by file), not our code (issue 15: "a worker's start under 0.1 s"). The bundle
// keeps the package's own `cocofuzz/api` (the built-in oracles import it) inside; other packages
// (seedrandom, tsx for TypeScript plugins) stay imports. The watchdog starts it only for a job that
// loads no user code (src/engine/watchdog.ts): a plugin's `cocofuzz` must be the engine the worker
// runs, which the bundle's own copy is not, so those workers run dist/'s modules as before.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const worker = fileURLToPath(new URL('../dist/src/engine/worker.js', import.meta.url));
const bundle = fileURLToPath(new URL('../dist/src/engine/worker-bundle.js', import.meta.url));

const result = await build({
  entryPoints: [worker],
  outfile: bundle,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'error',
  plugins: [
    {
      name: 'other-packages-external',
      setup(b) {
        b.onResolve({ filter: /^[^./]/ }, (args) => (args.path === 'cocofuzz' || args.path.startsWith('cocofuzz/') ? undefined : { path: args.path, external: true }));
      },
    },
  ],
  metafile: true,
});
const inputs = Object.keys(result.metafile.inputs).length;
// stderr: `npm pack --json` prints the build's stdout before its JSON.
console.error(`bundle-worker: ${inputs} modules -> dist/src/engine/worker-bundle.js`);
