import { readFileSync } from 'node:fs';

/**
 * The package's version. src/cli/ runs from the checkout, dist/src/cli/ from the package: the root
 * package.json is two or three levels up.
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
