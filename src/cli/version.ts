import { readFileSync } from 'node:fs';

/**
 * The package's version. src/cli/ runs from the checkout, dist/bundle/ from the package: the root
 * package.json is two levels up (three from a per-file build of dist/src/cli/).
 */
export function packageVersion(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'cocofuzz' && pkg.version) return pkg.version;
    } catch {
      // Not at this level.
    }
  }
  return 'unknown';
}
