/**
 * Runs bench/hedge.ts inside vitest, for vitest's fake timers (bench/hedge.ts starts this itself; it is not
 * part of `npm test`). Console output goes straight to the terminal.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: ['bench/hedge.ts'],
    testTimeout: 15 * 60_000,
    pool: 'forks',
    disableConsoleIntercept: true,
    reporters: ['dot'],
  },
});
