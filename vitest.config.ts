import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // CLI tests spawn processes that load TypeScript through tsx: give them room on 2 cores.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
