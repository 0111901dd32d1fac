// Before any test file starts: dist/ built from the sources as they are (scripts/source-digest.js),
// once, so that every CLI test spawns the built CLI (test/helpers/cli.ts) and test/package.test.ts
// packs it as it is. Built here rather than by the package test's `npm pack` (prepack), which
// removes dist/ and rebuilds it under CLI test files running beside it. A build that fails is
// reported and the run goes on: the CLI tests then spawn the sources, and the package test's own
// `npm pack` shows the build's error.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { distIsCurrent } from '../scripts/source-digest.js';
import { withoutSourceConditionEnv } from './helpers/cli.ts';

export default function setup(): void {
  if (distIsCurrent()) return;
  const root = fileURLToPath(new URL('..', import.meta.url));
  process.stderr.write('dist/ is not a build of the current sources: npm run build, for the CLI tests\n');
  const build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: root, encoding: 'utf8', env: withoutSourceConditionEnv() });
  if (build.status !== 0 || !distIsCurrent()) {
    const tail = `${build.stdout}${build.stderr}`.trim().split('\n').slice(-5).join('\n');
    process.stderr.write(`npm run build failed (exit ${String(build.status)}); the CLI tests run the sources:\n${tail}\n`);
  }
}
