import { defineConfig } from 'vitest/config';

// The bigger hardening runs (npm run test:stress); not part of npm test.
export default defineConfig({
  test: {
    include: ['test/stress/**/*.stress.ts'],
    pool: 'forks',
    // Generous limits only turn a hang into a failure; no test measures time.
    testTimeout: 3_600_000,
    hookTimeout: 60_000,
    maxWorkers: 1,
  },
});
