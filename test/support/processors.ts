import type { Processor } from '../../shared/core/processors.js';

/** A processor as a test declares it: a Lambda target of its own name, with the settings it cares about. */
export function testProcessor(name: string, settings: Partial<Processor> = {}): Processor {
  return {
    name,
    kind: 'tasks',
    target: { type: 'lambda', functionName: name },
    timeoutSeconds: 5,
    maxAttempts: 3,
    backoff: { type: 'fixed', delaySeconds: 1 },
    ...settings,
  };
}
