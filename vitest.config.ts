import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Two cores: real-server suites run in parallel files but not in parallel with everything else.
    pool: 'forks',
  },
});
