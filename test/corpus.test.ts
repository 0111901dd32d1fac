// Every checked-in repro file is a regression test: its verdict must match its `expect`.

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { replayRepro } from '../src/engine/replay.ts';
import { readRepro } from '../src/repro/format.ts';

const dir = new URL('../corpus/', import.meta.url).pathname;
const files = readdirSync(dir).filter((name) => name.endsWith('.json')).sort();

/**
 * Invariants the model itself enforces, so no policy file can break them: the swiotlb model is a
 * port of the fixed Linux allocator and never hands out a slot twice. Their firing tests break
 * the model on purpose (test/oracles/fires.test.ts) instead of shipping a corpus file.
 */
const ENFORCED_BY_THE_MODEL = new Set(['swiotlb-slots']);

describe('corpus', () => {
  it('has a demonstration for every built-in oracle a policy can break', async () => {
    const { builtinOracles } = await import('../oracles/index.ts');
    const demonstrated = new Set(
      files.map((name) => readRepro(join(dir, name)).expect).flatMap((e) => (e?.verdict === 'violation' ? [e.oracle] : [])),
    );
    for (const oracle of builtinOracles) {
      if (!ENFORCED_BY_THE_MODEL.has(oracle.name)) expect(demonstrated, oracle.name).toContain(oracle.name);
    }
  });

  it.each(files)('%s replays to its expected verdict', async (name) => {
    const repro = readRepro(join(dir, name));
    expect(repro.expect, 'every corpus file states what it expects').toBeDefined();
    const outcome = await replayRepro(repro);
    expect(outcome.mismatch).toBeUndefined();
    expect(outcome.met).toBe(true);
  });
});
