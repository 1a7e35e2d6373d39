import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    // Generous limits only turn a hang into a failure; no test measures time.
    testTimeout: 120_000,
    hookTimeout: 30_000,
    maxWorkers: 2,
  },
});
