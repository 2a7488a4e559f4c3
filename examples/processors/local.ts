import type { LocalFunction } from '../../local/runtime/functions.js';
import type { ProcessorConfig } from '../../shared/core/processors.js';
import { crash, echo, fail, flaky, rows, sleep } from './demo.js';
import { postings } from './ledger.js';

/** The demo processors as local Lambda functions, and their registration (API.md, "Demo processors"). */
export function demoProcessors(stage: string): {
  functions: LocalFunction[];
  processors: Record<string, ProcessorConfig>;
} {
  const fn = (name: string, handler: LocalFunction['handler'], timeoutSeconds: number): LocalFunction => ({
    name: `jobs-${stage}-demo-${name}`,
    handler,
    timeoutSeconds,
    memoryMb: 128,
  });
  const functions = [
    fn('echo', echo, 10),
    fn('fail', fail, 10),
    fn('crash', crash, 10),
    fn('flaky', flaky, 10),
    fn('sleep', sleep, 65),
    fn('rows', rows, 10),
    fn('ledger', postings, 30),
  ];
  const lambda = (name: string) => ({ type: 'lambda' as const, functionName: `jobs-${stage}-demo-${name}` });
  const oneSecond = { type: 'fixed' as const, delaySeconds: 1 };
  return {
    functions,
    processors: {
      'demo.echo': { target: lambda('echo'), timeoutSeconds: 10, maxAttempts: 3, backoff: oneSecond },
      'demo.fail': { target: lambda('fail'), timeoutSeconds: 10, maxAttempts: 3, backoff: oneSecond },
      'demo.crash': { target: lambda('crash'), timeoutSeconds: 10, maxAttempts: 2, backoff: oneSecond },
      'demo.flaky': { target: lambda('flaky'), timeoutSeconds: 10, maxAttempts: 5, backoff: oneSecond },
      'demo.sleep': { target: lambda('sleep'), timeoutSeconds: 61, maxAttempts: 2, backoff: oneSecond },
      'demo.rows': { kind: 'chunks', target: lambda('rows'), timeoutSeconds: 10, maxAttempts: 3, backoff: oneSecond },
      'examples.ledger': {
        kind: 'chunks',
        target: lambda('ledger'),
        timeoutSeconds: 30,
        maxAttempts: 3,
        backoff: oneSecond,
      },
    },
  };
}
