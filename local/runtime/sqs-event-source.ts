import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { asFunction } from '../../shared/aws/iam-record.js';
import type { FunctionHost } from './functions.js';
import { DEFAULT_LOCAL_PRINCIPAL, localPrincipal } from './principals.js';

export interface EventSourceMapping {
  queueUrl: string;
  queueArn: string;
  functionName: string;
  /** Messages per invocation at most (above 10 only with a window, as in AWS). */
  batchSize: number;
  maxConcurrency: number;
  /**
   * Lambda's MaximumBatchingWindowInSeconds: how long a batch may gather messages before it goes
   * out less than full. 0 (the default): each receive's messages go out at once.
   */
  maximumBatchingWindowSeconds?: number;
  /** Fault injection for tests and the fault suite. */
  chaos?: Chaos;
  /** The queue's engine answers a long poll on its first message (AWS, moto, LocalStack). */
  longPoll?: boolean;
}

export interface Chaos {
  /** Hand every batch to the function twice at once (SQS's at-least-once: same messages, same ids). */
  redeliver?: boolean;
  /** Send a copy of every message back to the queue first (a producer's duplicate send: new ids). */
  resend?: boolean;
}

const COPY_ATTRIBUTE = 'chaos-copy';

/**
 * No long polls: the embedded SQS answers one only when it has a full batch or the wait ends (real
 * SQS answers as soon as any message arrives), and during that wait a message whose visibility
 * lapses is handed out a second time in the same batch. Short receives plus an idle pause keep
 * both latency and the request count low. In AWS the event source's own pollers long-poll.
 */
const IDLE_PAUSE_MS = 100;
/** Where long polls behave as in AWS: a short one, so a stop is never more than a second away. */
const LONG_POLL_SECONDS = 1;
/** Lambda's limit on a synchronous invocation's payload: a batch stops gathering before it. */
export const MAX_BATCH_BYTES = 6 * 1024 * 1024;
/** `{"Records":[]}` around the records. */
const EVENT_ENVELOPE_BYTES = 14;
/** SQS hands out at most ten messages per receive. */
const RECEIVE_MAX = 10;

export interface PollerStats {
  receives: number;
  emptyReceives: number;
  invocations: number;
  /** Messages handed to the function, over all invocations (a redelivery counts again). */
  records: number;
  deleted: number;
  failedItems: number;
}

/**
 * Plays Lambda's SQS event source mapping: receive up to `batchSize`, invoke the function with an
 * SQS event, then delete what succeeded. With a partial batch response only the reported messages
 * stay (they come back when their visibility lapses); a throw, a timeout or an unusable response
 * fails the whole batch, as in AWS.
 *
 * With a batching window a poller goes on receiving until the batch is full, its payload would
 * pass 6 MB, or the window ends — the three ends AWS names. AWS times the window from the previous
 * invocation's end, and at low traffic has been seen to hold a lone message up to its 20 s long
 * poll whatever the window; here the window opens with a batch's first message, so a lone message
 * waits the whole window: the latency a window costs when traffic is thin, never less.
 */
export class SqsEventSource {
  readonly stats: PollerStats = {
    receives: 0,
    emptyReceives: 0,
    invocations: 0,
    records: 0,
    deleted: 0,
    failedItems: 0,
  };
  private running = false;
  /** Per poller: received messages that did not fit its last batch's 6 MB and open its next one. */
  private readonly carried = new Map<number, Message[]>();
  private readonly loops: Promise<void>[] = [];
  private readonly abort = new AbortController();

  constructor(
    private readonly sqs: SQSClient,
    private readonly host: FunctionHost,
    readonly mapping: EventSourceMapping,
    private readonly region: string,
    private readonly log: (entry: Record<string, unknown>) => void = (e) => console.error(JSON.stringify(e)),
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    for (let i = 0; i < this.mapping.maxConcurrency; i++) this.loops.push(this.loop(i));
  }

  async stop(): Promise<void> {
    this.running = false;
    this.abort.abort();
    await Promise.allSettled(this.loops);
  }

