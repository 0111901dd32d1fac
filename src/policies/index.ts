// The built-in policies, by name (the names are part of the CLI and repro contract).

import cutOnConvert from './cut-on-convert.ts';
import doubleValidate from './double-validate.ts';
import fwAtomicSmash from './fw-atomic-smash.ts';
import kvm4k from './kvm-4k.ts';
import kvmIommu4k from './kvm-iommu-4k.ts';
import linux from './linux.ts';
import linux2mPool from './linux-2m-pool.ts';
import quiesceDma from './quiesce-dma.ts';
import splitThenSmash from './split-then-smash.ts';
import vfioStatic from './vfio-static.ts';
import type { GuestPolicy, HostPolicy } from './types.ts';

export const hostPolicies: Readonly<Record<string, HostPolicy>> = Object.freeze({
  [kvm4k.name]: kvm4k,
  [kvmIommu4k.name]: kvmIommu4k,
  [vfioStatic.name]: vfioStatic,
  [cutOnConvert.name]: cutOnConvert,
  [splitThenSmash.name]: splitThenSmash,
  [quiesceDma.name]: quiesceDma,
  [fwAtomicSmash.name]: fwAtomicSmash,
});

export const guestPolicies: Readonly<Record<string, GuestPolicy>> = Object.freeze({
  [linux.name]: linux,
  [linux2mPool.name]: linux2mPool,
  [doubleValidate.name]: doubleValidate,
});

export { defineGuestPolicy, defineHostPolicy } from './types.ts';
export type * from './types.ts';
