import { LocalstackContainer } from '@testcontainers/localstack';
import { type LocalStack, type LocalStackOptions, startLocalStack } from '../../local/stack.js';

/** Pinned: `localstack:latest` needs an auth token since March 2026. */
const LOCALSTACK_IMAGE = 'localstack/localstack:4.4';

/**
 * Starts the system for a test file. `TEST_BACKEND=localstack` runs it against LocalStack in a
 * container (DynamoDB, SQS and S3 only: the HTTP API and functions stay ours); without a container
 * runtime that falls back, in one line, to the embedded cloud. `TEST_PROFILE=aws-local` runs it on
 * DynamoDB Local and moto instead.
 */
export async function startTestStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  // `npm run test:unit` sets it: a unit test that boots the cloud is in the wrong suite.
  if (process.env.UNIT_ONLY === '1') {
    throw new Error(
      'UNIT_ONLY=1: this test starts the local stack, so it is not a unit test; use the in-memory ports (test/support/memory) or move it to test/integration',
    );
  }
  if (process.env.TEST_BACKEND === 'localstack') {
    try {
      const container = await new LocalstackContainer(LOCALSTACK_IMAGE)
        .withEnvironment({ LOCALSTACK_AUTH_TOKEN: process.env.LOCALSTACK_AUTH_TOKEN ?? '' })
        .start();
      const stack = await startLocalStack({
        ...options,
        env: { ...process.env, AWS_ENDPOINT_URL: container.getConnectionUri() },
      });
      return {
        ...stack,
        stop: async () => {
          await stack.stop();
          await container.stop();
        },
      };
    } catch (error) {
      console.warn(
        `TEST_BACKEND=localstack unavailable (${(error as Error).message.split('\n')[0]}); using the embedded cloud`,
      );
    }
  }
  const profile = process.env.TEST_PROFILE === 'aws-local' ? 'aws-local' : 'embedded';
  return startLocalStack({ profile, ...options, port: 0 });
}

/** Polls until `check` returns a value (not undefined/false) or the time is up. */
export async function eventually<T>(check: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
}
