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
    // CLI tests spawn processes that load TypeScript through tsx: give them room on 2 cores.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
