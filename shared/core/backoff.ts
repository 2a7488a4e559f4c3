/** How long to wait before attempt n+1 after attempt n failed. */
export type Backoff =
  | { type: 'fixed'; delaySeconds: number }
  | { type: 'linear'; delaySeconds: number; maxSeconds?: number }
  | { type: 'exponential'; delaySeconds: number; maxSeconds?: number; jitter?: boolean };

/** SQS cannot hide a message for longer than 12 hours. */
export const MAX_DELAY_SECONDS = 12 * 3600;

/**
 * Delay after `attempt` (1-based) failed. Exponential doubles from `delaySeconds`, capped, and with
 * jitter draws uniformly from [delay/2, delay] ("equal jitter") so retries of many tasks spread out
 * without ever retrying immediately. `random` is injected to keep this pure.
 */
export function backoffDelay(policy: Backoff, attempt: number, random: () => number = Math.random): number {
  const n = Math.max(1, attempt);
  let delay: number;
  switch (policy.type) {
    case 'fixed':
      delay = policy.delaySeconds;
      break;
    case 'linear':
      delay = Math.min(policy.delaySeconds * n, policy.maxSeconds ?? MAX_DELAY_SECONDS);
      break;
    case 'exponential': {
      const cap = policy.maxSeconds ?? MAX_DELAY_SECONDS;
      delay = Math.min(policy.delaySeconds * 2 ** Math.min(n - 1, 30), cap);
      if (policy.jitter) delay = delay / 2 + (delay / 2) * random();
      break;
    }
  }
  return Math.min(MAX_DELAY_SECONDS, Math.max(0, Math.round(delay)));
}
