/**
 * The demo processors of API.md, deployable for smoke tests (examples/processors/demo.ts). Kept
 * apart from the stack so the IAM check can name their functions without loading CDK.
 */
export const DEMO = {
  'demo.echo': { handler: 'echo', timeoutSeconds: 10, maxAttempts: 3 },
  'demo.fail': { handler: 'fail', timeoutSeconds: 10, maxAttempts: 3 },
  'demo.crash': { handler: 'crash', timeoutSeconds: 10, maxAttempts: 2 },
  'demo.flaky': { handler: 'flaky', timeoutSeconds: 10, maxAttempts: 5 },
  'demo.sleep': { handler: 'sleep', timeoutSeconds: 61, maxAttempts: 2 },
} as const;

/** A demo function's logical name: its physical name is `physicalName(stage, demoFunction(handler))`. */
export function demoFunction(handler: string): string {
  return `demo-${handler}`;
}