  private async loop(poller: number): Promise<void> {
    while (this.running) {
      try {
        const received = await this.pollOnce(poller);
        if (received === 0 && !this.mapping.longPoll) await this.pause(IDLE_PAUSE_MS);
      } catch (error) {
        if (!this.running) return;
        this.log({ level: 'WARN', message: 'SQS poll failed', queue: this.mapping.queueUrl, error: String(error) });
        await this.pause(500);
      }
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const { signal } = this.abort;
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      // A window's short pauses come many a second: each takes its abort listener with it.
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  /**
   * One round: gather a batch (one receive without a window), invoke, delete. Exposed so tests can
   * step the mapping deterministically; `poller` keeps each loop's carried messages its own.
   */
  async pollOnce(poller = 0): Promise<number> {
    const Messages = await this.gather(poller);
    if (Messages.length === 0) return 0;
    const chaos = this.mapping.chaos ?? {};
    if (chaos.resend) await this.resendCopies(Messages);
    const rounds = chaos.redeliver ? 2 : 1;
    await Promise.all(Array.from({ length: rounds }, () => this.deliver(Messages)));
    return Messages.length;
  }

  /** A batch: what the window (if any) gathered until full, 6 MB, or its end. Empty when idle. */
  private async gather(poller: number): Promise<Message[]> {
    const { batchSize } = this.mapping;
    const windowMs = (this.mapping.maximumBatchingWindowSeconds ?? 0) * 1000;
    const batch: Message[] = [];
    let bytes = 0;
    let overflow = false;
    const take = (messages: Message[]) => {
      for (const [i, message] of messages.entries()) {
        const size = this.recordBytes(message);
        if (batch.length > 0 && EVENT_ENVELOPE_BYTES + bytes + size > MAX_BATCH_BYTES) {
          this.carried.set(poller, messages.slice(i));
          overflow = true;
          return;
        }
        batch.push(message);
        bytes += size;
      }
    };
    take(this.carried.get(poller) ?? []);
    if (!overflow) this.carried.delete(poller);
    let closesAt = batch.length ? performance.now() + windowMs : undefined;
    while (!overflow && batch.length < batchSize) {
      const left = closesAt === undefined ? undefined : closesAt - performance.now();
      if (left !== undefined && left <= 0) break;
      // Within a window, a long poll only while it cannot outlast it (its wait is whole seconds).
      const longPoll = this.mapping.longPoll === true && (left === undefined || left >= LONG_POLL_SECONDS * 1000);
      const max = Math.min(RECEIVE_MAX, batchSize - batch.length);
      const received = await this.receive(max, longPoll);
      take(received);
      if (windowMs === 0 || batch.length === 0) break;
      closesAt ??= performance.now() + windowMs;
      // The queue had no more for now: look again shortly, never past the window's end.
      if (!longPoll && received.length < max) {
        await this.pause(Math.max(0, Math.min(IDLE_PAUSE_MS, closesAt - performance.now())));
      }
    }
    return batch;
  }

  private async receive(max: number, longPoll: boolean): Promise<Message[]> {
    // Lambda's event source mapping receives and deletes with the function's own role.
    const { Messages = [] } = await this.asFunction(() =>
      this.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: this.mapping.queueUrl,
          MaxNumberOfMessages: max,
          WaitTimeSeconds: longPoll ? LONG_POLL_SECONDS : 0,
          // Both spellings: older emulators only know AttributeNames.
          AttributeNames: ['All'],
          MessageSystemAttributeNames: ['All'],
          MessageAttributeNames: ['All'],
        }),
        { abortSignal: this.abort.signal },
      ),
    );
    this.stats.receives++;
    if (Messages.length === 0) this.stats.emptyReceives++;
    return Messages;
  }

  private asFunction<T>(call: () => Promise<T>): Promise<T> {
    return asFunction(this.mapping.functionName, call);
  }

  private async resendCopies(messages: Message[]): Promise<void> {
    const originals = messages.filter((m) => !m.MessageAttributes?.[COPY_ATTRIBUTE]);
    for (let i = 0; i < originals.length; i += 10) {
      await this.sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: this.mapping.queueUrl,
          Entries: originals.slice(i, i + 10).map((m, j) => ({
            Id: String(j),
            MessageBody: m.Body ?? '',
            MessageAttributes: { [COPY_ATTRIBUTE]: { DataType: 'String', StringValue: m.MessageId ?? '' } },
          })),
        }),
      );
    }
  }

  private async deliver(Messages: Message[]): Promise<void> {
    const event: SQSEvent = { Records: Messages.map((m) => this.toRecord(m)) };
    this.stats.invocations++;
    this.stats.records += Messages.length;
    const outcome = await this.host.invoke(this.mapping.functionName, event);
    let failed: Set<string>;
    if (!outcome.ok) {
      this.log({ level: 'WARN', message: 'SQS batch failed', function: this.mapping.functionName, ...outcome.error });
      failed = new Set(Messages.map((m) => m.MessageId as string));
    } else {
      failed = failedItems(outcome.result, Messages);
    }
    this.stats.failedItems += failed.size;
    const done = Messages.filter((m) => !failed.has(m.MessageId as string));
    for (let i = 0; i < done.length; i += 10) {
      const slice = done.slice(i, i + 10);
      await this.asFunction(() =>
        this.sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: this.mapping.queueUrl,
            Entries: slice.map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle as string })),
          }),
        ),
      );
      this.stats.deleted += slice.length;
    }
  }

  /** What a message adds to the invocation's payload: its record, as JSON, and a comma. */
  private recordBytes(message: Message): number {
    return Buffer.byteLength(JSON.stringify(this.toRecord(message))) + 1;
  }

  private toRecord(message: Message): SQSRecord {
    const attributes = (message.Attributes ?? {}) as Record<string, string>;
    const messageAttributes: SQSRecord['messageAttributes'] = {};
    for (const [name, value] of Object.entries(message.MessageAttributes ?? {})) {
      messageAttributes[name] = {
        dataType: value.DataType ?? 'String',
        stringValue: value.StringValue,
        binaryValue: value.BinaryValue ? Buffer.from(value.BinaryValue).toString('base64') : undefined,
        stringListValues: [],
        binaryListValues: [],
      };
    }
    return {
      messageId: message.MessageId as string,
      receiptHandle: message.ReceiptHandle as string,
      body: message.Body ?? '',
      attributes: {
        ApproximateReceiveCount: attributes.ApproximateReceiveCount ?? '1',
        SentTimestamp: attributes.SentTimestamp ?? String(Date.now()),
        // The emulators cannot tell senders apart (one local key pair), and SQS would name the
        // principal that signed the send: locally that is always the default local principal.
        SenderId: localPrincipal(DEFAULT_LOCAL_PRINCIPAL).userId,
        ApproximateFirstReceiveTimestamp: attributes.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
        ...(attributes.MessageGroupId ? { MessageGroupId: attributes.MessageGroupId } : {}),
        ...(attributes.MessageDeduplicationId ? { MessageDeduplicationId: attributes.MessageDeduplicationId } : {}),
      },
      messageAttributes,
      md5OfBody: message.MD5OfBody ?? '',
      eventSource: 'aws:sqs',
      eventSourceARN: this.mapping.queueArn,
      awsRegion: this.region,
    };
  }
}

/**
 * Reads a partial batch response. As in AWS: no `batchItemFailures` means all succeeded; an entry
 * with an empty or unknown id makes the whole batch count as failed.
 */
export function failedItems(result: unknown, messages: Message[]): Set<string> {
  const all = new Set(messages.map((m) => m.MessageId as string));
  if (result === null || result === undefined || typeof result !== 'object') return new Set();
  const failures = (result as Partial<SQSBatchResponse>).batchItemFailures;
  if (failures === undefined || failures === null) return new Set();
  if (!Array.isArray(failures)) return all;
  const failed = new Set<string>();
  for (const entry of failures) {
    const id = (entry as { itemIdentifier?: unknown })?.itemIdentifier;
    if (typeof id !== 'string' || !all.has(id)) return all;
    failed.add(id);
  }
  return failed;
}
