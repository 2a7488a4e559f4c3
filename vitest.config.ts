import { defineConfig } from 'vitest/config';

/**
 * Tests that build the packages and read their dist/ (npm pack of each package, the example
 * service, the CLI spawned from its bundle): a build empties dist/ first, so these run one file at
 * a time — and in a group of their own, not beside the suite: their builds and installs would take
 * the suite's CPU (on 2 cores the Find suite alone went from about a minute to four).
 */
const packaging = ['packages/*/test/pack.test.ts', 'packages/cli/test/**/*.test.ts', 'examples/*/test/**/*.test.ts'];

export default defineConfig({
  test: {
    // The slow fault scenarios (10,000 submissions at once) run in `npm run test:faults` only.
    exclude: process.env.SLOW_FAULTS === '1' ? ['**/node_modules/**'] : ['**/node_modules/**', 'test/faults/slow/**'],
    // Each file boots its own local stack; forks keep their process.env apart.
    pool: 'forks',
    // IAM_RECORD_DIR: every AWS call each function makes, for infra/iam-check.ts (`npm test`).
    globalSetup: ['test/support/iam-record.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    env: { POWERTOOLS_LOG_LEVEL: 'ERROR', POWERTOOLS_DEV: 'false' },
    projects: [
      {
        extends: true,
        test: {
          name: 'suite',
          sequence: { groupOrder: 0 },
          include: ['test/**/*.test.ts', 'packages/*/test/**/*.test.ts'],
          exclude: [
            ...(process.env.SLOW_FAULTS === '1' ? [] : ['test/faults/slow/**']),
            '**/node_modules/**',
            ...packaging,
          ],
        },
      },
      {
        extends: true,
        test: {
          name: 'packaging',
          include: packaging,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
          // Each step builds, packs, installs or type-checks in a child process: tens of seconds on
          // a busy 2-core machine, where the suite's 30 s would fail a package for the machine's load.
          testTimeout: 240_000,
          hookTimeout: 600_000,
        },
      },
    ],
  },
});
