// The case config (DESIGN.md, "Repro file"): every field but `arch` has a default, so
// `{ "arch": "snp" }` is a valid config. Parsing fills the defaults; encoding writes every field
// back, so a repro file says exactly what ran.

import { SZ_2M, alignDown, alignUp, formatSize, hex, parseAddress, parseSize } from '../model/size.ts';
import { GMEM_BASE, VMM_RAM_BASE } from '../model/layout.ts';
import { FormatError } from './errors.ts';
import type { Config, DeviceConfig, DiscardMode } from './types.ts';

export const DEFAULT_HOST_POLICY = 'kvm-iommu-4k';
export const DEFAULT_GUEST_POLICY = 'linux';
const DEFAULT_GUEST_MEMORY = 64 * 1024 * 1024;
/** The most guest memory the host layout holds: guest_memfd frames fill [2^46, 2^47). */
export const MAX_GUEST_MEMORY = VMM_RAM_BASE - GMEM_BASE;

/** One trusted (TIO-capable) and one untrusted device, so both DMA paths are exercised. */
export const DEFAULT_DEVICES: readonly DeviceConfig[] = [
  { id: 0, trusted: true, iommu: 's2', dmaMask: 64 },
  { id: 1, trusted: false, iommu: 's2', dmaMask: 64 },
];

/** A device's coherent DMA mask unless it says otherwise: a 64-bit capable device. */
export const DEFAULT_DMA_MASK = 64;

/** QEMU's default: kvm_convert_memory() discards the shared page on conversion to private. */
export const DEFAULT_DISCARD: DiscardMode = 'on-private';
const DISCARD_MODES: readonly DiscardMode[] = ['on-private', 'none', 'in-place'];
/** dma_direct_supported() refuses masks below ZONE_DMA's 24 bits on x86. */
export const MIN_DMA_MASK = 24;

/**
 * Linux sizes the CoCo swiotlb at 6% of RAM clamped to [64M, 1G] (mem_encrypt_setup_arch()).
 * Simulated guests are small, so the default is also capped at 1/8 of guest memory, in 2M units.
 */
export function defaultSwiotlbSize(guestMemory: number): number {
  const linux = Math.min(Math.max(guestMemory * 0.06, 64 * 1024 * 1024), 1024 * 1024 * 1024);
  return Math.max(SZ_2M, alignDown(Math.min(linux, guestMemory / 8), SZ_2M));
}

/**
 * The largest swiotlb pool the model takes: it keeps state per 2K slot (as Linux keeps an
 * io_tlb_slot per slot), about 30 MB of memory per GiB of pool (a 1T guest booted with a 16G pool
 * used 538 MB). A 32T pool asked for a terabyte and ended in V8's out-of-memory abort after a
 * minute and a half; past this size the config is refused instead, naming the field. Linux's own
 * default is at most 1G.
 */
export const MAX_SWIOTLB = 64 * 1024 ** 3;

export const CONFIG_FIELDS = new Set([
  'arch',
  'guestMemory',
  'hugeBacking',
  'devices',
  'swiotlb',
  'cpus',
  'vtom',
  'hostPolicy',
  'guestPolicy',
  'adversary',
  'discard',
]);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function sizeField(raw: unknown, field: string, min: number): number {
  const value = typeof raw === 'string' || typeof raw === 'number' ? parseSize(raw) : undefined;
  if (value === undefined || value < min || value % 4096 !== 0) {
    throw new FormatError(field, `expected a size like "64M" (a multiple of 4K, at least ${formatSize(min)}), got ${JSON.stringify(raw)}`);
  }
  return value;
}

function parseDevice(raw: unknown, index: number): DeviceConfig {
  const field = `config.devices[${index}]`;
  if (!isRecord(raw)) throw new FormatError(field, 'expected an object { id, trusted, iommu, dmaMask? }');
  for (const key of Object.keys(raw)) {
    if (!['id', 'trusted', 'iommu', 'dmaMask'].includes(key)) throw new FormatError(`${field}.${key}`, 'unknown field');
  }
  const id = raw.id ?? index;
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) throw new FormatError(`${field}.id`, 'expected a non-negative integer');
  const trusted = raw.trusted ?? false;
  if (typeof trusted !== 'boolean') throw new FormatError(`${field}.trusted`, 'expected true or false');
  const iommu = raw.iommu ?? 's2';
  if (iommu !== 's2' && iommu !== 'nested') throw new FormatError(`${field}.iommu`, 'expected "s2" or "nested"');
  const dmaMask = raw.dmaMask ?? DEFAULT_DMA_MASK;
  if (typeof dmaMask !== 'number' || !Number.isInteger(dmaMask) || dmaMask < MIN_DMA_MASK || dmaMask > 64) {
    throw new FormatError(`${field}.dmaMask`, `expected the coherent DMA mask in bits, an integer from ${MIN_DMA_MASK} to 64, got ${JSON.stringify(dmaMask)}`);
  }
  return { id, trusted, iommu, dmaMask };
}

