// The registry of built-in formats, looked up by name.
import type { PageTableFormat } from '../format.ts';
import { amdv1 } from './amdv1.ts';
import { vtdss } from './vtdss.ts';
import { x86_64 } from './x86_64.ts';

export const formats = { amdv1, vtdss, x86_64 } as const satisfies Record<string, PageTableFormat>;

export type FormatName = keyof typeof formats;

export function getFormat(name: string): PageTableFormat {
  if (!Object.hasOwn(formats, name)) {
    throw new Error(`unknown page table format ${JSON.stringify(name)} (known: ${Object.keys(formats).join(', ')})`);
  }
  return formats[name as FormatName];
}
