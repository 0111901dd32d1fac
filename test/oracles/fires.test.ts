// Every built-in oracle fires on a minimal hand-written case, run through the real world with a
// policy (or a model) broken in the right way, and stays silent on the same case with the
// correct policies: no oracle is vacuous.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { Machine } from '../../src/model/machine.ts';
import { SwiotlbPool } from '../../src/guest/swiotlb.ts';
import { Rmp } from '../../src/model/rmp.ts';
import { Host } from '../../src/host/host.ts';
import type { Op } from '../../src/ops/types.ts';
import type { Oracle, Step, View } from '../../src/api.ts';
import brokenForgetsPsc from '../../corpus/policies/broken-forgets-psc.ts';
import brokenKvmMaxLevel from '../../corpus/policies/broken-kvm-max-level.ts';
import brokenLazyFlush from '../../corpus/policies/broken-lazy-flush.ts';
import brokenLeakyFree from '../../corpus/policies/broken-leaky-free.ts';
import brokenSkipInvalidate from '../../corpus/policies/broken-skip-invalidate.ts';
import brokenSizemIgnored from '../../corpus/policies/broken-sizem-ignored.ts';
import brokenUnpinBeforeFlush from '../../corpus/policies/broken-unpin-before-flush.ts';
import exampleOracle from '../../examples/example-oracle.ts';
import { gmem, oracleNamed, runSpec, type CaseSpec } from './cases.ts';
import { plantedPolicies } from '../../bench/planted/index.ts';
import { defineGuestPolicy, defineHostPolicy } from '../../src/policies/types.ts';

/** KVM answers a SIZEM fault by rebuilding the region with RMPUPDATEs: Validated is lost under the guest. */
const rebuildOnSizem = plantedPolicies('sizem-rmpupdate-rebuild').host;
/** An RMP that lets the host write assigned frames (the direct-map check passes them). */
function rmpLetsHostWrite(): void {
  vi.spyOn(Rmp.prototype, 'isAssigned').mockReturnValue(false);
  vi.spyOn(Rmp.prototype, 'regionHasAssigned').mockReturnValue(false);
}

/** The second search of a pool returns the slots of the first: CVE-2024-35814's double allocation (mocks SwiotlbPool.find). */
function allocateSlotsTwice(): void {
  type Find = SwiotlbPool['find'];
  const find: (this: SwiotlbPool, ...args: Parameters<Find>) => ReturnType<Find> = Reflect.get(SwiotlbPool.prototype, 'find');
  const first = new WeakMap<SwiotlbPool, ReturnType<Find>>();
  vi.spyOn(SwiotlbPool.prototype, 'find').mockImplementation(function (this: SwiotlbPool, ...args: Parameters<Find>) {
    const result = first.get(this) ?? find.apply(this, args);
    first.set(this, result);
    return result;
  });
}

/** A host that never does any of a conversion to shared (KVM returns to the guest with nothing done). */
const neverShares = defineHostPolicy({
  name: 'never-shares',
  description: 'completes no conversion to shared',
  convert: (ctx, request) => (request.to === 'shared' ? 0 : ctx.kvm.defaultConvert(request)),
});

const MB = 1024 * 1024;

/** The host writes a validated page (the guest wrote it first). */
const HOST_WRITES_VALIDATED: Op[] = [
  { op: 'accept', gpa: 2 * MB, size: '2M' },
  { op: 'touch', gpa: 2 * MB, write: true },
  { op: 'hw_host_write', hpa: gmem(2 * MB) },
];
/** The host writes a validated page while nothing maps it; then the NPT maps the same frame again. */
const HOST_WRITES_UNMAPPED: Op[] = [
  { op: 'accept', gpa: 2 * MB, size: '2M' },
  { op: 'hw_unmap', table: 'npt', gpa: 2 * MB, size: '2M' },
  { op: 'hw_host_write', hpa: gmem(2 * MB) },
  // A step that writes no memory: the record kept the tokens from before the host's write.
  { op: 'hw_map', table: 'npt', gpa: 2 * MB, hpa: gmem(2 * MB), size: '2M' },
];

interface Firing {
  oracle: string;
  /** Why it fires, for the test name. */
  why: string;
  broken: CaseSpec;
  /** The step it must fire at. */
  step: number;
  /** Words the message must contain. */
  message: RegExp;
  /** The same ops with correct policies (and, for a broken model, the real model): silent. */
  correct?: CaseSpec;
  /** Break the model for the broken run (restored after the test). */
  breakModel?: () => void;
  /** The violation is not the first one of the case: look among all of them. */
  among?: boolean;
  /** Only the incremental check can see it (it needs the step's events); the full sweep cannot. */
  incrementalOnly?: string;
}

/** Share a page, let device 1 cache its translation, make it private again, DMA through the cache. */
const UAF_OPS: Op[] = [
  { op: 'share', gpa: 0x401000, pages: 1 },
  { op: 'dma', dev: 1, iova: 0x401000, len: 4096, write: true },
  { op: 'unshare', gpa: 0x401000, pages: 1 },
  { op: 'dma', dev: 1, iova: 0x401000, len: 4096, write: true },
];
/** A 4K rescind on a 2M RMP entry: the SIZEM #NPF. */
const SIZEM_OPS: Op[] = [
  { op: 'accept', gpa: 4 * MB, size: '2M' },
  { op: 'share', gpa: 0x401000, pages: 1 },
];
const SHARE_UNSHARE: Op[] = [
  { op: 'share', gpa: 8 * MB, pages: 1 },
  { op: 'unshare', gpa: 8 * MB, pages: 1 },
];