export function parseConfig(raw: unknown): Config {
  if (!isRecord(raw)) throw new FormatError('config', 'expected an object with at least { "arch": "snp" }');
  for (const key of Object.keys(raw)) {
    if (!CONFIG_FIELDS.has(key)) throw new FormatError(`config.${key}`, 'unknown field');
  }
  if (raw.arch !== 'snp') throw new FormatError('config.arch', `expected "snp", got ${JSON.stringify(raw.arch)}`);
  const guestMemory = raw.guestMemory === undefined ? DEFAULT_GUEST_MEMORY : sizeField(raw.guestMemory, 'config.guestMemory', 4 * SZ_2M);
  // The host keeps guest_memfd frames at GMEM_BASE + GPA, below the VMM's RAM block at
  // VMM_RAM_BASE (model/layout.ts): a larger guest would overlap it. A config error, not a
  // policy-error blamed on whichever policy first touches the overlap.
  if (guestMemory > MAX_GUEST_MEMORY) {
    throw new FormatError('config.guestMemory', `at most ${formatSize(MAX_GUEST_MEMORY)} (the simulated host's physical layout), got ${JSON.stringify(raw.guestMemory)}`);
  }
  const hugeBacking = raw.hugeBacking ?? true;
  if (typeof hugeBacking !== 'boolean') throw new FormatError('config.hugeBacking', 'expected true or false');
  let devices: DeviceConfig[] = DEFAULT_DEVICES.map((d) => ({ ...d }));
  if (raw.devices !== undefined) {
    if (!Array.isArray(raw.devices)) throw new FormatError('config.devices', 'expected an array');
    devices = raw.devices.map(parseDevice);
    devices.forEach((device, index) => {
      if (device.id !== index) throw new FormatError(`config.devices[${index}].id`, `device ids must be 0..n-1 in order, expected ${index}`);
    });
  }
  const swiotlb = raw.swiotlb === undefined ? defaultSwiotlbSize(guestMemory) : sizeField(raw.swiotlb, 'config.swiotlb', 256 * 1024);
  if (swiotlb > guestMemory / 2) throw new FormatError('config.swiotlb', `the pool must fit in half of guest memory (${formatSize(guestMemory)})`);
  if (swiotlb > MAX_SWIOTLB) throw new FormatError('config.swiotlb', `${formatSize(swiotlb)} is past the largest pool the model takes, ${formatSize(MAX_SWIOTLB)} (it keeps state per 2K slot, about 30 MB per GiB of pool)`);
  const cpus = raw.cpus ?? 2;
  if (typeof cpus !== 'number' || !Number.isInteger(cpus) || cpus < 1 || cpus > 256) throw new FormatError('config.cpus', 'expected an integer from 1 to 256');
  let vtom = alignUp(guestMemory, SZ_2M);
  if (raw.vtom !== undefined) {
    const parsed = typeof raw.vtom === 'string' || typeof raw.vtom === 'number' ? parseAddress(raw.vtom) : undefined;
    // The sDTE holds vTOM in 2 MiB units (research/amd-snp.md, section 5).
    if (parsed === undefined || parsed % SZ_2M !== 0) throw new FormatError('config.vtom', 'expected a 2M-aligned address like "0x4000000"');
    vtom = parsed;
  }
  const hostPolicy = raw.hostPolicy ?? DEFAULT_HOST_POLICY;
  if (typeof hostPolicy !== 'string' || hostPolicy === '') throw new FormatError('config.hostPolicy', 'expected a policy name or file');
  const guestPolicy = raw.guestPolicy ?? DEFAULT_GUEST_POLICY;
  if (typeof guestPolicy !== 'string' || guestPolicy === '') throw new FormatError('config.guestPolicy', 'expected a policy name or file');
  const adversary = raw.adversary ?? 'none';
  if (adversary !== 'none' && adversary !== 'host') throw new FormatError('config.adversary', 'expected "host" (or leave it out)');
  const discard = raw.discard ?? DEFAULT_DISCARD;
  if (!DISCARD_MODES.includes(discard as DiscardMode)) {
    throw new FormatError('config.discard', `expected ${DISCARD_MODES.map((m) => JSON.stringify(m)).join(', ')}, got ${JSON.stringify(discard)}`);
  }
  return { arch: 'snp', guestMemory, hugeBacking, devices, swiotlb, cpus, vtom, hostPolicy, guestPolicy, adversary, discard: discard as DiscardMode };
}

/** The JSON form of a config, sizes spelled as "64M" and addresses as hex. */
export function encodeConfig(config: Config): Record<string, unknown> {
  return {
    arch: config.arch,
    guestMemory: formatSize(config.guestMemory),
    hugeBacking: config.hugeBacking,
    // dmaMask only where it is not the default, so older readers still take the file.
    devices: config.devices.map((d) => ({ id: d.id, trusted: d.trusted, iommu: d.iommu, ...(d.dmaMask !== DEFAULT_DMA_MASK ? { dmaMask: d.dmaMask } : {}) })),
    swiotlb: formatSize(config.swiotlb),
    cpus: config.cpus,
    vtom: hex(config.vtom),
    hostPolicy: config.hostPolicy,
    guestPolicy: config.guestPolicy,
    ...(config.adversary === 'host' ? { adversary: 'host' } : {}),
    // Only a world other than QEMU's default is written, so older readers still take the file.
    ...(config.discard !== DEFAULT_DISCARD ? { discard: config.discard } : {}),
  };
}

export const defaultConfig = (overrides: Record<string, unknown> = {}): Config => parseConfig({ arch: 'snp', ...overrides });
