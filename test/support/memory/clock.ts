import type { Clock } from '../../../shared/core/ports.js';

/**
 * A clock that only moves when a test moves it, so a scenario can jump past a lease, a backoff or a
 * grace period without waiting. Real timers (the engines' look-again and write backoff) still run.
 */
export class ManualClock implements Clock {
  private at: number;

  constructor(start: Date | string | number = '2030-01-01T00:00:00.000Z') {
    this.at = new Date(start).getTime();
  }

  now(): Date {
    return new Date(this.at);
  }

  /** Epoch milliseconds, as message `sentAt` values are kept. */
  ms(): number {
    return this.at;
  }

  advance(ms: number): Date {
    this.at += ms;
    return this.now();
  }

  set(to: Date | string | number): void {
    this.at = new Date(to).getTime();
  }
}
