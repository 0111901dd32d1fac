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
// Event-based: it looks at the pieces of the step's DMAs (the frames they really reached).

import { SZ_4K, defineOracle, hex, type DmaRecord, type Finding, type Step, type View } from 'cocofuzz/api';

function checkDma(view: View, dma: DmaRecord, out: Finding[]): void {
  for (const piece of dma.result.pieces) {
    // Frame by frame: a piece stays inside one checked region (at most 2M), so at most 512 frames.
    // The S2 maps whole 4K pages, so the GPA and the HPA share their offset in the page.
    const first = piece.hpa - (piece.hpa % SZ_4K);
    for (let hpa = first; hpa < piece.hpa + piece.len; hpa += SZ_4K) {
      const gpa = piece.gpa - (piece.gpa % SZ_4K) + (hpa - first);
      const frame = view.host.frame(hpa);
      const reused = frame.state === 'backing' && frame.kind === 'vmm' && frame.gpa !== undefined && frame.gpa !== gpa;
      if (frame.state !== 'free' && !reused) continue;
      const path = piece.fromIotlb ? `IOTLB[${piece.checkedSize}]` : `S2[${piece.checkedSize}]`;
      const what = reused ? `now backs gpa ${hex(frame.gpa ?? 0)}` : 'is in the host free pool';
      out.push({
        message:
          `dev ${dma.dev} DMA ${dma.write ? 'write' : 'read'} at ${hex(Math.max(piece.iova, piece.iova - piece.hpa + hpa))} (gpa ${hex(gpa)}) -- ${path} --> ` +
          `hpa ${hex(hpa)}, a frame that ${what} ==> FAIL (${reused ? 'DMA into a reused frame' : 'DMA into a freed frame'})`,
        details: {
          dev: dma.dev,
          iova: Math.max(piece.iova, piece.iova - piece.hpa + hpa),
          gpa,
          hpa,
          fromIotlb: piece.fromIotlb,
          frame: frame.state,
          ...(reused ? { backs: frame.gpa } : {}),
        },
      });
      return;
    }
  }
}

export default defineOracle({
  name: 'dma-after-free',
  description: 'no DMA, through the S2 or a cached IOTLB entry, reaches a host frame that no longer backs this guest (freed, or reused)',
  severity: 'security',

  check(view: View, step: Step) {
    const out: Finding[] = [];
    for (const dma of step.dmas) checkDma(view, dma, out);
    return out;
  },
});
