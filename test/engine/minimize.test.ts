import { describe, expect, it } from 'vitest';
import { minimizeCase } from '../../src/engine/minimize.ts';
import { defaultConfig } from '../../src/ops/config.ts';
import { generateCase } from '../../src/ops/generate.ts';
import type { Case, Op } from '../../src/ops/types.ts';

describe('minimizer', () => {
  const config = defaultConfig();

  it('drops every op that does not matter and simplifies fields', () => {
    const noise = generateCase(config, 'noise', { steps: 80, weights: { share: 0, host_split: 0 } }).ops;
    const needed: Op[] = [
      { op: 'share', gpa: 0x201000, pages: 7 },
      { op: 'host_split', gpa: 0x200000 },
    ];
    const ops = [...noise.slice(0, 30), needed[0]!, ...noise.slice(30, 60), needed[1]!, ...noise.slice(60)];
    // The "bug": a share somewhere before a split of the same 2M region.
    const fails = (c: Case): boolean => {
      const share = c.ops.findIndex((o) => o.op === 'share' && o.gpa >= 0x200000 && o.gpa < 0x400000);
      return share >= 0 && c.ops.slice(share).some((o) => o.op === 'host_split' && o.gpa === 0x200000);
    };
    const { testCase, runs } = minimizeCase({ config, seed: 's', ops }, fails);
    expect(testCase.ops).toEqual([
      { op: 'share', gpa: 0x200000, pages: 1 },
      { op: 'host_split', gpa: 0x200000 },
    ]);
    expect(runs).toBeLessThan(2000);
  });

  it('tries single removals again after a simplification: a simpler op can free another', () => {
    // Op 1 is needed only while op 0 has its original address; op 0 simplified (gpa 0) fails alone.
    // (A campaign's race did this: its DMA, moved to an earlier call, no longer needed the op that
    // had filled the IOTLB for it.)
    const ops: Op[] = [
      { op: 'touch', gpa: 0x1000, write: true },
      { op: 'touch', gpa: 0x5000, write: true },
    ];
    const fails = (c: Case): boolean => (c.ops[0]?.op === 'touch' && c.ops[0].gpa === 0) || (c.ops.length === 2 && c.ops[0]?.op === 'touch' && c.ops[0].gpa === 0x1000);
    expect(minimizeCase({ config, seed: 's', ops }, fails).testCase.ops).toEqual([{ op: 'touch', gpa: 0, write: false }]);
  });

  it('keeps exactly one target of a dma and respects the budget', () => {
    const ops: Op[] = [{ op: 'dma', dev: 1, map: 2, offset: 64, len: 8192, write: true }];
    const fails = (c: Case): boolean => c.ops.some((o) => o.op === 'dma');
    const { testCase } = minimizeCase({ config, seed: 's', ops }, fails);
    expect(testCase.ops).toEqual([{ op: 'dma', dev: 0, map: 0, len: 64, write: false }]);
    const limited = minimizeCase({ config, seed: 's', ops: [...ops, ...ops, ...ops] }, fails, { budget: 2 });
    expect(limited.runs).toBe(2);
  });
});

describe('minimizer and references', () => {
  it('drops an earlier allocation by shifting the references after it', () => {
    const config = defaultConfig();
    const ops: Op[] = [
      { op: 'alloc_coherent', dev: 1, bytes: 4096 },
      { op: 'alloc_coherent', dev: 1, bytes: 4096 },
      { op: 'tdi_accept', dev: 0 },
      { op: 'alloc_coherent', dev: 0, bytes: 4096 },
      { op: 'dma', dev: 0, buf: 3, len: 64, write: false },
    ];
    // The "bug" needs a DMA against the buffer that dev 0 allocated after tdi_accept.
    const fails = (c: Case): boolean => {
      const bufs: number[] = [];
      let accepted = false;
      for (const op of c.ops) {
        if (op.op === 'tdi_accept') accepted = true;
        if (op.op === 'alloc_coherent') bufs.push(accepted && op.dev === 0 ? 1 : 0);
        if (op.op === 'dma' && op.buf !== undefined && bufs.length > 0 && bufs[op.buf % bufs.length] === 1) return true;
      }
      return false;
    };
    const { testCase } = minimizeCase({ config, seed: 's', ops }, fails);
    expect(testCase.ops).toEqual([
      { op: 'tdi_accept', dev: 0 },
      { op: 'alloc_coherent', dev: 0, bytes: 64 },
      { op: 'dma', dev: 0, buf: 0, len: 64, write: false },
    ]);
  });
});

describe('minimizer and during', () => {
  it('drops interleaved entries that do not matter, runs the one that does as early as it still fails, and simplifies it', () => {
    const config = defaultConfig();
    const racing: Op = {
      op: 'share',
      gpa: 0x3000,
      pages: 1,
      during: [
        { after: 1, op: { op: 'touch', gpa: 0x5000, write: true } },
        { after: 6, op: { op: 'dma', dev: 1, buf: 2, offset: 128, len: 8192, write: true } },
        { after: 9, op: { op: 'dma', dev: 0, map: 1, len: 512, write: false } },
      ],
    };
    const ops: Op[] = [{ op: 'tdi_accept', dev: 0 }, { op: 'alloc_coherent', dev: 0, bytes: 8192 }, racing];
    // The "race": a DMA against a buffer, interleaved after call 2 or later, in the share.
    const fails = (c: Case): boolean =>
      c.ops.some((op) => op.op === 'share' && (op.during ?? []).some((e) => e.after >= 2 && e.op.op === 'dma' && e.op.buf !== undefined));
    const { testCase } = minimizeCase({ config, seed: 's', ops }, fails);
    expect(testCase.ops).toEqual([{ op: 'share', gpa: 0, pages: 1, during: [{ after: 2, op: { op: 'dma', dev: 0, buf: 0, len: 64, write: false } }] }]);
  });

  it('shifts the references of interleaved ops when an allocation goes', () => {
    const config = defaultConfig();
    const ops: Op[] = [
      { op: 'alloc_coherent', dev: 1, bytes: 4096 },
      { op: 'alloc_coherent', dev: 0, bytes: 4096 },
      { op: 'host_sync', during: [{ after: 0, op: { op: 'dma', dev: 0, buf: 1, len: 64, write: false } }] },
    ];
    const fails = (c: Case): boolean => {
      const devs = c.ops.flatMap((op) => (op.op === 'alloc_coherent' ? [op.dev] : []));
      const entry = c.ops.find((op) => op.op === 'host_sync')?.during?.[0];
      return entry !== undefined && entry.op.op === 'dma' && entry.op.buf !== undefined && devs[entry.op.buf % Math.max(1, devs.length)] === 0 && devs.length > 0;
    };
    const { testCase } = minimizeCase({ config, seed: 's', ops }, fails);
    expect(testCase.ops).toEqual([
      { op: 'alloc_coherent', dev: 0, bytes: 64 },
      { op: 'host_sync', during: [{ after: 0, op: { op: 'dma', dev: 0, buf: 0, len: 64, write: false } }] },
    ]);
  });
});
