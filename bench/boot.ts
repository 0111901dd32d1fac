// Building a case's world: booted fresh (createWorld) vs restored from a template booted once
// (restoreWorld, what runCase does through boot-cache.ts), in one process, alternating, for one
// config: CPU time per world (process.cpuUsage) and, with --expose-gc, the memory one restored
// world holds (heap and typed arrays).
//
//   node --expose-gc --conditions=cocofuzz-source bin/run-ts.js bench/boot.ts [CONFIG_JSON] [worlds]
//   node --expose-gc --conditions=cocofuzz-source bin/run-ts.js bench/boot.ts '{"guestMemory":"64G","swiotlb":"32G"}' 3

import { resolvePolicies } from '../src/engine/select.ts';
import { createWorld, restoreWorld, type World } from '../src/engine/world.ts';
import { parseConfig } from '../src/ops/config.ts';

const raw = JSON.parse(process.argv[2] ?? '{}') as Record<string, unknown>;
const worlds = Number.parseInt(process.argv[3] ?? '20', 10);
const config = parseConfig({ arch: 'snp', ...raw });
const policies = await resolvePolicies(config.hostPolicy, config.guestPolicy);
const cpuMs = (): number => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
};

const started = cpuMs();
const template = createWorld(config, policies, 'template');
const templateMs = cpuMs() - started;
const time = (make: (i: number) => World): number => {
  const at = cpuMs();
  for (let i = 0; i < worlds; i++) make(i);
  return (cpuMs() - at) / worlds;
};
let fresh = 0;
let restored = 0;
// Alternate, so a neighbour's load weighs on both alike; the first round warms the code.
for (let round = 0; round < 3; round++) {
  const f = time((i) => createWorld(config, policies, `case/${i}`));
  const r = time((i) => restoreWorld(template, config, policies, `case/${i}`));
  if (round > 0) {
    fresh += f / 2;
    restored += r / 2;
  }
}
// What one restored world holds: heap and ArrayBuffers (typed arrays), after a full GC.
const gc = (globalThis as { gc?: () => void }).gc;
const held = async (): Promise<number> => {
  // Twice, with a pause: ArrayBuffers are released after the collection that finds them dead.
  for (let i = 0; i < 2; i++) {
    gc?.();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
};
const before = await held();
const kept = restoreWorld(template, config, policies, 'kept');
const heap = (await held()) - before;
const round2 = (n: number): number => Math.round(n * 100) / 100;
console.log(
  JSON.stringify({
    config: raw,
    policies: `${config.hostPolicy} + ${config.guestPolicy}`,
    templateBootMs: round2(templateMs),
    freshMsPerWorld: round2(fresh),
    restoredMsPerWorld: round2(restored),
    ...(gc === undefined ? {} : { restoredWorldMiB: round2(heap / 2 ** 20) }),
    keptAlive: kept.config === config,
  }),
);
