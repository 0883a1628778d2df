import { defineConfig } from 'tsup';

// ESM only: Node >= 20.19 loads it from CommonJS through require(esm), and a dual build with this
// stack breaks at runtime in ways publint and attw do not see.
export default defineConfig({
  // One entry per subpath; shared code goes to a common chunk, so both entries see one mesh core.
  entry: ['src/index.ts', 'src/undici.ts', 'src/testing.ts'],
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  // tsup's dts step always sets `baseUrl`, which TypeScript 6 reports as deprecated (TS5101) and fails on.
  dts: { compilerOptions: { ignoreDeprecations: '6.0' } },
  clean: true,
  sourcemap: true,
  splitting: true,
  treeshake: true,
});
