// Which plugin files a repro file may make cocofuzz load, and how repro files spell them.
//
// Repro files and corpus directories travel between people and CI: they are data, and must never
// make cocofuzz run code from elsewhere on the machine (issue 14, item 1). A policy or oracle
// file named in a repro is therefore loaded only from inside the repro file's own directory tree:
// no absolute path, no `..` out of it, no symlink out of it (checked on real paths). Anything else
// is a one-line error telling the user which flag names the file on the command line instead,
// where the user, not the file, decides what runs. Repro files written by cocofuzz spell plugin
// paths relative to the repro file, so a findings directory that holds its policy files stays
// loadable wherever it is copied.

import { existsSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { FormatError } from '../ops/errors.ts';
import { shellWord } from '../report/escape.ts';

/** A policy name that is a file (`./p.ts`, `dir/p.js`) rather than a built-in name. */
export const looksLikeFile = (nameOrFile: string): boolean => /[/\\]|\.(m?[jt]s)$/.test(nameOrFile);

/**
 * What tells two spellings of one file apart from two files: its real path (symlinks resolved), or
 * where nothing is there (a dangling link, a missing file) its resolved path.
 */
export function realOrResolved(path: string): string {
  return existsSync(path) ? realpathSync(path) : resolve(path);
}

/** `path` is `dir` or lies below it (both absolute, normalised). */
export function isInside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/**
 * The real path of plugin file `named`, as written in field `field` of repro file `reproFile`,
 * or a FormatError naming the file, the field and `flag` (the command-line way to load it).
 */
export function containedPluginPath(reproFile: string, field: string, named: string, flag: string): string {
  const where = `${reproFile}: ${field}`;
  const refuse = (why: string): never => {
    throw new FormatError(where, `${JSON.stringify(named)} ${why}: a repro file loads plugins only from its own directory tree (pass ${flag} FILE to use it)`);
  };
  if (isAbsolute(named) || /^[a-z]:[\\/]/i.test(named)) refuse('is an absolute path');
  const dir = resolve(dirname(reproFile));
  const target = resolve(dir, named);
  if (!isInside(dir, target)) refuse("is outside the repro file's directory");
  if (!existsSync(target)) throw new FormatError(where, `no such plugin file ${JSON.stringify(named)} beside the repro file (or pass ${flag} FILE)`);
  const real = realpathSync(target);
  if (!isInside(realpathSync(dir), real)) refuse("leads out of the repro file's directory through a symlink");
  if (!statSync(real).isFile()) throw new FormatError(where, `${JSON.stringify(named)} is not a file`);
  return real;
}

/**
 * How a repro file at `reproFile` names the plugin `named` (relative to `baseDir`, the working
 * directory by default): relative to the repro file, with forward slashes. Built-in names pass.
 */
export function pluginPathForRepro(named: string, reproFile: string, baseDir: string = process.cwd()): string {
  if (!looksLikeFile(named)) return named;
  const rel = relative(resolve(dirname(reproFile)), resolve(baseDir, named)).split(sep).join('/');
  return rel.startsWith('../') ? rel : `./${rel}`;
}

/**
 * The replay flag (`--host-policy FILE`, quoted for the shell) a repro written into `dir` needs
 * for the plugin `named`: a file outside `dir`, which a repro file may not load by itself; else
 * undefined (a built-in name, or a file inside `dir`).
 */
export function replayFlagFor(flag: string, named: string, dir: string): string | undefined {
  return looksLikeFile(named) && !isInside(resolve(dir), resolve(named)) ? `${flag} ${shellWord(named)}` : undefined;
}
