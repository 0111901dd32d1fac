import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { anyOpArbitrary } from '../../src/ops/arbitrary.ts';
import { encodeOp, formatOp, parseOp } from '../../src/ops/codec.ts';
import { defaultConfig, defaultSwiotlbSize, encodeConfig, parseConfig } from '../../src/ops/config.ts';
import { FormatError } from '../../src/ops/errors.ts';
import type { Op } from '../../src/ops/types.ts';

describe('config', () => {
  it('fills every default from { arch: "snp" }', () => {
    const config = parseConfig({ arch: 'snp' });
    expect(config.guestMemory).toBe(64 * 1024 * 1024);
    expect(config.hugeBacking).toBe(true);
    expect(config.devices).toEqual([
      { id: 0, trusted: true, iommu: 's2', dmaMask: 64 },
      { id: 1, trusted: false, iommu: 's2', dmaMask: 64 },
    ]);
    expect(config.cpus).toBe(2);
    expect(config.vtom).toBe(64 * 1024 * 1024);
    expect(config.swiotlb).toBe(8 * 1024 * 1024);
    expect(config.adversary).toBe('none');
    expect(config.discard).toBe('on-private');
  });

  it('takes the three discard worlds and writes discard only when it is not QEMU\'s default', () => {
    for (const discard of ['none', 'in-place'] as const) {
      const config = parseConfig({ arch: 'snp', discard });
      expect(config.discard).toBe(discard);
      expect(encodeConfig(config).discard).toBe(discard);
      expect(parseConfig(encodeConfig(config))).toEqual(config);
    }
    expect('discard' in encodeConfig(parseConfig({ arch: 'snp', discard: 'on-private' }))).toBe(false);
    expect('discard' in encodeConfig(parseConfig({ arch: 'snp' }))).toBe(false);
    expect(() => parseConfig({ arch: 'snp', discard: 'hugetlb' })).toThrow(/expected "on-private", "none", "in-place", got "hugetlb"/);
  });

  it('sizes the default swiotlb like Linux CoCo guests, capped for small guests', () => {
    expect(defaultSwiotlbSize(64 * 2 ** 30)).toBe(2 ** 30 - ((2 ** 30) % (2 * 2 ** 20))); // 6% of 64G > 1G: clamped to 1G
    expect(defaultSwiotlbSize(4 * 2 ** 30)).toBe(244 * 2 ** 20); // 6% of 4G = 245.76M, in 2M units
    expect(defaultSwiotlbSize(64 * 2 ** 20)).toBe(8 * 2 ** 20);
  });

  it('round-trips through its JSON form', () => {
    const config = parseConfig({ arch: 'snp', guestMemory: '1T', devices: [{ id: 0, trusted: false, iommu: 'nested' }], adversary: 'host' });
    expect(parseConfig(encodeConfig(config))).toEqual(config);
    expect(encodeConfig(config).guestMemory).toBe('1T');
  });

  it.each([
    [{ arch: 'tdx' }, 'config.arch'],
    [{ arch: 'snp', guestMemory: 'lots' }, 'config.guestMemory'],
    [{ arch: 'snp', devices: [{ id: 0, iommu: 's3' }] }, 'config.devices[0].iommu'],
    [{ arch: 'snp', devices: [{ id: 1 }] }, 'config.devices[0].id'],
    [{ arch: 'snp', colour: 'blue' }, 'config.colour'],
    [{ arch: 'snp', vtom: '0x1000' }, 'config.vtom'],
    [{ arch: 'snp', discard: 'always' }, 'config.discard'],
    [{ arch: 'snp', discard: true }, 'config.discard'],
  ])('rejects %j naming %s', (raw, field) => {
    expect(() => parseConfig(raw)).toThrow(FormatError);
    try {
      parseConfig(raw);
    } catch (error) {
      expect((error as FormatError).field).toBe(field);
    }
  });
});

