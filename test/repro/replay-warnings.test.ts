// replay's warning about `during` positions under other policies (engine/replay.ts): it is for a
// policy that differs from the file's, not for the same plugin file the file names, which is how
// `fuzz` tells users to replay a repro of their own policy.

import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { replayRepro } from '../../src/engine/replay.ts';
import { readRepro } from '../../src/repro/format.ts';

const RACE = fileURLToPath(new URL('../../corpus/clean-quiesce-dma-race.json', import.meta.url));
const POLICY = "export default { name: 'my-quiesce', description: 'quiesce-dma under another name' };\n";

describe('replay: the during warning', () => {
  it('is quiet for the plugin file the repro names, however it is spelled, and warns for another', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cocofuzz-warn-'));
    mkdirSync(join(dir, 'policies'));
    writeFileSync(join(dir, 'policies', 'mine.mjs'), POLICY);
    writeFileSync(join(dir, 'policies', 'other.mjs'), POLICY.replace('my-quiesce', 'other'));
    const raw = JSON.parse(readFileSync(RACE, 'utf8')) as { config: Record<string, unknown> };
    raw.config.hostPolicy = 'policies/mine.mjs';
    writeFileSync(join(dir, 'race.json'), JSON.stringify(raw));
    const repro = readRepro(join(dir, 'race.json'));
    const same = await replayRepro(repro, { hostPolicy: join(dir, 'policies', '..', 'policies', 'mine.mjs') });
    expect(same.warnings).toEqual([]);
    const other = await replayRepro(repro, { hostPolicy: join(dir, 'policies', 'other.mjs') });
    expect(other.warnings).toEqual([expect.stringContaining('"during" positions count the calls of the file\'s policies')]);
  });
});

describe('replay: the expected oracle', () => {
  it('may be an oracle object given to replayRepro (the API), and a typo is refused by name', async () => {
    const repro = { ...readRepro(RACE), expect: { verdict: 'violation' as const, oracle: 'my-oracle' } };
    const mine = { name: 'my-oracle', description: 'always', severity: 'correctness' as const, check: () => [{ message: 'always' }] };
    const outcome = await replayRepro(repro, { objects: [mine] });
    expect(outcome.met).toBe(true);
    await expect(replayRepro(repro)).rejects.toThrow(/expect\.oracle: no oracle "my-oracle"/);
  });
});
