// dma-liveness: a DMA the guest set up correctly (against a live buffer or mapping, in bounds, by
// the device it was set up for: DmaRecord.legit) must succeed. When it does not, the host's
// tables disagree with what the guest was promised: a 4K S2 over 2M RMP entries for a trusted
// device (research/amd-snp.md section 7, item 1), a 2M S2 leaf over a smashed region (item 2), a
// missing IO mapping, a stale IOTLB entry.
//
// Interleaved DMAs (an op's `during`) are judged the same way: a legitimate DMA into memory the op
// is not converting must succeed whatever the host is in the middle of (DOMAIN.md "Races and
// interleavings"). A page-size change is not an excuse: PSMASH first leaves S2[2M] over RMP[4K],
// the IO cut first leaves S2[4K] over RMP[2M], and a device DMAing anywhere in that 2M region
// fails although the page it targets was never converted; a correct host stalls the DMA or
// changes both sides atomically. Only the pages the op converts, creates or frees
// (Step.converting) are exempt: the guest must not DMA there while it converts them.
//
// Event-based: it looks at the step's DMA records only, so it has no full sweep (a sweep sees
// the world, not the DMAs that happened).

import { defineOracle, formatSize, hex, isBeingConverted, type DmaRecord, type Fault, type Step, type View } from 'cocofuzz/api';
import { deviceById } from './lib/devices.ts';
import { Findings } from './lib/findings.ts';

const found = new Findings();

/** The translation path of a fault in DOMAIN.md's arrow notation. */
function arrows(fault: Fault): string {
  const parts: string[] = [];
  if (fault.s1Size !== undefined) parts.push(`S1[${formatSize(fault.s1Size)}]`);
  if (fault.kind === 'io_page_fault') {
    parts.push(fault.reason.startsWith('s1') ? 'S1[none]' : 'S2[none]');
    return `${parts.join(' -> ')} ==> FAIL (${fault.reason})`;
  }
  // On an IOTLB hit the size is the one cached, not the S2's now: say so, or the arrow blames the S2.
  const s2 = `${fault.s2Size !== undefined ? `S2[${formatSize(fault.s2Size)}]` : 'S2'}${fault.fromIotlb === true ? ' (IOTLB)' : ''}`;
  const checked = fault.checkedSize !== undefined ? ` -- [${fault.checkedSize}] --> ` : ' --> ';
  parts.push(`${s2}${checked}RMP[${fault.rmpSize ?? '?'}]`);
  return `${parts.join(' -> ')} ==> FAIL (${fault.reason})`;
}

function describeDma(view: View, dma: DmaRecord): string {
  const device = deviceById(view, dma.dev);
  const trusted = device !== undefined && device.trusted && (dma.tdi ?? device.tdi) === 'run' && dma.iova < view.vtom;
  const target = dma.target ? ` to ${dma.target.kind} ${dma.target.id}` : '';
  return `${trusted ? 'trusted ' : ''}DMA ${dma.write ? 'write' : 'read'} by dev ${dma.dev}${target} at ${hex(dma.iova)} len ${dma.len}`;
}

export default defineOracle({
  name: 'dma-liveness',
  description: 'a DMA the guest set up correctly (live buffer or mapping, in bounds) succeeds',
  severity: 'liveness',

  check(view: View, step: Step) {
    for (const dma of step.dmas) {
      if (!dma.legit || dma.result.ok) continue;
      const fault = dma.result.faults[0];
      const device = deviceById(view, dma.dev);
      // Without a vIOMMU the IOVA is the GPA; through S1 the fault names the GPA when it got that far.
      const gpa = fault === undefined ? undefined : (fault.gpa ?? (device?.s1 === undefined ? fault.addr : undefined));
      const interleaved = dma.during !== undefined ? step.interleaved?.find((r) => r.entry === dma.during) : undefined;
      if (dma.during !== undefined && isBeingConverted(step.converting, Math.floor((gpa ?? -4096) / 4096), dma.target)) continue;
      const when = interleaved ? `interleaved after call ${interleaved.ranAfter} of ${step.op.op}: ` : '';
      const where = fault === undefined ? hex(dma.iova) : gpa !== undefined && gpa !== fault.addr ? `${hex(fault.addr)} (gpa ${hex(gpa)})` : hex(fault.addr);
      found.push({
        message: `${when}${describeDma(view, dma)}: at ${where}: ${fault ? arrows(fault) : 'FAIL'}`,
        details: {
          dev: dma.dev,
          iova: fault?.addr ?? dma.iova,
          ...(gpa !== undefined ? { gpa } : {}),
          ...(fault?.hpa !== undefined ? { hpa: fault.hpa } : {}),
          sizes: {
            ...(fault?.s1Size !== undefined ? { s1: fault.s1Size } : {}),
            ...(fault?.s2Size !== undefined ? { s2: fault.s2Size } : {}),
            ...(fault?.rmpSize !== undefined ? { rmp: fault.rmpSize } : {}),
            ...(fault?.checkedSize !== undefined ? { checked: fault.checkedSize } : {}),
          },
          fault: fault?.kind,
          reason: fault?.reason,
          ...(fault?.fromIotlb === true ? { fromIotlb: true } : {}),
          len: dma.len,
          write: dma.write,
          ...(dma.target ? { target: dma.target } : {}),
          ...(interleaved ? { during: interleaved.entry, after: interleaved.ranAfter } : {}),
        },
      });
    }
    return found.take();
  },
});
