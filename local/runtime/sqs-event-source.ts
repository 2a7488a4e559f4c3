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
  batchSize: number;
  maxConcurrency: number;
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
    for (let i = 0; i < this.mapping.maxConcurrency; i++) this.loops.push(this.loop());
  }

  async stop(): Promise<void> {
    this.running = false;
    this.abort.abort();
    await Promise.allSettled(this.loops);
  }

  private async loop(): Promise<void> {
    while (this.running) {
      try {
        const received = await this.pollOnce();
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
      const timer = setTimeout(resolve, ms);
      this.abort.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** One receive → invoke → delete round. Exposed so tests can step the mapping deterministically. */
  async pollOnce(): Promise<number> {
    // Lambda's event source mapping receives and deletes with the function's own role.
    const { Messages = [] } = await this.asFunction(() =>
      this.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: this.mapping.queueUrl,
          MaxNumberOfMessages: Math.min(10, this.mapping.batchSize),
          WaitTimeSeconds: this.mapping.longPoll ? LONG_POLL_SECONDS : 0,
          // Both spellings: older emulators only know AttributeNames.
          AttributeNames: ['All'],
          MessageSystemAttributeNames: ['All'],
          MessageAttributeNames: ['All'],
        }),
        { abortSignal: this.abort.signal },
      ),
    );
    this.stats.receives++;
    if (Messages.length === 0) {
      this.stats.emptyReceives++;
      return 0;
    }
    const chaos = this.mapping.chaos ?? {};
    if (chaos.resend) await this.resendCopies(Messages);
    const rounds = chaos.redeliver ? 2 : 1;
    await Promise.all(Array.from({ length: rounds }, () => this.deliver(Messages)));
    return Messages.length;
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
