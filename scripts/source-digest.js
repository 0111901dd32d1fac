// A digest of what `npm run build` compiles (src/, oracles/, the build's configs and scripts,
// package.json): the build stamps dist/ with it (dist/.source-digest), and the CLI tests
// (test/helpers/cli.ts) spawn the built CLI only while dist/ says it was built from the sources as
// they are now, and the sources otherwise. The built CLI starts in about 0.35 s against 0.85 s
// for the sources through tsx, and its workers from one bundle: the bad-input table took 41 s
// instead of 110 s. A test never runs stale code.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TREES = ['src', 'oracles'];
const FILES = ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts/bundle.js', 'scripts/dts-extensions.js', 'scripts/source-digest.js'];
/** Where the build stamps dist/ of the checkout at `root`. */
const digestFile = (root) => join(root, 'dist', '.source-digest');

/**
 * The files under `dir`, following symbolic links as tsc does (a linked source is compiled, so it
 * is an input); a directory reached twice (a link loop) is walked once.
 */
function* filesUnder(dir, walked = new Set()) {
  const real = realpathSync(dir);
  if (walked.has(real)) return;
  walked.add(real);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const stat = entry.isSymbolicLink() ? statOrUndefined(path) : entry;
    if (stat?.isDirectory()) yield* filesUnder(path, walked);
    else if (stat?.isFile()) yield path;
  }
}

/** A dangling link is no input. */
function statOrUndefined(path) {
  try {
    return statSync(path);
  } catch {
    return undefined;
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
    return readFileSync(digestFile(root), 'utf8').trim() === sourceDigest(root);
  } catch {
    return false;
  }
}

// `--begin`, the build's first step after it removed dist/: the digest of the sources as the
// build starts to read them. `--write`, its last step: that digest becomes dist/'s. A source saved
// while tsc ran then leaves dist/ stale, never stamped current. `--check` (.ci/run): exit 1 unless
// dist/ is stamped with the sources as they are.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const stamp = digestFile(ROOT);
  const pending = `${stamp}.pending`;
  if (process.argv[2] === '--begin') {
    mkdirSync(dirname(stamp), { recursive: true });
    writeFileSync(pending, `${sourceDigest()}\n`);
  } else if (process.argv[2] === '--write') {
    renameSync(pending, stamp);
    console.error(`source-digest: ${relative(ROOT, stamp)}`);
  } else if (process.argv[2] === '--check') {
    if (!distIsCurrent()) {
      console.error(`source-digest: ${relative(ROOT, stamp)} does not name the sources as they are: dist/ is not their build`);
      process.exit(1);
    }
  } else {
    console.error('usage: node scripts/source-digest.js --begin | --write | --check');
    process.exit(2);
  }
}
