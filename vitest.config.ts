import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // 'proxyless' (the examples' import) is the source, as tsconfig.json's `paths` makes it for tsc and tsx.
  resolve: {
    alias: [
      { find: /^proxyless$/, replacement: fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
      { find: /^proxyless\/undici$/, replacement: fileURLToPath(new URL('./src/undici.ts', import.meta.url)) },
      { find: /^proxyless\/testing$/, replacement: fileURLToPath(new URL('./src/testing.ts', import.meta.url)) },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Two cores: real-server suites run in parallel files but not in parallel with everything else.
    pool: 'forks',
  },
});
