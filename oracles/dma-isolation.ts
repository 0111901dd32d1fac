// dma-isolation: a device the guest has not accepted (untrusted, TDI not in RUN, or any device at
// or above vTOM) may only reach shared memory: "the IOMMU only does RMP enforcement, i.e., checks
// that all DMA I/O happens to/from shared memory" (Ashish Kalra, AMDESE/AMDSEV #109;
// research/amd-snp.md section 6, oracle 4). A wild DMA (a raw IOVA) from such a device must never
// reach guest private memory, whatever stale IO mapping or IOTLB entry it goes through. A trusted
// device in RUN is part of the guest's TCB: below vTOM its DMA is private, and it must land on a
// frame assigned to the guest at exactly the GPA it used (1:1 under vTOM), never on host-owned
// memory where private data would leak or be forged.
//
// An interleaved DMA (an op's `during`) is judged as it ran: with the device's TDI state and the
// RMP entries of that moment (DmaRecord.tdi, DmaRecord.rmpAtDma). The op goes on changing the RMP
// after it: KVM's private fault may assign a whole 2M entry around a frame an untrusted device
// read while it was still the hypervisor's (a false finding, judged at the end of the step), and a
// share rescinds and unassigns a page an untrusted device wrote while it was still private (a
// breach the end of the step no longer shows).
//
// Event-based: every piece of every DMA the step performed (DmaRecord.result.pieces are the pieces
// that transferred), checked against the RMP run by run (RmpView.runEnd), so a 2M or 1G piece
// costs what a 4K one does. No full sweep: a sweep cannot see DMAs. The path and the message are
// put in words only for a finding.

import { defaultRmpEntry, SZ_4K, defineOracle, formatSize, hex, type Step, type View } from 'cocofuzz/api';
import { deviceById } from './lib/devices.ts';
import { Findings } from './lib/findings.ts';

/** RMP entries view.rmp.load() fills (reused: no object per frame). */
const pieceEntry = defaultRmpEntry();

const found = new Findings();

export default defineOracle({
  name: 'dma-isolation',
  description: 'an untrusted device never reads or writes private memory; a wild DMA never reaches guest private memory',
  severity: 'security',

  check(view: View, step: Step) {
    for (const dma of step.dmas) {
      const device = deviceById(view, dma.dev);
      const kind = dma.legit ? 'DMA' : 'wild DMA';
      const access = dma.write ? 'write' : 'read';
      const tdi = dma.tdi ?? device?.tdi;
      // An interleaved DMA's frames, over all its pieces in order, are rmpAtDma's entries.
      let atDma = 0;
      for (const piece of dma.result.pieces) {
        const privatePath = device !== undefined && device.trusted && tdi === 'run' && piece.gpa < view.vtom;
        const first = Math.floor(piece.hpa / SZ_4K);
        const last = Math.floor((piece.hpa + piece.len - 1) / SZ_4K);
        const base = atDma;
        atDma += last - first + 1;
        for (let pfn = first; pfn <= last; pfn++) {
          const recorded = dma.rmpAtDma?.[base + pfn - first];
          const entry = recorded ?? view.rmp.load(pfn, pieceEntry);
          const hpa = Math.max(piece.hpa, pfn * SZ_4K);
          const gpa = piece.gpa + (hpa - piece.hpa);
          let problem = '';
          if (privatePath) {
            const gpa4K = gpa - (gpa % SZ_4K);
            if (!entry.assigned) problem = `trusted ${kind} ${access} reached host-owned memory`;
            else if (entry.asid !== view.asid) problem = `trusted ${kind} ${access} reached memory of asid ${entry.asid}`;
            else if (entry.gpa !== gpa4K) problem = `trusted ${kind} ${access} reached the guest page at ${hex(entry.gpa)}, not ${hex(gpa4K)}`;
          } else if (entry.assigned) {
            problem =
              entry.asid === view.asid
                ? `untrusted ${kind} ${access} reached guest private memory (gpa ${hex(entry.gpa)})`
                : `untrusted ${kind} ${access} reached assigned memory of asid ${entry.asid}`;
          }
          if (problem === '') {
            // Along a run of the RMP (same assigned and ASID, a GPA 4K further per frame, as the
            // piece's GPA is) every frame passes as this one did: on to its end.
            if (recorded === undefined) pfn = view.rmp.runEnd(pfn, last + 1) - 1;
            continue;
          }
          const path = `${piece.s1Size !== undefined ? `S1[${formatSize(piece.s1Size)}] -> ` : ''}S2[${formatSize(piece.s2Size)}]${piece.fromIotlb ? ' (IOTLB)' : ''} -- [${piece.checkedSize}] --> RMP[${entry.size}]`;
          found.push({
            message: `${kind} by dev ${dma.dev} at ${hex(piece.iova)}: ${path} at hpa ${hex(hpa)} ==> FAIL (${problem})`,
            details: {
              dev: dma.dev,
              iova: piece.iova,
              gpa,
              hpa,
              sizes: { ...(piece.s1Size !== undefined ? { s1: piece.s1Size } : {}), s2: piece.s2Size, rmp: entry.size, checked: piece.checkedSize },
              write: dma.write,
              legit: dma.legit,
              fromIotlb: piece.fromIotlb,
            },
          });
          break;
        }
      }
    }
    return found.take();
  },
});
