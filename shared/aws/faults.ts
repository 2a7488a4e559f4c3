/**
 * Fault injection at the AWS client layer, for the fault suite: a share of calls fails with a
 * throttling or 5xx error before reaching the service (the SDK's own retries see them, as they
 * would in AWS), and calls can be slowed down. Inert until `injectFaults()` is called.
 */
export interface FaultPlan {
  /** Share of calls that fail, 0..1. */
  rate: number;
  /** Extra latency per call, in ms (uniform 0..latencyMs). */
  latencyMs?: number;
  /** Only these commands fail (by the SDK's command name, e.g. `GetCommand`); all when absent. */
  commands?: string[];
  /** Stop failing after this many injected failures: an outage of a known length. */
  limit?: number;
  random?: () => number;
}

let plan: FaultPlan | undefined;
export const injected = { failures: 0, calls: 0 };

export function injectFaults(next: FaultPlan | undefined): void {
  plan = next;
  injected.failures = 0;
  injected.calls = 0;
}

class InjectedFault extends Error {
  readonly $fault = 'server';
  readonly $metadata = { httpStatusCode: 503 };
  constructor(override readonly name: string) {
    super(`injected ${name}`);
  }
}

// biome-ignore lint/suspicious/noExplicitAny: any SDK client.
export function faultClient(client: { middlewareStack: any }): void {
  client.middlewareStack.add(
    // biome-ignore lint/suspicious/noExplicitAny: SDK middleware signature.
    (next: (args: any) => Promise<any>, context: { commandName?: string }) => async (args: any) => {
      const current = plan;
      if (!current) return next(args);
      if (current.commands && !current.commands.includes(context.commandName ?? '')) return next(args);
      if (current.limit !== undefined && injected.failures >= current.limit) return next(args);
      const random = current.random ?? Math.random;
      injected.calls++;
      if (current.latencyMs) await new Promise((r) => setTimeout(r, random() * (current.latencyMs as number)));
      if (random() < current.rate) {
        injected.failures++;
        // Retryable by the SDK's standard strategy, like the real thing.
        throw new InjectedFault(random() < 0.5 ? 'ThrottlingException' : 'ServiceUnavailable');
      }
      return next(args);
    },
    // Inside the SDK's retry loop, so its retries see the faults as they would see AWS's.
    { step: 'finalizeRequest', name: 'jobsFaultInjection', override: true },
  );
}
