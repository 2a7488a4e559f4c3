import type { Backoff } from '../../shared/core/backoff.js';
import type { ProcessorConfig, ProcessorKind } from '../../shared/core/processors.js';

/**
 * The demo processors of API.md, declared once: the local stack hosts them (`npm start`) and the
 * CDK stack deploys them where an environment sets `demoProcessors`. Each is an ordinary Lambda
 * handler, the same code in both places.
 */
export interface DemoProcessor {
  /** The name submitters use. */
  name: string;
  /** The handler: a module (from the repository root) and its export. */
  module: string;
  export: string;
  kind: ProcessorKind;
  /** The processor's timeout and its function's: the one limit the demo is written for. */
  timeoutSeconds: number;
  maxAttempts: number;
  backoff: Backoff;
}

export const DEMO_MEMORY_MB = 256;

const DEMO = 'examples/processors/demo.ts';
const LEDGER = 'examples/processors/ledger.ts';
const oneSecond: Backoff = { type: 'fixed', delaySeconds: 1 };

export const demoProcessors: readonly DemoProcessor[] = [
  {
    name: 'demo.echo',
    module: DEMO,
    export: 'echo',
    kind: 'tasks',
    timeoutSeconds: 10,
    maxAttempts: 3,
    backoff: oneSecond,
  },
  {
    name: 'demo.fail',
    module: DEMO,
    export: 'fail',
    kind: 'tasks',
    timeoutSeconds: 10,
    maxAttempts: 3,
    backoff: oneSecond,
  },
  {
    name: 'demo.crash',
    module: DEMO,
    export: 'crash',
    kind: 'tasks',
    timeoutSeconds: 10,
    maxAttempts: 2,
    backoff: oneSecond,
  },
  {
    name: 'demo.flaky',
    module: DEMO,
    export: 'flaky',
    kind: 'tasks',
    timeoutSeconds: 10,
    maxAttempts: 5,
    backoff: oneSecond,
  },
  // Sleeps up to 60 s, then answers.
  {
    name: 'demo.sleep',
    module: DEMO,
    export: 'sleep',
    kind: 'tasks',
    timeoutSeconds: 61,
    maxAttempts: 2,
    backoff: oneSecond,
  },
  {
    name: 'demo.rows',
    module: DEMO,
    export: 'rows',
    kind: 'chunks',
    timeoutSeconds: 10,
    maxAttempts: 3,
    backoff: oneSecond,
  },
  {
    name: 'examples.ledger',
    module: LEDGER,
    export: 'postings',
    kind: 'chunks',
    timeoutSeconds: 30,
    maxAttempts: 3,
    backoff: oneSecond,
  },
];

/** The logical name of a demo's function (`demo.echo` → `demo-echo`); the stage prefix is added where it is deployed. */
export const demoFunction = (demo: DemoProcessor): string => demo.name.replace(/\./g, '-');

/** The demos' registry entries (the PROCESSORS format), given each demo's deployed function name. */
export function demoRegistry(functionName: (demo: DemoProcessor) => string): Record<string, ProcessorConfig> {
  return Object.fromEntries(
    demoProcessors.map((demo) => [
      demo.name,
      {
        target: { type: 'lambda', functionName: functionName(demo) },
        kind: demo.kind,
        timeoutSeconds: demo.timeoutSeconds,
        maxAttempts: demo.maxAttempts,
        backoff: demo.backoff,
      },
    ]),
  );
}
