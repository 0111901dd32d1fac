// The registry of built-in formats, looked up by name.
import { freezeDeep } from '../../freeze.ts';
import type { PageTableFormat } from '../format.ts';
import { amdv1 } from './amdv1.ts';
import { vtdss } from './vtdss.ts';
import { x86_64 } from './x86_64.ts';

// Frozen: every page table shares its format, and so does every copy of a booted world (the boot
// cache shares frozen data: a copied format would lose the identity the JIT folds constants by).
export const formats = freezeDeep({ amdv1, vtdss, x86_64 } as const satisfies Record<string, PageTableFormat>);

export type FormatName = keyof typeof formats;

export function getFormat(name: string): PageTableFormat {
  if (!Object.hasOwn(formats, name)) {
    throw new Error(`unknown page table format ${JSON.stringify(name)} (known: ${Object.keys(formats).join(', ')})`);
  }
  return formats[name as FormatName];
}
