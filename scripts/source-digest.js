// A digest of what `npm run build` compiles (src/, oracles/, the build's configs and scripts,
// package.json): the build writes it to dist/.source-digest (`--write`), and the CLI tests
// (test/helpers/cli.ts) spawn the built CLI only while dist/ says it was built from the sources as
// they are now. The built CLI starts in about 0.35 s against 0.85 s for the sources through tsx,
// and its workers from one bundle: the bad-input table took 41 s instead of 110 s. A checkout
// edited since its last build gets the sources, so a test never runs stale code.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TREES = ['src', 'oracles'];
const FILES = ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts/bundle-worker.js', 'scripts/dts-extensions.js', 'scripts/source-digest.js'];
export const DIGEST_FILE = join(ROOT, 'dist', '.source-digest');

function* filesUnder(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* filesUnder(path);
    else if (entry.isFile()) yield path;
  }
}

/** The digest of the build's inputs in the checkout at `root`: paths and contents, in path order. */
export function sourceDigest(root = ROOT) {
  const paths = [...TREES.flatMap((tree) => [...filesUnder(join(root, tree))]), ...FILES.map((file) => join(root, file))].map((path) => relative(root, path)).sort();
  const hash = createHash('sha256');
  for (const path of paths) hash.update(`${path}\0`).update(readFileSync(join(root, path))).update('\0');
  return hash.digest('hex');
}

/** Whether dist/ holds a build of the sources as they are now. */
export function distIsCurrent(root = ROOT) {
  try {
    return readFileSync(join(root, 'dist', '.source-digest'), 'utf8').trim() === sourceDigest(root);
  } catch {
    return false;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--write') {
  writeFileSync(DIGEST_FILE, `${sourceDigest()}\n`);
  console.error(`source-digest: ${relative(ROOT, DIGEST_FILE)}`);
}
