import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EventSourceMapping, SqsEventSource } from '../../../local/runtime/sqs-event-source.js';
import type { LocalStack } from '../../../local/stack.js';
import { eventually, startTestStack } from '../../support/stack.js';

/**
 * The fixture function decides per message from its body: "ok" succeeds, "fail" is reported in
 * the partial batch response, "throw" fails the whole invocation.
 */
const deliveries: SQSRecord[] = [];
/** Each invocation's records, in order. */
const invocations: SQSRecord[][] = [];
let stack: LocalStack;
let sqs: SQSClient;

async function makeQueue(name: string, visibility: number, maxReceiveCount: number) {
  const dlq = await sqs.send(new CreateQueueCommand({ QueueName: `${name}-dlq` }));
  const dlqArn = (
    await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ['QueueArn'] }))
  ).Attributes?.QueueArn;
  const queue = await sqs.send(
    new CreateQueueCommand({
      QueueName: name,
      Attributes: {
        VisibilityTimeout: String(visibility),
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount }),
      },
    }),
  );
  const arn = (
    await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queue.QueueUrl, AttributeNames: ['QueueArn'] }))
  ).Attributes?.QueueArn;
  return { url: queue.QueueUrl as string, arn: arn as string, dlqUrl: dlq.QueueUrl as string };
}

function source(queue: { url: string; arn: string }, settings: Partial<EventSourceMapping> = {}) {
  return new SqsEventSource(
    sqs,
    stack.host,
    {
      queueUrl: queue.url,
      queueArn: queue.arn,
      functionName: 'fixture-consumer',
      batchSize: 10,
      maxConcurrency: 1,
      ...settings,
    },
    'us-east-1',
    () => {},
  );
}

/** The invocation that carried a message. */
function invocationOf(messageId: string | undefined): SQSRecord[] | undefined {
  return invocations.find((records) => records.some((r) => r.messageId === messageId));
}

/** The invocations that carried any of these messages. */
function invocationsOf(ids: string[]): SQSRecord[][] {
  return invocations.filter((records) => records.some((r) => ids.includes(r.messageId)));
}

/** `perRequest`: SQS takes ten messages, and at most 1 MiB, per batch send. */
async function sendAll(url: string, bodies: string[], perRequest = 10): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < bodies.length; i += perRequest) {
    const { Successful = [] } = await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: url,
        Entries: bodies.slice(i, i + perRequest).map((MessageBody, j) => ({ Id: String(j), MessageBody })),
      }),
    );
    ids.push(...Successful.map((entry) => entry.MessageId as string));
  }
  return ids;
}

/** Polls until a round delivers something (a first receive may come back before the sends show). */
async function pollUntilDelivered(poller: SqsEventSource): Promise<number> {
  for (;;) {
    const delivered = await poller.pollOnce();
    if (delivered > 0) return delivered;
  }
}

/** Messages received but neither deleted nor back on the queue yet. */
async function inFlight(url: string): Promise<number> {
  const { Attributes = {} } = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessagesNotVisible'] }),
  );
  return Number(Attributes.ApproximateNumberOfMessagesNotVisible);
}

async function receiveNow(url: string) {
  const { Messages = [] } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, WaitTimeSeconds: 0 }));
  return Messages;
}

beforeAll(async () => {
  stack = await startTestStack({
    extraFunctions: [
      {
        name: 'fixture-consumer',
        timeoutSeconds: 5,
        memoryMb: 128,
        handler: async (event: SQSEvent) => {
          deliveries.push(...event.Records);
          invocations.push(event.Records);
          if (event.Records.some((r) => r.body === 'throw')) throw new Error('consumer crashed');
          return {
            batchItemFailures: event.Records.filter((r) => r.body === 'fail').map((r) => ({
              itemIdentifier: r.messageId,
            })),
          };
        },
      },
    ],
  });
  sqs = new SQSClient({});
});

afterAll(async () => {
  sqs?.destroy();
  await stack?.stop();
});