const firings: Firing[] = [
  {
    oracle: 'io-s2-rmp-size',
    why: 'kvm-iommu-4k: 4K IO S2 over 2M RMP entries once a TDI runs',
    broken: {
      host: 'kvm-iommu-4k',
      guest: 'linux',
      ops: [
        { op: 'accept', gpa: 2 * MB, size: '2M' },
        { op: 'tdi_accept', dev: 0 },
      ],
    },
    step: 1,
    message: /a trusted DMA by dev 0 \(TDI in RUN\) to 0x200000 would fail: S2\[4K\] -- \[4K\] --> RMP\[2M\].*FAIL \(size mismatch\)/,
    correct: {
      host: 'cut-on-convert',
      guest: 'linux',
      ops: [
        { op: 'accept', gpa: 2 * MB, size: '2M' },
        { op: 'tdi_accept', dev: 0 },
      ],
    },
  },
  {
    oracle: 'npt-rmp-size',
    why: "KVM's max-level bug re-maps the NPT at 2M over a smashed RMP entry",
    broken: { host: brokenKvmMaxLevel, guest: 'linux', ops: [{ op: 'accept', gpa: 2 * MB, size: '4K' }] },
    step: 0,
    message: /NPT\[2M\] --> RMP\[4K\].*FAIL/,
    correct: { host: 'cut-on-convert', guest: 'linux', ops: [{ op: 'accept', gpa: 2 * MB, size: '4K' }] },
  },
  {
    oracle: 'rmp-well-formed',
    why: 'the adversary assigns a second frame at a GPA the guest already owns',
    broken: {
      host: 'cut-on-convert',
      guest: 'linux-2m-pool',
      adversary: true,
      ops: [
        { op: 'accept', gpa: 2 * MB, size: '2M' },
        { op: 'hw_rmpupdate', hpa: 0x10000, assigned: true, asid: 1, gpa: 2 * MB + 0x3000, size: '4K' },
      ],
    },
    step: 1,
    message: /gpa 0x203000 of asid 1 is assigned to 2 frames.*FAIL \(one GPA, two frames\)/,
  },
  {
    oracle: 'dma-liveness',
    why: 'kvm-iommu-4k: a trusted DMA into a private coherent buffer fails the size check',
    broken: {
      host: 'kvm-iommu-4k',
      guest: 'linux',
      ops: [
        { op: 'tdi_accept', dev: 0 },
        { op: 'alloc_coherent', dev: 0, bytes: 2 * MB },
        { op: 'dma', dev: 0, buf: 0, len: 4096, write: true },
      ],
    },
    step: 2,
    message: /trusted DMA write by dev 0 to buf 0 .*S2\[4K\] -- \[4K\] --> RMP\[2M\] ==> FAIL \(size mismatch\)/,
    correct: {
      host: 'cut-on-convert',
      guest: 'linux',
      ops: [
        { op: 'tdi_accept', dev: 0 },
        { op: 'alloc_coherent', dev: 0, bytes: 2 * MB },
        { op: 'dma', dev: 0, buf: 0, len: 4096, write: true },
      ],
    },
  },
  {
    oracle: 'dma-isolation',
    why: 'an IOMMU that skips the RMP check lets an untrusted device write guest private memory',
    broken: {
      host: 'cut-on-convert',
      guest: 'linux-2m-pool',
      adversary: true,
      ops: [
        { op: 'accept', gpa: 2 * MB, size: '2M' },
        { op: 'hw_map', table: 'iommu', gpa: 2 * MB, hpa: gmem(2 * MB), size: '4K' },
        { op: 'dma', dev: 1, iova: 2 * MB, len: 4096, write: true },
      ],
    },
    step: 2,
    message: /wild DMA by dev 1 at 0x200000: S2\[4K\] -- \[4K\] --> RMP\[2M\].*FAIL \(untrusted wild DMA write reached guest private memory/,
    breakModel: () => {
      vi.spyOn(Machine.prototype as unknown as { dmaRmpCheck: () => string }, 'dmaRmpCheck').mockReturnValue('');
    },
    // The same ops on the real model: the IOMMU's RMP check stops the DMA.
    correct: {
      host: 'cut-on-convert',
      guest: 'linux-2m-pool',
      adversary: true,
      ops: [
        { op: 'accept', gpa: 2 * MB, size: '2M' },
        { op: 'hw_map', table: 'iommu', gpa: 2 * MB, hpa: gmem(2 * MB), size: '4K' },
        { op: 'dma', dev: 1, iova: 2 * MB, len: 4096, write: true },
      ],
    },
  },
  {
    oracle: 'no-silent-remap',
    why: 'the adversary points the NPT of a validated GPA at another frame',
    broken: {
      host: 'cut-on-convert',
      guest: 'linux-2m-pool',
      adversary: true,
      ops: [
        { op: 'accept', gpa: 2 * MB, size: '2M' },
        { op: 'hw_unmap', table: 'npt', gpa: 2 * MB, size: '2M' },
        { op: 'hw_map', table: 'npt', gpa: 2 * MB, hpa: gmem(4 * MB), size: '2M' },
      ],
    },
    step: 2,
    message: /validated gpa 0x200000: NPT --> hpa 0x400000400000, but the guest validated hpa 0x400000200000.*FAIL \(backing frame changed/,
  },
  {
    oracle: 'no-silent-remap',
    why: 'an RMP that lets the host write an assigned page changes validated content',
    broken: {
      host: 'cut-on-convert',
      guest: 'linux-2m-pool',
      adversary: true,
      ops: HOST_WRITES_VALIDATED,
    },
    step: 2,
    incrementalOnly: "telling the guest's writes from the host's needs the step's calls",
    message: /validated gpa 0x200000 at hpa 0x400000200000: content of bytes 0x0\.\.0x7ff changed without a guest write ==> FAIL/,
    breakModel: rmpLetsHostWrite,
    correct: {
      host: 'cut-on-convert',
      guest: 'linux-2m-pool',
      adversary: true,
      ops: HOST_WRITES_VALIDATED,
    },
  },
  {
    oracle: 'no-silent-remap',
    why: 'the content of a validated page changes while nothing maps it, and the NPT maps the same frame again',
    broken: {
      host: 'cut-on-convert',
      guest: 'linux-2m-pool',
      adversary: true,
      ops: HOST_WRITES_UNMAPPED,
    },
    step: 3,
    incrementalOnly: "telling the guest's writes from the host's needs the step's calls",
    message: /validated gpa 0x200000 at hpa 0x400000200000: content of bytes 0x0\.\.0x7ff changed without a guest write ==> FAIL/,
    // No frame behind the GPA while the NPT leaf is gone (no host backing), and an RMP that lets
    // the host write the assigned frame.
    breakModel: () => {
      vi.spyOn(Host.prototype, 'backingHpa').mockReturnValue(-1);
      rmpLetsHostWrite();
    },
    correct: {
      host: 'cut-on-convert',
      guest: 'linux-2m-pool',
      adversary: true,
      ops: HOST_WRITES_UNMAPPED,
    },
  },
  {
    oracle: 'npt-iommu-coherence',
    why: 'vfio-static keeps the VMM frames mapped after the guest shares a page',
    broken: { host: 'vfio-static', guest: 'linux', ops: [{ op: 'share', gpa: 2 * MB, pages: 1 }] },
    step: 0,
    message: /shared gpa 0x[0-9a-f]+: .* --> hpa 0x[0-9a-f]+, but dev [01] S2\[[0-9]+M\] --> hpa 0x[0-9a-f]+ ==> FAIL \(stale IO mapping after conversion\)/,
    correct: { host: 'cut-on-convert', guest: 'linux', ops: [{ op: 'share', gpa: 2 * MB, pages: 1 }] },
  },
  {
    oracle: 'iotlb-stale',
    why: 'the flush point frees IO page tables without invalidating the IOTLB',
    broken: {
      host: brokenSkipInvalidate,
      guest: 'linux',
      ops: [
        { op: 'alloc_coherent', dev: 1, bytes: 4096 },
        { op: 'dma', dev: 1, buf: 0, len: 4096, write: true },
        { op: 'free_coherent', buf: 0 },
        { op: 'host_sync' },
      ],
    },
    step: 3,
    message: /dev 1 IOTLB\[4K\] 0x[0-9a-f]+ --> hpa 0x[0-9a-f]+ after the flush point, but at 0x[0-9a-f]+ S2\[none\]: S2 no longer maps it ==> FAIL \(stale IOTLB entry/,
    correct: {
      host: 'kvm-iommu-4k',
      guest: 'linux',
      ops: [
        { op: 'alloc_coherent', dev: 1, bytes: 4096 },
        { op: 'dma', dev: 1, buf: 0, len: 4096, write: true },
        { op: 'free_coherent', buf: 0 },
        { op: 'host_sync' },
      ],
    },
  },
  {
    oracle: 'swiotlb-slots',
    why: 'a slot search that hands out the same slots twice (CVE-2024-35814)',
    broken: {
      host: 'cut-on-convert',
      guest: 'linux',
      ops: [
        { op: 'map_single', dev: 1, bytes: 4096, dir: 'to_device' },
        { op: 'map_single', dev: 1, bytes: 4096, dir: 'to_device' },
      ],
    },
    step: 1,
    message: /swiotlb bounce buffers: map 0 .* and map 1 .* overlap ==> FAIL \(slots allocated twice\)/,
    breakModel: allocateSlotsTwice,
    correct: {
      host: 'cut-on-convert',
      guest: 'linux',
      ops: [
        { op: 'map_single', dev: 1, bytes: 4096, dir: 'to_device' },
        { op: 'map_single', dev: 1, bytes: 4096, dir: 'to_device' },
      ],
    },
  },
  {
    oracle: 'swiotlb-shared',
    why: 'set_memory_decrypted() without the PSC leaves the swiotlb pool private',
    broken: { host: 'cut-on-convert', guest: brokenForgetsPsc, ops: [{ op: 'map_single', dev: 1, bytes: 4096, dir: 'to_device' }] },
    step: 0,
    message: /swiotlb slots 0\.\.1 .*: the guest holds the page private ==> FAIL \(memory an untrusted device uses is not shared\)/,
    correct: { host: 'cut-on-convert', guest: 'linux', ops: [{ op: 'map_single', dev: 1, bytes: 4096, dir: 'to_device' }] },
  },
  {
    oracle: 'swiotlb-shared',
    why: 'dma_free_coherent() without set_memory_encrypted() frees shared pages',
    broken: {
      host: 'cut-on-convert',
      guest: brokenLeakyFree,
      ops: [
        { op: 'alloc_coherent', dev: 1, bytes: 4096 },
        { op: 'free_coherent', buf: 0 },
      ],
    },
    step: 1,
    message: /coherent buffer 0 \(pages, dev 1\) freed, but gpa 0x[0-9a-f]+ is still shared and not leaked ==> FAIL/,
    correct: {
      host: 'cut-on-convert',
      guest: 'linux',
      ops: [
        { op: 'alloc_coherent', dev: 1, bytes: 4096 },
        { op: 'free_coherent', buf: 0 },
      ],
    },
  },
  {
    oracle: 'conversion-order',
    why: 'double-validate shares without rescinding (oak PR 4218)',
    broken: { host: 'cut-on-convert', guest: 'double-validate', ops: [{ op: 'share', gpa: 2 * MB, pages: 1 }] },
    step: 0,
    message: /PSC\(0x200000, 4K\) to shared while it still holds gpa 0x200000 validated ==> FAIL \(no rescind before sharing\)/,
    correct: { host: 'cut-on-convert', guest: 'linux', ops: [{ op: 'share', gpa: 2 * MB, pages: 1 }] },
  },
  {
    oracle: 'conversion-order',
    why: 'double-validate validates twice after unsharing',
    broken: {
      host: 'cut-on-convert',
      guest: 'double-validate',
      ops: [
        { op: 'share', gpa: 2 * MB, pages: 1 },
        { op: 'unshare', gpa: 2 * MB, pages: 1 },
      ],
    },
    step: 1,
    among: true,
    message: /PVALIDATE\(0x200000, 4K, validate\) returned 255 \(NOUPDATE\).*FAIL \(page validated twice\)/,
    correct: {
      host: 'cut-on-convert',
      guest: 'linux',
      ops: [
        { op: 'share', gpa: 2 * MB, pages: 1 },
        { op: 'unshare', gpa: 2 * MB, pages: 1 },
      ],
    },
  },
  {
    oracle: 'bounce-integrity',
    why: 'vfio-static: the device writes the bounce slot through a stale IO mapping, the data never reaches the buffer',
    broken: {
      host: 'vfio-static',
      guest: 'linux',
      ops: [
        { op: 'map_single', dev: 1, bytes: 4096, dir: 'from_device' },
        { op: 'dma', dev: 1, map: 0, len: 4096, write: true },
        { op: 'unmap_single', map: 0 },
      ],
    },
    step: 2,
    message: /map 0 \(dev 1, from_device, 4096 bytes\): after unmap, orig 0x[0-9a-f]+ holds data #\d+, not what the slot .* ==> FAIL \(device data lost in the bounce\)/,
    correct: {
      host: 'cut-on-convert',
      guest: 'linux',
      ops: [
        { op: 'map_single', dev: 1, bytes: 4096, dir: 'from_device' },
        { op: 'dma', dev: 1, map: 0, len: 4096, write: true },
        { op: 'unmap_single', map: 0 },
      ],
    },
  },
  {
    oracle: 'bounce-integrity',
    why: 'vfio-static: the device reads a to_device bounce slot through a stale IO mapping',
    broken: {
      host: 'vfio-static',
      guest: 'linux',
      ops: [
        { op: 'map_single', dev: 1, bytes: 4096, dir: 'to_device' },
        { op: 'dma', dev: 1, map: 0, len: 4096, write: false },
      ],
    },
    step: 1,
    message: /dev 1 read map 0 \(to_device\) at slot 0x[0-9a-f]+: data #\d+, but the CPU put #\d+ there .* ==> FAIL \(device reads the wrong bounce data\)/,
    correct: {
      host: 'cut-on-convert',
      guest: 'linux',
      ops: [
        { op: 'map_single', dev: 1, bytes: 4096, dir: 'to_device' },
        { op: 'dma', dev: 1, map: 0, len: 4096, write: false },
      ],
    },
  },
  {
    oracle: 'dma-after-free',
    why: 'the IO unmap releases the pins before the flush: a cached translation reaches the freed frame',
    broken: { host: brokenUnpinBeforeFlush, guest: 'linux', ops: UAF_OPS },
    step: 3,
    message: /dev 1 DMA write at 0x401000 \(gpa 0x401000\) -- IOTLB\[4K\] --> hpa 0x[0-9a-f]+, a frame that is in the host free pool ==> FAIL \(DMA into a freed frame\)/,
    // A stale IOTLB entry to a frame VFIO still pins is not a use-after-free (QEMU 852f0048f3).
    correct: { host: brokenLazyFlush, guest: 'linux', ops: UAF_OPS },
  },
  {
    oracle: 'dma-after-free',
    why: 'the flush skips the invalidation and VFIO unpins: seen even when nothing reused the frame',
    broken: { host: brokenSkipInvalidate, guest: 'linux', ops: [...UAF_OPS.slice(0, 3), { op: 'host_sync' }, UAF_OPS[3]!] },
    step: 4,
    message: /IOTLB\[4K\] --> hpa 0x[0-9a-f]+, a frame that is in the host free pool ==> FAIL \(DMA into a freed frame\)/,
    correct: { host: 'kvm-iommu-4k', guest: 'linux', ops: [...UAF_OPS.slice(0, 3), { op: 'host_sync' }, UAF_OPS[3]!] },
  },
  {
    oracle: 'guest-alive',
    why: 'a host that answers SIZEM without PSMASH livelocks the 4K rescind',
    broken: { host: brokenSizemIgnored, guest: 'linux-2m-pool', ops: SIZEM_OPS },
    step: 1,
    message: /PVALIDATE 0x401000 4K rescind: livelock, the same #NPF 3 times with no RMP or NPT change .* ==> FAIL \(guest livelock\)/,
    correct: { host: 'kvm-iommu-4k', guest: 'linux-2m-pool', ops: SIZEM_OPS },
  },
  {
    oracle: 'guest-alive',
    why: "the same host kills today's Linux at boot (the page-aligned swiotlb pool's 4K rescind); the first step reports it",
    broken: { host: brokenSizemIgnored, guest: 'linux', ops: [{ op: 'host_sync' }] },
    step: 0,
    message: /^at boot: PVALIDATE 0x[0-9a-f]+ 4K rescind: livelock.* ==> FAIL \(guest livelock\)/,
    correct: { host: 'kvm-iommu-4k', guest: 'linux', ops: [{ op: 'host_sync' }] },
  },
  {
    oracle: 'guest-alive',
    why: 'a rescind finds the page no longer validated (CF=1) after the host rebuilt the RMP entries',
    broken: { host: rebuildOnSizem, guest: 'linux-2m-pool', ops: [{ op: 'accept', gpa: 4 * MB, size: '2M' }, { op: 'share', gpa: 0x401000, pages: 1 }] },
    step: 1,
    message: /PVALIDATE 0x401000 4K rescind: already in that state \(CF=1\).* ==> FAIL \(guest terminated by pvalidate\)/,
    correct: { host: 'cut-on-convert', guest: 'linux-2m-pool', ops: [{ op: 'accept', gpa: 4 * MB, size: '2M' }, { op: 'share', gpa: 0x401000, pages: 1 }] },
  },
  {
    oracle: 'guest-alive',
    why: 'a private access to a page the host left not validated: the #VC handler terminates the guest',
    broken: {
      host: rebuildOnSizem,
      guest: 'linux-2m-pool',
      ops: [{ op: 'accept', gpa: 4 * MB, size: '2M' }, { op: 'share', gpa: 0x401000, pages: 1 }, { op: 'touch', gpa: 0x402000, write: true }],
    },
    step: 2,
    message: /private write of 0x402000: #VC not validated.* ==> FAIL \(guest terminated by vc\)/,
    among: true,
    correct: {
      host: 'cut-on-convert',
      guest: 'linux-2m-pool',
      ops: [{ op: 'accept', gpa: 4 * MB, size: '2M' }, { op: 'share', gpa: 0x401000, pages: 1 }, { op: 'touch', gpa: 0x402000, write: true }],
    },
  },
  {
    oracle: 'guest-alive',
    why: 'a host that never completes a PSC to shared: vmgexit_psc() would loop forever',
    broken: { host: neverShares, guest: 'linux-2m-pool', ops: [{ op: 'share', gpa: 0x401000, pages: 1 }] },
    step: 0,
    // The boot pool's conversion dies first (reported at step 0 too); the share's follows.
    message: /^PSC to shared at 0x401000: no progress after 8 exits.* ==> FAIL \(guest livelock\)/,
    among: true,
    correct: { host: 'cut-on-convert', guest: 'linux-2m-pool', ops: [{ op: 'share', gpa: 0x401000, pages: 1 }] },
  },
  {
    oracle: 'guest-alive',
    why: 'double-validate: the second PVALIDATE finds the page validated (CF=1) and pval_pages() terminates',
    broken: { host: 'cut-on-convert', guest: 'double-validate', ops: SHARE_UNSHARE },
    step: 1,
    message: /PVALIDATE 0x800000 4K validate: already in that state \(CF=1\).* ==> FAIL \(guest terminated by pvalidate\)/,
    correct: { host: 'cut-on-convert', guest: 'linux', ops: SHARE_UNSHARE },
  },
];

describe('every built-in oracle fires on a minimal broken case', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it.each(firings)('$oracle: $why', (firing) => {
    const oracle = oracleNamed(firing.oracle);
    firing.breakModel?.();
    for (const fullCheck of firing.incrementalOnly === undefined ? [false, true] : [false]) {
      const result = runSpec(firing.broken, [oracle], { fullCheck, allViolations: firing.among === true });
      expect(result.oracleErrors).toEqual([]);
      expect(result.verdict, `fullCheck ${fullCheck}`).toBe('violation');
      const violation = firing.among ? (result.violations.find((v) => firing.message.test(v.message)) ?? result.violations[0]!) : result.violations[0]!;
      expect(violation.oracle).toBe(firing.oracle);
      expect(violation.step, `fullCheck ${fullCheck}: ${violation.message}`).toBe(firing.step);
      expect(violation.message).toMatch(firing.message);
    }
    vi.restoreAllMocks();
    if (firing.correct) {
      const clean = runSpec(firing.correct, [oracle]);
      expect(clean.oracleErrors).toEqual([]);
      expect(clean.violations.map((v) => v.message)).toEqual([]);
    }
  });

  it('covers every built-in oracle', async () => {
    const { builtinOracles } = await import('../../oracles/index.ts');
    expect(new Set(firings.map((f) => f.oracle))).toEqual(new Set(builtinOracles.map((o) => o.name)));
    expect(builtinOracles.map((o) => o.name)).toEqual([
      'io-s2-rmp-size',
      'npt-rmp-size',
      'rmp-well-formed',
      'dma-liveness',
      'dma-isolation',
      'no-silent-remap',
      'npt-iommu-coherence',
      'iotlb-stale',
      'swiotlb-slots',
      'swiotlb-shared',
      'conversion-order',
      'bounce-integrity',
      'dma-after-free',
      'guest-alive',
    ]);
  });
});

describe('dma-isolation judges an interleaved DMA by the RMP it found', () => {
  const isolation = [oracleNamed('dma-isolation')];
  afterEach(() => vi.restoreAllMocks());

  it('fires on an untrusted write into a private page that the op then shares (the end of the step shows it shared)', () => {
    vi.spyOn(Machine.prototype as unknown as { dmaRmpCheck: () => string }, 'dmaRmpCheck').mockReturnValue('');
    const ops: Op[] = [
      { op: 'accept', gpa: 2 * MB, size: '2M' },
      { op: 'hw_map', table: 'iommu', gpa: 2 * MB + 4096, hpa: gmem(2 * MB + 4096), size: '4K' },
      { op: 'share', gpa: 2 * MB + 4096, pages: 1, during: [{ after: 0, op: { op: 'dma', dev: 1, iova: 2 * MB + 4096, len: 4096, write: true } }] },
    ];
    const result = runSpec({ host: 'kvm-iommu-4k', guest: 'linux-2m-pool', adversary: true, ops }, isolation);
    expect(result.violations.map((v) => `${v.step} ${v.message}`)).toEqual([
      expect.stringMatching(/^2 wild DMA by dev 1 at 0x201000: S2\[4K\] -- \[4K\] --> RMP\[2M\] .*FAIL \(untrusted wild DMA write reached guest private memory \(gpa 0x201000\)\)$/),
    ]);
  });

  it('stays silent on an untrusted read of a frame that was the hypervisor\'s then, and that the op assigns after it', () => {
    // vfio-static maps all of guest memory statically; in the in-place world a guest_memfd frame
    // not yet faulted in is unassigned, and the accept's private fault then assigns its 2M entry.
    const ops: Op[] = [{ op: 'accept', gpa: 0x2a00000, size: '4K', during: [{ after: 0, op: { op: 'dma', dev: 0, iova: 0x2ba6000, len: 64, write: false } }] }];
    const result = runSpec({ host: 'vfio-static', guest: 'linux', config: { discard: 'in-place' }, ops }, isolation);
    expect(result.violations).toEqual([]);
  });
});

describe('dma-liveness through a stale IOTLB entry', () => {
  it('says the size came from the IOTLB, not the S2 (which the host cut to 4K without invalidating)', async () => {
    const { followRmpIo, FOLLOW_RMP_IO_PAGE_SIZES } = await import('../../src/policies/follow-rmp.ts');
    // A smash that cuts the IO leaf to 4K onto the same frames and never invalidates the 2M entry.
    const cutNoFlush = defineHostPolicy({
      name: 'cut-no-flush',
      description: 'cuts the IO leaf on a smash, never invalidates the IOTLB',
      ioPageSizes: FOLLOW_RMP_IO_PAGE_SIZES,
      ioIgnoresUnseen: true,
      io(ctx, event) {
        if (event.kind !== 'smash') return followRmpIo(ctx, event);
        for (const dev of event.devices) {
          const leaf = ctx.machine.device(dev).s2.leafAt(event.gpa);
          if (leaf !== undefined && leaf.size >= 2 * MB) ctx.machine.ioSplit(dev, leaf.iova, 4096);
        }
      },
      flush(ctx) {
        for (const device of ctx.iommu.devices()) ctx.iommu.flush(device.id, { ranges: [] });
      },
    });
    const ops: Op[] = [
      { op: 'tdi_accept', dev: 0 },
      { op: 'alloc_coherent', dev: 0, bytes: 8192 },
      { op: 'dma', dev: 0, buf: 0, len: 4096, write: true },
      { op: 'host_split', gpa: 0 },
      { op: 'host_sync' },
      { op: 'dma', dev: 0, buf: 0, offset: 4096, len: 4096, write: true },
    ];
    const result = runSpec({ host: cutNoFlush, guest: 'linux-2m-pool', ops }, [oracleNamed('dma-liveness')]);
    expect(result.violations.map((v) => `${v.step} ${v.message}`)).toEqual([expect.stringMatching(/^5 .*: S2\[2M\] \(IOTLB\) -- \[2M\] --> RMP\[4K\] ==> FAIL \(size mismatch\)$/)]);
    expect(result.violations[0]?.details?.fromIotlb).toBe(true);
  });
});

describe('swiotlb: a guest that picks or bounces its own way', () => {
  const TO_DEVICE = (bytes: number): Op => ({ op: 'map_single', dev: 1, bytes, dir: 'to_device' });

  it('bounce-integrity: a from_device map that does not copy the original into the slot (CVE-2022-0854) copies a stale slot back', () => {
    // Before aa6f8dcbab47, swiotlb_tbl_map_single() skipped the bounce for DMA_FROM_DEVICE: the
    // chunks the device does not write come back from the slot's previous user.
    const lowestSlots = defineGuestPolicy({
      name: 'lowest-slots',
      description: 'the lowest free page-aligned slots (so that a freed slot is used again)',
      swiotlbSlots(_ctx, search, pool) {
        for (let i = 0; i + search.nslots <= pool.nslabs; i += 2) if (pool.freeRun(i) >= search.nslots) return i;
        return -1;
      },
    });
    const noMapCopy = defineGuestPolicy({
      ...lowestSlots,
      name: 'no-map-copy-from-device',
      description: 'map skips the copy for from_device; the lowest free page-aligned slots',
      bounce: (_ctx, request) => (request.when === 'map' ? request.map.dir !== 'from_device' : request.map.dir !== 'to_device'),
    });
    const ops: Op[] = [
      TO_DEVICE(4096),
      { op: 'unmap_single', map: 0 },
      { op: 'touch', gpa: 0x160000, write: true },
      { op: 'map_single', dev: 1, bytes: 4096, dir: 'from_device' },
      { op: 'dma', dev: 1, map: 0, offset: 2048, len: 2048, write: true },
      { op: 'unmap_single', map: 0 },
    ];
    const oracles = [oracleNamed('bounce-integrity')];
    const broken = runSpec({ host: 'kvm-4k', guest: noMapCopy, config: { cpus: 2 }, ops }, oracles);
    expect(broken.violations.map((v) => `${v.step} ${v.message}`)).toEqual([expect.stringMatching(/^5 map 1 \(dev 1, from_device, 4096 bytes\): after unmap, orig 0x[0-9a-f]+ holds data #\d+, not what the slot at 0x[0-9a-f]+ was given .*FAIL/)]);
    // The same slots with Linux's bounce: clean.
    expect(runSpec({ host: 'kvm-4k', guest: lowestSlots, config: { cpus: 2 }, ops }, oracles).violations).toEqual([]);
  });

  it('bounce-integrity: slots handed out twice (CVE-2024-35814) carry the other mapping\'s data back', () => {
    // Two live mappings on the same slots: what the DMA API puts there for the second (the
    // device's write through it, or its own bounce at map time) is never content the first may
    // hold, so the first's copy back brings the second's data into its buffer. (A wild write or
    // the owner's own would be taken.)
    const written: Op[] = [
      { op: 'map_single', dev: 1, bytes: 4096, dir: 'from_device' },
      { op: 'map_single', dev: 1, bytes: 4096, dir: 'from_device' },
      { op: 'dma', dev: 1, map: 1, len: 4096, write: true },
      { op: 'unmap_single', map: 0 },
    ];
    const bounced: Op[] = [
      { op: 'map_single', dev: 1, bytes: 4096, dir: 'from_device' },
      { op: 'map_single', dev: 1, bytes: 4096, dir: 'to_device' },
      { op: 'unmap_single', map: 0 },
    ];
    const oracles = [oracleNamed('bounce-integrity')];
    for (const [ops, step] of [[written, 3], [bounced, 2]] as const) {
      // Linux's slots: the second mapping gets slots of its own, and the data arrives.
      expect(runSpec({ host: 'kvm-4k', guest: 'linux', ops: [...ops] }, oracles).violations).toEqual([]);
      allocateSlotsTwice();
      let broken: ReturnType<typeof runSpec>;
      try {
        broken = runSpec({ host: 'kvm-4k', guest: 'linux', ops: [...ops] }, oracles);
      } finally {
        vi.restoreAllMocks();
      }
      expect(broken.violations.map((v) => `${v.step} ${v.message}`)).toEqual([expect.stringMatching(new RegExp(`^${step} map 0 \\(dev 1, from_device, 4096 bytes\\): after unmap, orig 0x[0-9a-f]+ holds data #\\d+, not what the slot at 0x[0-9a-f]+ was given .*FAIL \\(device data lost in the bounce\\)`))]);
    }
  });

  it('bounce-integrity: a wild write racing a copy back may land after it (the buffer keeps the slot\'s old data)', () => {
    // An interleaved write is one more content a slot may hold, not the only one: whether it came
    // before or after the op's copy is the race the step ran. Here it lands after the copy back.
    const map: Op = { op: 'map_single', dev: 1, bytes: 4096, dir: 'from_device' };
    let slot = 0;
    const seeSlot = { ...oracleNamed('bounce-integrity'), name: 'see-slot', check: (view: View) => void (slot = view.guest.mappings[0]?.iova ?? 0) } as Oracle;
    runSpec({ host: 'kvm-4k', guest: 'linux', ops: [map] }, [seeSlot]);
    expect(slot).toBeGreaterThan(0);
    let raced: Step | undefined;
    const seeStep = { ...seeSlot, name: 'see-step', check: (_view: View, step: Step) => void (step.index === 2 && (raced = step)) } as Oracle;
    const ops: Op[] = [
      map,
      { op: 'dma', dev: 1, map: 0, len: 4096, write: true },
      { op: 'sync', map: 0, during: [{ after: 1, op: { op: 'dma', dev: 1, iova: slot, len: 2048, write: true } }] },
    ];
    const result = runSpec({ host: 'kvm-4k', guest: 'linux', ops }, [oracleNamed('bounce-integrity'), seeStep]);
    // The wild write ran, after the copy back.
    expect(raced?.calls.map((call) => `${call.prim}${call.during === undefined ? '' : '*'}`)).toEqual(['guest_copy', 'dma*']);
    expect(raced?.dmas[0]?.result.ok).toBe(true);
    expect(result.violations).toEqual([]);
  });

  it('swiotlb-slots: a slot choice that ignores alloc_align_mask and the segment boundary', () => {
    const attrs = { minAlignMask: 0, allocAlignMask: 0xffff, segmentBoundaryMask: 0xffff };
    const strictDevice = defineGuestPolicy({ name: 'strict-device', description: 'dev 1 wants 64K alignment and 64K segments', dmaAttrs: (_ctx, request) => (request.dev === 1 ? attrs : {}) });
    const ignoring = defineGuestPolicy({
      ...strictDevice,
      name: 'ignores-alignment',
      description: 'picks slots page-aligned, with no alloc_align_mask and no segment boundary',
      swiotlbSlots: (_ctx, search, pool) => pool.kernelSearch({ ...search, slotAlignMask: 0xfff, segmentBoundaryMask: undefined }),
    });
    const ops = [TO_DEVICE(8192), TO_DEVICE(49152)];
    const oracles = [oracleNamed('swiotlb-slots')];
    const messages = runSpec({ host: 'kvm-4k', guest: ignoring, config: { cpus: 2 }, ops }, oracles, { allViolations: true }).violations.map((v) => v.message);
    expect(messages).toEqual(expect.arrayContaining([expect.stringMatching(/not aligned to alloc_align_mask 0xffff ==> FAIL \(alloc_align_mask not honoured\)/), expect.stringMatching(/crosses the device's segment boundary \(mask 0xffff\) ==> FAIL \(segment boundary crossed\)/)]));
    expect(runSpec({ host: 'kvm-4k', guest: strictDevice, config: { cpus: 2 }, ops }, oracles).violations).toEqual([]);
  });

  it('swiotlb-slots: no page alignment is owed when the caller gives an alloc_align_mask', () => {
    // swiotlb_search_pool_area() page-aligns a mapping of a page or more only without alloc_align_mask.
    const smallAlign = defineGuestPolicy({ name: 'small-align', description: 'dev 1 alloc_align_mask 0x7ff', dmaAttrs: (_ctx, request) => (request.dev === 1 ? { minAlignMask: 0, allocAlignMask: 0x7ff } : {}) });
    const result = runSpec({ host: 'kvm-4k', guest: smallAlign, config: { cpus: 1 }, ops: [TO_DEVICE(2048), TO_DEVICE(4096)] }, [oracleNamed('swiotlb-slots')]);
    expect(result.violations).toEqual([]);
  });
});

describe('iotlb-stale at host_sync', () => {
  it('fires when host_sync leaves the invalidations queued (incremental check only: the sweep cannot see the op)', () => {
    const ops: Op[] = [
      { op: 'alloc_coherent', dev: 1, bytes: 4096 },
      { op: 'dma', dev: 1, buf: 0, len: 4096, write: true },
      { op: 'free_coherent', buf: 0 },
      { op: 'host_sync' },
    ];
    const result = runSpec({ host: brokenLazyFlush, guest: 'linux', ops }, [oracleNamed('iotlb-stale')]);
    expect(result.verdict).toBe('violation');
    expect(result.violations[0]).toMatchObject({ oracle: 'iotlb-stale', step: 3 });
    // The full sweep judges by flushPending alone, and this host never gets there.
    expect(runSpec({ host: brokenLazyFlush, guest: 'linux', ops }, [oracleNamed('iotlb-stale')], { fullCheck: true }).verdict).toBe('clean');
  });
});

describe('the example oracle of the README', () => {
  it('flags a PSMASH and is silent when nothing smashes', () => {
    const smash: Op[] = [{ op: 'accept', gpa: 2 * MB, size: '4K' }];
    const result = runSpec({ host: 'kvm-iommu-4k', guest: 'linux', ops: smash }, [exampleOracle]);
    expect(result.verdict).toBe('violation');
    expect(result.violations[0]).toMatchObject({ oracle: 'no-psmash', step: 0, severity: 'correctness' });
    expect(result.violations[0]!.message).toMatch(/PSMASH of RMP\[2M\] at hpa 0x400000200000 ==> FAIL/);
    const whole: Op[] = [{ op: 'accept', gpa: 2 * MB, size: '2M' }];
    expect(runSpec({ host: 'kvm-iommu-4k', guest: 'linux', ops: whole }, [exampleOracle]).verdict).toBe('clean');
  });
});
