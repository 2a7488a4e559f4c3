import { describe, expect, it } from 'vitest';
import { backoffDelay, MAX_DELAY_SECONDS } from '../../../shared/core/backoff.js';

describe('backoff policies', () => {
  it('waits the same after every attempt with fixed', () => {
    expect([1, 2, 5].map((n) => backoffDelay({ type: 'fixed', delaySeconds: 3 }, n))).toEqual([3, 3, 3]);
  });

  it('grows by the step with linear, up to its cap', () => {
    const policy = { type: 'linear' as const, delaySeconds: 10, maxSeconds: 25 };
    expect([1, 2, 3, 4].map((n) => backoffDelay(policy, n))).toEqual([10, 20, 25, 25]);
  });

  it('doubles with exponential, capped, and never beyond what SQS can delay', () => {
    const policy = { type: 'exponential' as const, delaySeconds: 2, maxSeconds: 60 };
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(policy, n))).toEqual([2, 4, 8, 16, 32, 60, 60]);
    expect(backoffDelay({ type: 'exponential', delaySeconds: 1 }, 80)).toBe(MAX_DELAY_SECONDS);
  });

  it('spreads exponential retries between half and all of the delay with jitter', () => {
    const policy = { type: 'exponential' as const, delaySeconds: 8, jitter: true };
    expect(backoffDelay(policy, 1, () => 0)).toBe(4);
    expect(backoffDelay(policy, 1, () => 0.999)).toBe(8);
    expect(backoffDelay(policy, 2, () => 0.5)).toBe(12);
  });
});