describe('op codec', () => {
  const config = defaultConfig({ adversary: 'host' });

  it('parses hex addresses and size strings into numbers', () => {
    expect(parseOp({ op: 'accept', gpa: '0x200000', size: '2M' }, 'ops[0]')).toEqual({ op: 'accept', gpa: 0x200000, size: '2M' });
    expect(parseOp({ op: 'alloc_coherent', dev: 1, bytes: '8K' }, 'ops[0]', config)).toEqual({ op: 'alloc_coherent', dev: 1, bytes: 8192 });
  });

  it('encodes addresses back as hex in schema order', () => {
    expect(encodeOp({ op: 'dma', dev: 0, iova: 0x200000, len: 4096, write: true })).toEqual({ op: 'dma', dev: 0, iova: '0x200000', len: 4096, write: true });
    expect(formatOp({ op: 'share', gpa: 0x201000, pages: 1 })).toBe('share gpa=0x201000 pages=1');
  });

  it.each([
    [{ op: 'frobnicate' }, 'ops[3].op'],
    [{ op: 'accept', gpa: '0x200000' }, 'ops[3].size'],
    [{ op: 'accept', gpa: '0x200001', size: '4K' }, 'ops[3].gpa'],
    [{ op: 'accept', gpa: 'zero', size: '4K' }, 'ops[3].gpa'],
    [{ op: 'accept', gpa: '0x200000', size: '1G' }, 'ops[3].size'],
    [{ op: 'touch', gpa: '0x0', write: true, colour: 1 }, 'ops[3].colour'],
    [{ op: 'dma', dev: 0, len: 64, write: true }, 'ops[3]'],
    [{ op: 'dma', dev: 7, buf: 0, len: 64, write: true }, 'ops[3].dev'],
    [{ op: 'map_single', dev: 0, bytes: 64, dir: 'sideways' }, 'ops[3].dir'],
    // `during`: an array of { after, op } with a dma or touch that carries no during of its own.
    [{ op: 'host_sync', during: {} }, 'ops[3].during'],
    [{ op: 'host_sync', during: [3] }, 'ops[3].during[0]'],
    [{ op: 'host_sync', during: [{ after: 1.5, op: { op: 'touch', gpa: '0x0', write: true } }] }, 'ops[3].during[0].after'],
    [{ op: 'host_sync', during: [{ after: -1, op: { op: 'touch', gpa: '0x0', write: true } }] }, 'ops[3].during[0].after'],
    [{ op: 'host_sync', during: [{ op: { op: 'touch', gpa: '0x0', write: true } }] }, 'ops[3].during[0].after'],
    [{ op: 'host_sync', during: [{ after: 1 }] }, 'ops[3].during[0].op'],
    [{ op: 'host_sync', during: [{ after: 1, op: { op: 'touch', gpa: '0x0', write: true }, when: 2 }] }, 'ops[3].during[0].when'],
    [{ op: 'host_sync', during: [{ after: 1, op: { op: 'host_split', gpa: '0x0' } }] }, 'ops[3].during[0].op.op'],
    [{ op: 'host_sync', during: [{ after: 1, op: { op: 'dma', dev: 9, iova: '0x0', len: 64, write: true } }] }, 'ops[3].during[0].op.dev'],
    [{ op: 'host_sync', during: [{ after: 1, op: { op: 'touch', gpa: '0x0', write: true, during: [] } }] }, 'ops[3].during[0].op.during'],
  ])('rejects %j naming %s', (raw, field) => {
    try {
      parseOp(raw, 'ops[3]', config);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(FormatError);
      expect((error as FormatError).field).toBe(field);
    }
  });

  it('round-trips during, with addresses in hex and every inner field', () => {
    const op: Op = {
      op: 'share',
      gpa: 0x3000,
      pages: 1,
      during: [
        { after: 2, op: { op: 'dma', dev: 0, iova: 0x400000, len: 4096, write: true } },
        { after: 0, op: { op: 'touch', gpa: 0x5000, write: false } },
      ],
    };
    const encoded = encodeOp(op);
    expect(encoded.during).toEqual([
      { after: 2, op: { op: 'dma', dev: 0, iova: '0x400000', len: 4096, write: true } },
      { after: 0, op: { op: 'touch', gpa: '0x5000', write: false } },
    ]);
    expect(parseOp(JSON.parse(JSON.stringify(encoded)), 'ops[0]', config)).toEqual(op);
    expect(formatOp(op)).toBe('share gpa=0x3000 pages=1 during=[after 2: dma dev=0 iova=0x400000 len=4096 write=true; after 0: touch gpa=0x5000 write=false]');
  });

  it('round-trips every generated op through the file form', () => {
    fc.assert(
      fc.property(anyOpArbitrary(config), (op) => {
        expect(parseOp(JSON.parse(JSON.stringify(encodeOp(op))), 'ops[0]', config)).toEqual(op);
      }),
      { numRuns: 500 },
    );
  });
});
