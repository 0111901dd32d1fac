// Checking what a policy hook returns, at the boundary where the actor takes it (issue 14, item
// 17). A hook that returns NaN, a negative mask or an object of the wrong shape is a bug in the
// policy: the check throws inside the hook's guard, so it becomes a `policy-error` finding that
// names the hook, the field and the value, never a crash of the engine and never a silent fix.

import type { DmaAttrs, HostPolicy, SwiotlbPlacement } from './types.ts';

/** A returned value as a message shows it: JSON where possible (NaN, functions and objects too). */
export function describeValue(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/** A byte count from 0 to `max`. */
export function checkCount(hook: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new Error(`${hook} returned ${describeValue(value)}: expected a byte count from 0 to ${max}`);
  }
  return value;
}

/** A mask of low bits (2^k - 1) no wider than its C type allows. */
function checkMask(field: string, value: unknown, bits: number): void {
  if (value === undefined) return;
  const ok = typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value < 2 ** bits && Number.isInteger(Math.log2(value + 1));
  if (!ok) throw new Error(`dmaAttrs returned ${field}: ${describeValue(value)}: expected a mask of low bits like 0xfff (2^k - 1, at most ${bits} bits)`);
}

const DMA_ATTR_BITS: Readonly<Record<string, number>> = {
  // struct device_dma_parameters.min_align_mask is an unsigned int.
  minAlignMask: 32,
  // swiotlb_tbl_map_single()'s alloc_align_mask is an unsigned int; the model keeps it below 2^31.
  allocAlignMask: 31,
  // dma_get_seg_boundary() is an unsigned long; addresses stop at 2^52.
  segmentBoundaryMask: 52,
};

export function checkDmaAttrs(value: unknown): DmaAttrs {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`dmaAttrs returned ${describeValue(value)}: expected an object`);
  const attrs = value as Record<string, unknown>;
  for (const key of Object.keys(attrs)) {
    const bits = Object.hasOwn(DMA_ATTR_BITS, key) ? DMA_ATTR_BITS[key] : undefined;
    if (bits === undefined) throw new Error(`dmaAttrs returned an unknown field "${key}"`);
    checkMask(key, attrs[key], bits);
  }
  return attrs;
}

export function checkPlacement(value: unknown): SwiotlbPlacement {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`swiotlbPool returned ${describeValue(value)}: expected { base, bytes }`);
  const placement = value as Record<string, unknown>;
  for (const field of ['base', 'bytes'] as const) {
    const v = placement[field];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Error(`swiotlbPool returned ${field}: ${describeValue(v)}: expected a non-negative integer`);
  }
  if (placement.forAlloc !== undefined && typeof placement.forAlloc !== 'boolean') {
    throw new Error(`swiotlbPool returned forAlloc: ${describeValue(placement.forAlloc)}: expected true or false`);
  }
  return placement as unknown as SwiotlbPlacement;
}

/**
 * What is wrong with a host policy's `privateFaultMaxSize`, if anything: not a size the default
 * private fault maps at, or given beside a `privateFault` hook (which would silently win). The
 * plugin loader refuses such a policy; a policy object handed to runCase() directly gets the same
 * message as a policy-error when its world boots.
 */
export function privateFaultMaxSizeProblem(policy: Pick<HostPolicy, 'privateFaultMaxSize' | 'privateFault'>): string | undefined {
  const maxSize = policy.privateFaultMaxSize;
  if (maxSize === undefined) return undefined;
  if (maxSize !== '4K' && maxSize !== '2M') return `"privateFaultMaxSize" must be "4K" or "2M", not ${describeValue(maxSize)}`;
  return policy.privateFault === undefined ? undefined : '"privateFaultMaxSize" sizes the default privateFault: with a privateFault hook, pass it as ctx.kvm.defaultPrivateFault(fault, { maxSize })';
}
