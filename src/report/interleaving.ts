// An op's primitive calls numbered as `during` counts them (1..n, the op's own calls only), with
// each interleaved op placed where it ran and the tables' sizes its DMA saw at that moment:
//     1 pvalidate 0x3000 | 2 psmash 0x400000000000 | <-- dma dev 0 iova 0x0: S2[2M] -- [2M] --> RMP[4K]  ==> FAIL (size mismatch) | 3 npt_unmap 0x0
// replay --trace prints one item per line with full arguments; explain prints the compact form.

import type { DmaRecord, InterleavedRecord, PrimitiveCall, Step } from '../api.ts';
import { hex } from '../model/size.ts';
import { formatOp } from '../ops/codec.ts';
import { arrow, faultArrow } from './arrows.ts';

const ADDRESS_ARGS = ['hpa', 'gpa', 'iova', 'addr'];

function fullCall(call: PrimitiveCall): string {
  const args = Object.entries(call.args)
    .map(([k, v]) => `${k}=${typeof v === 'number' && v >= 4096 ? hex(v) : String(v)}`)
    .join(' ');
  return `${call.prim}(${args}) = ${String(call.result)}`;
}

function shortCall(call: PrimitiveCall): string {
  const key = ADDRESS_ARGS.find((k) => typeof call.args[k] === 'number');
  return key === undefined ? call.prim : `${call.prim} ${hex(call.args[key] as number)}`;
}

/** What an interleaved DMA saw: the failing translation, or the first piece's. */
export function dmaVerdict(dma: DmaRecord): string {
  const fault = dma.result.faults[0];
  if (fault !== undefined) return faultArrow(fault);
  const piece = dma.result.pieces[0];
  if (piece === undefined) return '==> OK';
  const sizes = arrow({ ...(piece.s1Size !== undefined ? { s1: piece.s1Size } : {}), s2: piece.s2Size, checked: piece.checkedSize, rmp: piece.rmpSize, ok: true });
  return piece.fromIotlb ? `${sizes} (IOTLB hit)` : sizes;
}

function innerLabel(record: InterleavedRecord | undefined, entry: number): string {
  const notes = [record?.waited ? 'waited for dma_resume' : '', record?.deferred ? '#NPF handled after the op' : ''].filter((n) => n !== '');
  return `<-- during[${entry}]${notes.length > 0 ? ` (${notes.join(', ')})` : ''}`;
}

/**
 * The step as a list of items: numbered own calls, and `<--` lines for the interleaved ops (their
 * DMA with its translation, a touch's access, a skipped entry with its reason). Host work an
 * inner op triggered (a touch's #NPF handled after the op) is listed under it.
 */
export function interleavedItems(step: Step, style: 'trace' | 'compact'): string[] {
  const records = new Map((step.interleaved ?? []).map((r) => [r.entry, r]));
  const dmas = new Map<number, DmaRecord>();
  for (const dma of step.dmas) if (dma.during !== undefined) dmas.set(dma.during, dma);
  const items: string[] = [];
  const shown = new Set<number>();
  const skippedAfter = (outer: number): void => {
    for (const record of step.interleaved ?? []) {
      if (record.skipped === undefined || record.ranAfter !== outer) continue;
      items.push(`${innerLabel(record, record.entry)} ${formatOp(record.op)}: skipped (${record.skipped})`);
    }
  };
  let outer = 0;
  skippedAfter(0);
  for (const call of step.calls) {
    if (call.during === undefined) {
      outer++;
      items.push(`${String(outer).padStart(style === 'trace' ? 4 : 0)} ${style === 'trace' ? fullCall(call) : shortCall(call)}`);
      skippedAfter(outer);
      continue;
    }
    const entry = call.during;
    const record = records.get(entry);
    const dma = dmas.get(entry);
    if (call.prim === 'dma' && dma !== undefined && !shown.has(entry)) {
      shown.add(entry);
      items.push(`${innerLabel(record, entry)} dma dev ${dma.dev} iova ${hex(dma.iova)}: ${dmaVerdict(dma)}`);
      continue;
    }
    const label = `${innerLabel(record, entry)} ${style === 'trace' ? fullCall(call) : shortCall(call)}`;
    items.push(record?.op.op === 'touch' && !shown.has(entry) ? `${label} (touch ${hex(record.op.gpa)})` : label);
    shown.add(entry);
  }
  return items;
}
