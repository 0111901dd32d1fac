// One PCI device behind the IOMMU: its translation tables, its IOTLB and its TDI state.
//
// The host's S2 is an AMD v1 table (SNP requires V1 page tables: iommu_snp_enable(),
// drivers/iommu/amd/init.c) whose page-size bitmap the host picks when it creates the domain,
// e.g. 4K only for amd_iommu=nohugepages (Joerg Roedel, lore 20240905072240.253313-1-joro@8bytes.org).
// A "nested" device also has the guest's S1 under a vIOMMU, an x86_64 table (AMD v2 format).
// The TDI state follows the SEV-TIO guest flow (drivers/virt/coco/sev-guest/tio.c, lore
// 20260225053806.3311234-8-aik@amd.com): lock = BIND (CONFIG_LOCKED), accept = RUN, unlock = STOP.

import type { DeviceView } from '../api.ts';
import { Iotlb } from './iotlb.ts';
import { createPageTable, type PageTable } from './pagetable/index.ts';

export type TdiState = 'unlocked' | 'locked' | 'run';
export type IommuMode = 's2' | 'nested';

export interface DeviceOptions {
  id: number;
  /** The device can become a TIO device in RUN state. */
  trusted: boolean;
  iommu: IommuMode;
  /** The host's S2 page sizes in bytes (default: every amdv1 size). */
  ioPageSizes?: readonly number[];
}

export class Device implements DeviceView {
  readonly id: number;
  readonly trusted: boolean;
  readonly iommu: IommuMode;
  tdi: TdiState = 'unlocked';
  stalled = false;
  readonly s2: PageTable;
  readonly s1: PageTable | undefined;
  readonly iotlb: Iotlb;

  constructor(options: DeviceOptions) {
    this.id = options.id;
    this.trusted = options.trusted;
    this.iommu = options.iommu;
    this.s2 = createPageTable(
      options.ioPageSizes === undefined ? { format: 'amdv1' } : { format: 'amdv1', pgsizes: options.ioPageSizes },
    );
    this.s1 = options.iommu === 'nested' ? createPageTable({ format: 'x86_64' }) : undefined;
    this.iotlb = new Iotlb(options.id);
  }

  /** DMA below vTOM is private (checked against the guest's RMP entries) only in RUN. */
  get privateDma(): boolean {
    return this.trusted && this.tdi === 'run';
  }
}

/**
 * The TDISP transitions the firmware accepts: CONFIG_UNLOCKED -> CONFIG_LOCKED (BIND) -> RUN, and
 * STOP back to CONFIG_UNLOCKED from anywhere. Staying in the same state is a no-op.
 */
export function tdiTransitionAllowed(from: TdiState, to: TdiState): boolean {
  if (from === to || to === 'unlocked') return true;
  return (from === 'unlocked' && to === 'locked') || (from === 'locked' && to === 'run');
}
