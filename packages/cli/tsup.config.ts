import { defineConfig } from 'tsup';

/**
 * One ESM file, `dist/cli.js`: start-up is one file read, not a tree of modules. The server's status
 * lists (shared/core, by relative path) are bundled in; npm dependencies stay imports, and the heavy
 * ones (cli-table3, cli-progress, log-update, the client's SigV4 chunk) are imported only by the
 * commands that draw or sign with them.
 */
export default defineConfig({
  entry: { cli: 'src/cli.ts' },
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  splitting: false,
  dts: false,
  clean: true,
  sourcemap: false,
  tsconfig: 'tsconfig.json',
});
