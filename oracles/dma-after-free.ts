// dma-after-free: no DMA, through the S2 or a cached IOTLB entry, by any device, reaches a host
// frame that does not back this guest at that moment: a frame the VMM discarded and nothing pins
// any more (back in the host's free pool), or one handed out again to back another GPA. A host
// that frees a frame before the IOTLB flush, or skips the flush, lets a device write into memory
// that is someone else's (DOMAIN.md "QEMU's memory": VFIO unpins after the flush). The check is
// on the frame's state, not on its reuse: a DMA into a free frame is reported even if nothing
// took the frame yet.
//
// A discarded frame that an IO mapping still pins is NOT reported: it is still the guest's
// ("not a use-after-free, because VFIO is still pinning the page", QEMU commit 852f0048f3), and
// the stale mapping is npt-iommu-coherence's business.
//
// Event-based: it looks at the frames the step's DMAs really reached, in the state the host
// frames had when each DMA ran (DmaRecord.strayFrames).

import { SZ_4K, defineOracle, hex, type DmaRecord, type Step, type View } from 'cocofuzz/api';
import { Findings } from './lib/findings.ts';

const found = new Findings();

function checkDma(dma: DmaRecord, out: Findings): void {
  // The frames that did not back the page they were reached through, as the host saw them when
  // the DMA ran (a later step, or a later part of the same op, may have changed them since).
  if (dma.strayFrames === undefined) return;
  for (const stray of dma.strayFrames) {
    const { frame, gpa, hpa } = stray;
    const reused = frame.state === 'backing' && frame.kind === 'vmm';
    if (frame.state !== 'free' && !reused) continue;
    const piece = dma.result.pieces.find((p) => hpa + SZ_4K > p.hpa && hpa < p.hpa + p.len);
    const path = piece ? `${piece.fromIotlb ? 'IOTLB' : 'S2'}[${piece.checkedSize}]` : 'S2';
    const iova = piece ? Math.max(piece.iova, piece.iova - piece.hpa + hpa) : dma.iova;
    const what = reused ? `now backs gpa ${hex(frame.gpa ?? 0)}` : 'is in the host free pool';
    out.push({
      message:
        `dev ${dma.dev} DMA ${dma.write ? 'write' : 'read'} at ${hex(iova)} (gpa ${hex(gpa)}) -- ${path} --> ` +
        `hpa ${hex(hpa)}, a frame that ${what} ==> FAIL (${reused ? 'DMA into a reused frame' : 'DMA into a freed frame'})`,
      details: { dev: dma.dev, iova, gpa, hpa, fromIotlb: piece?.fromIotlb ?? false, frame: frame.state, ...(reused ? { backs: frame.gpa } : {}) },
    });
    return;
  }
}

export default defineOracle({
  name: 'dma-after-free',
  description: 'no DMA, through the S2 or a cached IOTLB entry, reaches a host frame that no longer backs this guest (freed, or reused)',
  severity: 'security',

  check(_view: View, step: Step) {
    for (const dma of step.dmas) checkDma(dma, found);
    return found.take();
  },
});
