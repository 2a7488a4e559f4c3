import { defineConfig } from 'tsup';

// The server's schemas (../../shared/core) are bundled in: one source of truth, no copy to drift.
// zod stays outside: it is the user's, the one their schemas are made with.
export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  dts: true,
  clean: true,
  sourcemap: false,
  external: ['zod'],
  tsconfig: 'tsconfig.json',
});
