import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'packages/*/test/**/*.test.ts', 'examples/*/test/**/*.test.ts'],
    // The slow fault scenarios (10,000 submissions at once) run in `npm run test:faults` only.
    exclude: process.env.SLOW_FAULTS === '1' ? ['**/node_modules/**'] : ['**/node_modules/**', 'test/faults/slow/**'],
    // Each file boots its own local stack; forks keep their process.env apart.
    pool: 'forks',
    // IAM_RECORD_DIR: every AWS call each function makes, for infra/iam-check.ts (`npm test`).
    globalSetup: ['test/support/iam-record.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    env: { POWERTOOLS_LOG_LEVEL: 'ERROR', POWERTOOLS_DEV: 'false' },
  },
});
