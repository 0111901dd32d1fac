// Loading user plugins (policies and oracles) from files. A plugin is an ES module, TypeScript or
// JavaScript, whose default export is the object; the tsx loader registered by bin/cocofuzz.js
// (and by vitest) compiles TypeScript on the fly, so no build step is needed.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/** A plugin that is missing, fails to load or has the wrong shape: one line, exit 2. */
export class PluginError extends Error {
  override name = 'PluginError';
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
  }
}

export { looksLikeFile } from '../repro/plugin-paths.ts';

/**
 * From here on, a plugin's process.exit() is an exception inside the hook that called it, which
 * the world reports as a policy-error naming the policy. Without it a hook's process.exit(0) ends
 * a campaign worker without a word, or `replay --check` with exit 0 having checked nothing (a CI
 * job would pass). Installed by each worker once its plugins loaded (engine/worker.ts), and by the
 * CLI once parsing is done (yargs itself exits after --help and --version).
 */
export function guardProcessExit(): void {
  process.exit = (code?: number | string | null) => {
    throw new Error(`the plugin called process.exit(${code ?? ''})`);
  };
}

/** Imports `file` and returns its default export after `validate` checked it. */
export async function loadPlugin<T>(file: string, what: string, validate: (value: unknown) => string | undefined): Promise<T> {
  const path = resolve(file);
  if (!existsSync(path)) throw new PluginError(file, `no such ${what} file`);
  let module: { default?: unknown };
  try {
    // tsImport compiles the file as an ES module even outside a "type": "module" package (a
    // plugin in /tmp or in a user's CommonJS project), where a plain import would go through
    // require() and fail. tsx is imported here, not at the top: loading it costs a CLI or a worker
    // thread about 60 ms of start-up, and most runs load no TypeScript plugin (issue 15).
    const typescript = path.endsWith('.ts') || path.endsWith('.mts');
    module = (typescript ? await (await import('tsx/esm/api')).tsImport(pathToFileURL(path).href, import.meta.url) : await import(pathToFileURL(path).href)) as {
      default?: unknown;
    };
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new PluginError(file, `the ${what} failed to load: ${message}`);
  }
  let value = module.default;
  // A TypeScript file compiled as CommonJS (no "type": "module" around it) arrives wrapped once more.
  if (typeof value === 'object' && value !== null && 'default' in value && !('name' in value)) value = value.default;
  if (value === undefined) throw new PluginError(file, `no default export (export default { name, description, ... } as the ${what})`);
  const problem = validate(value);
  if (problem) throw new PluginError(file, problem);
  return value as T;
}

export function requireFields(value: unknown, fields: Record<string, 'string' | 'function'>, optional: Record<string, 'function'> = {}): string | undefined {
  if (typeof value !== 'object' || value === null) return 'the default export is not an object';
  const record = value as Record<string, unknown>;
  for (const [field, type] of Object.entries(fields)) {
    if (typeof record[field] !== type) return `the default export needs "${field}" (a ${type})`;
  }
  for (const [field, type] of Object.entries(optional)) {
    if (record[field] !== undefined && typeof record[field] !== type) return `"${field}" must be a ${type}`;
  }
  return undefined;
}
