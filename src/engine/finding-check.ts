// Checking what an oracle returns, at the boundary (issue 14, item 17). Findings travel between
// worker threads (structured clone), into repro titles, JSON lines and reports, and their
// `details.sizes` feed the bucket signature: a function, a class instance or a null-prototype
// object there must not crash the campaign. Garbage is an error of that oracle (reported as an
// oracle error, DESIGN.md "Plugins"), and what passes is copied into plain JSON data.

import type { Finding, ViolationDetails } from '../api.ts';
import { describeValue } from '../policies/check.ts';

const MAX_DEPTH = 8;

/** Plain JSON data copied from `value`, or an Error naming the path of what is not. */
function plainData(value: unknown, path: string, depth: number): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`${path} is ${String(value)}, expected a finite number`);
    return value;
  }
  if (depth >= MAX_DEPTH) throw new Error(`${path} nests deeper than ${MAX_DEPTH} levels`);
  if (Array.isArray(value)) return value.map((item, index) => plainData(item, `${path}[${index}]`, depth + 1));
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) throw new Error(`${path} is ${Object.prototype.toString.call(value)}, expected plain data`);
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      if (item !== undefined) out[key] = plainData(item, `${path}.${key}`, depth + 1);
    }
    return out;
  }
  throw new Error(`${path} is ${describeValue(value)}, expected plain data`);
}

/** The findings an oracle's check or final returned, validated and copied; throws on garbage. */
export function checkFindings(returned: unknown): Finding[] {
  if (returned === undefined || returned === null) return [];
  if (!Array.isArray(returned)) throw new Error(`returned ${describeValue(returned)}, expected an array of findings`);
  return returned.map((raw: unknown, index) => {
    if (typeof raw !== 'object' || raw === null) throw new Error(`finding ${index} is ${describeValue(raw)}, expected { message, details? }`);
    const { message, details } = raw as Record<string, unknown>;
    if (typeof message !== 'string') throw new Error(`finding ${index}: message is ${describeValue(message)}, expected a string`);
    if (details === undefined) return { message };
    const copy = plainData(details, `finding ${index}: details`, 0);
    if (typeof copy !== 'object' || copy === null || Array.isArray(copy)) throw new Error(`finding ${index}: details is ${describeValue(details)}, expected an object`);
    return { message, details: copy as ViolationDetails };
  });
}
