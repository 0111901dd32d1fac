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

/**
 * Marks the built-in policy objects, by a registered symbol (Symbol.for), so that a built-in is
 * recognised as one when it comes from another copy of cocofuzz than the one running: a plugin
 * file that re-exports `hostPolicies['kvm-4k']` from its project's own node_modules, loaded by a
 * global or npx install (engine/select.ts refuses user policies under a built-in's name).
 */
export const BUILTIN_POLICY: unique symbol = Symbol.for('cocofuzz.builtin-policy') as never;
for (const policy of [...Object.values(hostPolicies), ...Object.values(guestPolicies)]) {
  Object.defineProperty(policy, BUILTIN_POLICY, { value: true });
}

export { defineGuestPolicy, defineHostPolicy } from './types.ts';
export type * from './types.ts';
