import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  dts: true,
  clean: true,
  tsconfig: 'tsconfig.json',
  // aws-cdk-lib and constructs are the app's (peer dependencies); the server's declarations
  // (../../shared) and zod, which validates them, travel inside the bundle.
  noExternal: ['zod'],
});
