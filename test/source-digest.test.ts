// scripts/source-digest.js decides whether the CLI tests may spawn dist/ (test/helpers/cli.ts):
// a build of other sources than the checkout's must never be taken for current.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { distIsCurrent, sourceDigest } from '../scripts/source-digest.js';

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

/** A checkout with the build's inputs, built (dist/.source-digest written) when `built`. */
function checkout(built: boolean): string {
  const root = mkdtempSync(join(tmpdir(), 'cocofuzz-digest-'));
  roots.push(root);
  for (const dir of ['src/model', 'oracles/lib', 'scripts', 'dist']) mkdirSync(join(root, dir), { recursive: true });
  const files: Record<string, string> = {
    'src/model/rmp.ts': 'export const a = 1;\n',
    'oracles/lib/runs.ts': 'export const b = 2;\n',
    'package.json': '{}\n',
    'tsconfig.json': '{}\n',
    'tsconfig.build.json': '{}\n',
    'scripts/bundle.js': '\n',
    'scripts/dts-extensions.js': '\n',
    'scripts/source-digest.js': '\n',
  };
  for (const [path, text] of Object.entries(files)) writeFileSync(join(root, path), text);
  if (built) writeFileSync(join(root, 'dist', '.source-digest'), `${sourceDigest(root)}\n`);
  return root;
}

describe('source digest', () => {
  it('dist/ is current right after the build, and no longer once a source changes, is added or is renamed', () => {
    const root = checkout(true);
    expect(distIsCurrent(root)).toBe(true);
    writeFileSync(join(root, 'src/model/rmp.ts'), 'export const a = 2;\n');
    expect(distIsCurrent(root)).toBe(false);

    const added = checkout(true);
    writeFileSync(join(added, 'oracles/new-oracle.ts'), '');
    expect(distIsCurrent(added)).toBe(false);

    // Same contents under another name: the paths are part of the digest.
    const renamed = checkout(true);
    rmSync(join(renamed, 'oracles/lib/runs.ts'));
    writeFileSync(join(renamed, 'oracles/lib/runs2.ts'), 'export const b = 2;\n');
    expect(distIsCurrent(renamed)).toBe(false);

    const config = checkout(true);
    writeFileSync(join(config, 'tsconfig.build.json'), '{ "compilerOptions": {} }\n');
    expect(distIsCurrent(config)).toBe(false);
  });

  it('follows symbolic links as tsc does: an edit behind a linked file or directory makes dist/ stale; a loop or a dangling link is no input', () => {
    const root = checkout(false);
    const outside = mkdtempSync(join(tmpdir(), 'cocofuzz-digest-linked-'));
    roots.push(outside);
    mkdirSync(join(outside, 'dir'));
    writeFileSync(join(outside, 'file.ts'), 'export const c = 3;\n');
    writeFileSync(join(outside, 'dir', 'inner.ts'), 'export const d = 4;\n');
    symlinkSync(join(outside, 'file.ts'), join(root, 'src/linked.ts'));
    symlinkSync(join(outside, 'dir'), join(root, 'oracles/linked-dir'));
    // A loop and a dangling link add nothing (the loop is walked once, not until ELOOP).
    const before = sourceDigest(root);
    symlinkSync(join(root, 'src'), join(root, 'src/model/loop'));
    symlinkSync(join(outside, 'missing.ts'), join(root, 'src/dangling.ts'));
    expect(sourceDigest(root)).toBe(before);
    writeFileSync(join(root, 'dist', '.source-digest'), `${sourceDigest(root)}\n`);
    expect(distIsCurrent(root)).toBe(true);
    writeFileSync(join(outside, 'file.ts'), 'export const c = 30;\n');
    expect(distIsCurrent(root)).toBe(false);
    writeFileSync(join(root, 'dist', '.source-digest'), `${sourceDigest(root)}\n`);
    writeFileSync(join(outside, 'dir', 'inner.ts'), 'export const d = 40;\n');
    expect(distIsCurrent(root)).toBe(false);
  });

  it('a checkout never built, or built without the digest, runs the sources', () => {
    expect(distIsCurrent(checkout(false))).toBe(false);
  });
});
