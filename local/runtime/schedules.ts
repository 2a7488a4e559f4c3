import { randomUUID } from 'node:crypto';
import type { ScheduledEvent } from 'aws-lambda';
import type { FunctionHost } from './functions.js';

/**
 * Plays EventBridge `rate(...)` schedules. A run that is still going when the next is due is not
 * overlapped: the tick is skipped, which is what a sweeper wants.
 */
export class RateSchedule {
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<unknown> | undefined;
  runs = 0;

  constructor(
    private readonly host: FunctionHost,
    readonly name: string,
    readonly functionName: string,
    readonly rateSeconds: number,
    private readonly region: string,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.rateSeconds * 1000);
    this.timer.unref();
  }

  /** One run now; `detail` is the event's detail (a plain schedule sends `{}`). */
  async tick(detail: Record<string, unknown> = {}): Promise<void> {
    if (this.inFlight) return;
    const event: ScheduledEvent = {
      version: '0',
      id: randomUUID(),
      'detail-type': 'Scheduled Event',
      source: 'aws.events',
      account: '000000000000',
      time: new Date().toISOString(),
      region: this.region,
      resources: [`arn:aws:events:${this.region}:000000000000:rule/${this.name}`],
      detail,
    };
    this.runs++;
    this.inFlight = this.host.invoke(this.functionName, event);
    try {
      await this.inFlight;
    } finally {
      this.inFlight = undefined;
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.inFlight;
  }
}
