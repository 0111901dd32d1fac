import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// Tests run the TypeScript sources: the package's self-imports ('cocofuzz', 'cocofuzz/api') take
// the "cocofuzz-source" export condition, in vitest's resolver and (through NODE_OPTIONS) in
// every process and thread the tests start, so plugins loaded by tsx and spawned CLIs agree.
const SOURCE_CONDITION = '--conditions=cocofuzz-source';
if (!(process.env.NODE_OPTIONS ?? '').includes(SOURCE_CONDITION)) {
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} ${SOURCE_CONDITION}`.trim();
}

export default defineConfig({
  resolve: { conditions: ['cocofuzz-source', 'module', 'node', 'development|production'] },
  ssr: { resolve: { conditions: ['cocofuzz-source', 'module', 'node', 'development|production'], externalConditions: ['cocofuzz-source'] } },
  test: {
    include: ['test/**/*.test.ts'],
    // Two test files at a time even on 2 cores (vitest's default is one fewer than the cores: one
    // here). Most of the suite's time is CLI children starting and campaigns waiting out their
    // --case-timeout, which leave a core idle: npm test took 372 and 407 s instead of 519-538 s on
    // the 2-core VM, every test passing. No test may depend on the machine's speed anyway.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    // CLI tests spawn processes (the sources through tsx while dist/ is stale): give them room.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
