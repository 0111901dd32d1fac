// Loading user plugins (policies and oracles) from files. A plugin is an ES module, TypeScript or
// JavaScript, whose default export is the object; the tsx loader registered by bin/cocofuzz.js
// (and by vitest) compiles TypeScript on the fly, so no build step is needed.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import { realOrResolved } from '../repro/plugin-paths.ts';

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

/** Whether this thread registered tsx's hooks (once: each registration adds another loader). */
let tsxRegistered = false;

/**
 * A TypeScript plugin. In an ES module scope (`.mts`, or a `.ts` under a package.json with "type":
 * "module": a user's project) through tsx's hooks registered for this thread, so that the
 * plugin's `cocofuzz` resolves as any import does, to the engine this thread runs (tsImport's
 * namespaced hooks resolved it, and every chunk of the bundle, again under `?tsx-namespace=`: a
 * second engine, whose PolicyError the engine took for a crash of the hook). Elsewhere (a plugin
 * in /tmp, a CommonJS project) tsImport, which compiles the file as an ES module where the global
 * hooks would go through require() and fail: such a plugin gets its own copy of cocofuzz.
 */
async function importTypeScript(path: string): Promise<unknown> {
  const url = pathToFileURL(path).href;
  const tsx = await import('tsx/esm/api');
  if (!path.endsWith('.mts') && !inModuleScope(path)) return tsx.tsImport(url, import.meta.url);
  if (!tsxRegistered) {
    tsx.register();
    tsxRegistered = true;
  }
  return import(url);
}

/** Whether the nearest package.json above `path` says "type": "module" (Node's rule for `.js`, tsx's for `.ts`). */
function inModuleScope(path: string): boolean {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        return (JSON.parse(readFileSync(manifest, 'utf8')) as { type?: unknown }).type === 'module';
      } catch {
        return false;
      }
    }
    if (dirname(dir) === dir) return false;
  }
}

/** Imports `file` and returns its default export after `validate` checked it. */
export async function loadPlugin<T>(file: string, what: string, validate: (value: unknown) => string | undefined): Promise<T> {
  const path = resolve(file);
  if (!existsSync(path)) throw new PluginError(file, `no such ${what} file`);
  let module: { default?: unknown };
  try {
    // tsx is imported here, not at the top: loading it costs a CLI or a worker thread about 60 ms
    // of start-up, and most runs load no TypeScript plugin (issue 15).
    const typescript = path.endsWith('.ts') || path.endsWith('.mts');
    module = (typescript ? await importTypeScript(path) : await import(pathToFileURL(path).href)) as { default?: unknown };
  } catch (error) {
    throw new PluginError(file, `the ${what} failed to load: ${loadFailure(error, file, path)}`);
  }
  let value = module.default;
  // A TypeScript file compiled as CommonJS (no "type": "module" around it) arrives wrapped once more.
  if (typeof value === 'object' && value !== null && 'default' in value && !('name' in value)) value = value.default;
  if (value === undefined) throw new PluginError(file, `no default export (export default { name, description, ... } as the ${what})`);
  const problem = validate(value);
  if (problem) throw new PluginError(file, problem);
  return value as T;
}

/**
 * Why loading failed, in one line that says where in the plugin: esbuild (a TypeScript plugin)
 * puts the place on the line after "Transform failed with 1 error:"; a throw while the module ran
 * has it in its stack; Node's SyntaxError for a JavaScript module has it in neither (the arrow
 * goes to stderr only when the error is uncaught), so `node --check` is asked for it.
 */
function loadFailure(error: unknown, file: string, path: string): string {
  if (!(error instanceof Error)) return inspect(error, { breakLength: Infinity });
  const lines = error.message
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  let text = lines[0] ?? error.name;
  if (text.endsWith(':') && lines[1] !== undefined) text = `${text.slice(0, -1)}: ${lines[1]}`;
  // A plugin imports 'cocofuzz' from its own directory up (Node's resolution), not from the CLI
  // that loads it: `npx --package cocofuzz`, or a plugin outside the project, finds none.
  if (/^Cannot find (package|module) 'cocofuzz(\/[^']*)?'/.test(text)) return `${text} (a plugin resolves cocofuzz from its own directory: npm install --save-dev cocofuzz in the plugin's project)`;
  // The loader and node --check name the file by its real path (a symlinked directory, macOS's
  // /var -> /private/var tmpdir).
  const real = realOrResolved(path);
  if (text.includes(path) || text.includes(real)) return text;
  const where = placeIn(error.stack ?? '', path) ?? placeIn(error.stack ?? '', real);
  if (where !== undefined) return `${text} (${file}:${where})`;
  // A SyntaxError with no place: Node's for a JavaScript module keeps it out of the error. A
  // TypeScript plugin's syntax is esbuild's business (handled above): its SyntaxError is a
  // runtime one (JSON.parse), which node --check cannot place.
  if (!(error instanceof SyntaxError) || /\.m?ts$/.test(path)) return text;
  // A link error ("The requested module './dep.mjs' does not provide an export named 'b'") is a
  // SyntaxError too, about one of the plugin's imports: its text says which.
  if (text.startsWith('The requested module')) return text;
  const check = syntaxCheck(real);
  if (check.line !== undefined) return `${text} (${file}:${check.line})`;
  return check.clean ? `${text} (not in ${file} itself, whose syntax is fine: in a module it imports)` : text;
}

/** LINE:COLUMN of the first stack frame in the plugin's own file. */
function placeIn(stack: string, path: string): string | undefined {
  const url = pathToFileURL(path).href;
  for (const line of stack.split('\n')) {
    const at = line.indexOf(`${url}:`);
    const match = at >= 0 ? /^:(\d+:\d+)/.exec(line.slice(at + url.length)) : null;
    if (match) return match[1];
  }
  return undefined;
}

/** What `node --check` says of a JavaScript module: the line of its syntax error, or that it has none. */
function syntaxCheck(path: string): { line?: string; clean: boolean } {
  const check = spawnSync(process.execPath, ['--check', path], { encoding: 'utf8', timeout: 30_000 });
  const prefix = `${path}:`;
  const line = check.stderr?.split('\n').find((l) => l.startsWith(prefix));
  const match = line === undefined ? null : /^(\d+)$/.exec(line.slice(prefix.length));
  return match?.[1] !== undefined ? { line: match[1], clean: false } : { clean: check.status === 0 };
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
