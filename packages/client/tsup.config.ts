import { defineConfig } from 'tsup';

/**
 * ESM entries with their types bundled in. The server's schemas and views (imported by relative
 * path from shared/core) are bundled too, so the package needs no copy of them; npm dependencies
 * stay imports. SigV4, validation and the credential chain are chunks of their own, loaded on use.
 */
export default defineConfig({
  entry: { index: 'src/index.ts', sqs: 'src/sqs.ts', node: 'src/node.ts' },
  format: ['esm'],
  target: 'es2022',
  platform: 'neutral',
  external: ['node:fs'],
  splitting: true,
  dts: true,
  clean: true,
  sourcemap: true,
  tsconfig: 'tsconfig.json',
});
