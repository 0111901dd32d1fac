#!/usr/bin/env node
// Runs one TypeScript file through the tsx loader (used by `npm run bench`).
import { pathToFileURL } from 'node:url';
import { register } from 'tsx/esm/api';

register();
const [file, ...rest] = process.argv.slice(2);
if (!file) {
  console.error('usage: run-ts FILE [args...]');
  process.exit(2);
}
process.argv = [process.argv[0] ?? 'node', file, ...rest];
await import(pathToFileURL(file).href);
