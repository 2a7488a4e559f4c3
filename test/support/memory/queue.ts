import type { Clock, WorkQueue } from '../../../shared/core/ports.js';
import { systemClock } from '../../../shared/core/ports.js';
import type { WorkMessage } from '../../../shared/core/schemas.js';

/** One copy of a message in the queue, as a worker would receive it. */
export interface Envelope<M extends WorkMessage = WorkMessage> {
  /** SQS's message id: a copy made by `duplicate` keeps it (SQS's own duplicates do). */
  messageId: string;
  body: M;
  /** When it was sent (epoch ms, by the queue's clock), as the worker reads `SentTimestamp`. */
  sentAt: number;
  delaySeconds?: number;
  /** Deliveries so far (SQS's ApproximateReceiveCount once received). */
  receiveCount: number;
}

/**
 * The WorkQueue port in memory. Nothing is delivered on its own: a test takes messages and hands
 * them to the engine, and may deliver one twice, lose one, or run them out of turn. Every send is
 * recorded (`sent`) with its delay, whatever happens to its messages afterwards.
 */
export class MemoryWorkQueue implements WorkQueue {
  /** Messages sent and not yet taken or lost, oldest first. */
  readonly pending: Envelope[] = [];
  /** Every message ever sent, with the delay it was sent with. */
  readonly sent: Envelope[] = [];
  /** Every `send` call: its size is the number of requests the adapter would batch (≥ 1 each). */
  readonly sends: { messages: number; delaySeconds?: number }[] = [];
  private ids = 0;
  private failures: unknown[] = [];

  constructor(private readonly clock: Clock = systemClock) {}

  async send(messages: WorkMessage[], options: { delaySeconds?: number } = {}): Promise<void> {
    const failure = this.failures.shift();
    if (failure !== undefined) throw failure;
    this.sends.push({ messages: messages.length, ...delay(options.delaySeconds) });
    for (const message of messages) {
      const envelope: Envelope = {
        messageId: `msg-${++this.ids}`,
        body: structuredClone(message),
        sentAt: this.clock.now().getTime(),
        ...delay(options.delaySeconds),
        receiveCount: 0,
      };
      this.sent.push(envelope);
      this.pending.push(envelope);
    }
  }

  /** The next `send` throws `error` and sends nothing (SQS down, throttled). */
  failNextSend(error: unknown = new Error('queue unavailable')): void {
    this.failures.push(error);
  }

  /** Removes and returns the oldest pending message that `match` accepts, counting a delivery. */
  take<M extends WorkMessage = WorkMessage>(match: (body: WorkMessage) => boolean = () => true): Envelope<M> {
    const at = this.pending.findIndex((envelope) => match(envelope.body));
    if (at === -1) throw new Error('no pending message matches');
    const [envelope] = this.pending.splice(at, 1) as [Envelope<M>];
    envelope.receiveCount++;
    return { ...envelope, body: structuredClone(envelope.body) };
  }

  /** Puts a copy of a delivered message back (same id): SQS delivering it again. */
  redeliver(envelope: Envelope): void {
    this.pending.push({ ...envelope, body: structuredClone(envelope.body) });
  }

  /** Drops every pending message `match` accepts; returns them. */
  lose(match: (body: WorkMessage) => boolean = () => true): Envelope[] {
    const lost = this.pending.filter((envelope) => match(envelope.body));
    for (const envelope of lost) this.pending.splice(this.pending.indexOf(envelope), 1);
    return lost;
  }

  /**
   * Delivers pending messages one at a time to `handler` until none is left (messages it sends are
   * delivered too), at most `limit` of them so a loop that never ends fails the test instead.
   */
  async drain(handler: (envelope: Envelope) => Promise<unknown>, limit = 10_000): Promise<number> {
    let delivered = 0;
    while (this.pending.length > 0) {
      if (++delivered > limit) throw new Error(`more than ${limit} deliveries: the messages never stop`);
      await handler(this.take());
    }
    return delivered;
  }

  /** Bodies of the pending messages. */
  bodies(): WorkMessage[] {
    return this.pending.map((envelope) => structuredClone(envelope.body));
  }
}

function delay(seconds: number | undefined): { delaySeconds?: number } {
  return seconds === undefined ? {} : { delaySeconds: seconds };
}