describe('SQS event source mapping', () => {
  it('deletes the messages the function does not report and keeps the reported one', async () => {
    const queue = await makeQueue('esm-partial', 1, 10);
    await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: queue.url,
        Entries: [
          { Id: 'a', MessageBody: 'ok' },
          { Id: 'b', MessageBody: 'fail' },
          { Id: 'c', MessageBody: 'ok' },
        ],
      }),
    );
    const poller = source(queue);
    await eventually(async () => (await poller.pollOnce()) > 0 || undefined);
    expect(poller.stats.deleted).toBe(2);
    expect(poller.stats.failedItems).toBe(1);
    // The reported message is still on the queue, in flight until its visibility lapses.
    expect(await inFlight(queue.url)).toBe(1);
    expect(await receiveNow(queue.url)).toHaveLength(0);
  });

  it('redelivers a reported message after its visibility timeout with a higher receive count', async () => {
    const queue = await makeQueue('esm-redeliver', 1, 10);
    const { MessageId } = await sqs.send(new SendMessageCommand({ QueueUrl: queue.url, MessageBody: 'fail' }));
    const poller = source(queue);
    await eventually(async () => (await poller.pollOnce()) > 0 || undefined);
    const first = deliveries.filter((r) => r.messageId === MessageId);
    expect(first).toHaveLength(1);
    expect(first[0]?.attributes.ApproximateReceiveCount).toBe('1');

    // Not before the visibility timeout…
    expect(await receiveNow(queue.url)).toHaveLength(0);
    // …but after it.
    const again = await eventually(async () => {
      await poller.pollOnce();
      const seen = deliveries.filter((r) => r.messageId === MessageId);
      return seen.length >= 2 ? seen : undefined;
    });
    expect(again[1]?.attributes.ApproximateReceiveCount).toBe('2');
    expect(again[1]?.eventSource).toBe('aws:sqs');
    expect(again[1]?.eventSourceARN).toBe(queue.arn);
  });

  it('fails the whole batch when the function throws', async () => {
    const queue = await makeQueue('esm-throw', 30, 10);
    await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: queue.url,
        Entries: [
          { Id: 'a', MessageBody: 'ok' },
          { Id: 'b', MessageBody: 'throw' },
        ],
      }),
    );
    const poller = source(queue);
    await eventually(async () => (await poller.pollOnce()) > 0 || undefined);
    expect(poller.stats.deleted).toBe(0);
    expect(await inFlight(queue.url)).toBe(2);
  });

  it('moves a message that keeps failing to the dead-letter queue', async () => {
    const queue = await makeQueue('esm-poison', 1, 2);
    const { MessageId } = await sqs.send(new SendMessageCommand({ QueueUrl: queue.url, MessageBody: 'fail' }));
    const poller = source(queue);
    poller.start();
    try {
      const dead = await eventually(async () => {
        const { Messages = [] } = await sqs.send(
          new ReceiveMessageCommand({ QueueUrl: queue.dlqUrl, WaitTimeSeconds: 0, VisibilityTimeout: 30 }),
        );
        return Messages[0];
      }, 15_000);
      expect(dead.Body).toBe('fail');
      expect(deliveries.filter((r) => r.messageId === MessageId).length).toBeGreaterThanOrEqual(2);
    } finally {
      await poller.stop();
    }
  });

  it('runs the declared mappings continuously once started', async () => {
    const queue = await makeQueue('esm-running', 30, 5);
    const poller = source(queue);
    poller.start();
    try {
      const { MessageId } = await sqs.send(new SendMessageCommand({ QueueUrl: queue.url, MessageBody: 'ok' }));
      await eventually(async () => deliveries.some((r) => r.messageId === MessageId));
      await eventually(async () => (await inFlight(queue.url)) === 0 || undefined);
      expect(await receiveNow(queue.url)).toHaveLength(0);
    } finally {
      await poller.stop();
    }
  });

  describe('with a batching window', () => {
    it('invokes as soon as the batch is full, long before the window ends', async () => {
      const queue = await makeQueue('esm-window-full', 30, 10);
      // A window far beyond the test's timeout: only a full batch can end this round in time.
      const poller = source(queue, { batchSize: 5, maximumBatchingWindowSeconds: 300 });
      const ids = await sendAll(queue.url, ['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok']);
      expect(await pollUntilDelivered(poller)).toBe(5);
      expect(poller.stats.invocations).toBe(1);
      expect(invocationsOf(ids).map((records) => records.length)).toEqual([5]);
    });

    it('holds a lone message until the window ends, and what arrives meanwhile goes in the same invocation', async () => {
      const queue = await makeQueue('esm-window-lone', 30, 10);
      const poller = source(queue, { batchSize: 10, maximumBatchingWindowSeconds: 3 });
      poller.start();
      try {
        const { MessageId: lone } = await sqs.send(new SendMessageCommand({ QueueUrl: queue.url, MessageBody: 'ok' }));
        // Received (in flight) but not handed over: the poller waits for more.
        await eventually(async () => (await inFlight(queue.url)) === 1 || undefined);
        expect(invocationOf(lone)).toBeUndefined();
        const { MessageId: later } = await sqs.send(new SendMessageCommand({ QueueUrl: queue.url, MessageBody: 'ok' }));
        // The window ends with 2 of 10: the batch goes out as it is, both messages in it.
        const batch = await eventually(async () => invocationOf(lone));
        expect(batch.map((r) => r.messageId)).toEqual([lone, later]);
        await eventually(async () => (await inFlight(queue.url)) === 0 || undefined);
        expect(poller.stats).toMatchObject({ invocations: 1, records: 2, deleted: 2 });
      } finally {
        await poller.stop();
      }
    });

    it('gathers batches above ten over several receives', async () => {
      const queue = await makeQueue('esm-window-large', 30, 10);
      const poller = source(queue, { batchSize: 25, maximumBatchingWindowSeconds: 300 });
      const ids = await sendAll(
        queue.url,
        Array.from({ length: 25 }, () => 'ok'),
      );
      expect(await pollUntilDelivered(poller)).toBe(25);
      expect(poller.stats.invocations).toBe(1);
      expect(poller.stats.receives).toBeGreaterThanOrEqual(3);
      expect(new Set(invocationOf(ids[0])?.map((r) => r.messageId))).toEqual(new Set(ids));
      expect(poller.stats.deleted).toBe(25);
    });

    it('never hands a function more than 6 MB: what would not fit opens the next batch', async () => {
      const queue = await makeQueue('esm-window-payload', 30, 10);
      const poller = source(queue, { batchSize: 100, maximumBatchingWindowSeconds: 1 });
      const big = 'x'.repeat(250_000);
      const ids = await sendAll(
        queue.url,
        Array.from({ length: 26 }, () => big),
        4,
      );
      const delivered: number[] = [];
      while (delivered.reduce((a, b) => a + b, 0) < ids.length) {
        const n = await poller.pollOnce();
        if (n > 0) delivered.push(n);
      }
      expect(delivered.length).toBe(2);
      for (const batch of invocationsOf(ids)) {
        expect(Buffer.byteLength(JSON.stringify({ Records: batch }))).toBeLessThanOrEqual(6 * 1024 * 1024);
      }
      const seen = deliveries.filter((r) => ids.includes(r.messageId)).map((r) => r.messageId);
      expect(seen.sort()).toEqual([...ids].sort());
    });
  });
});
