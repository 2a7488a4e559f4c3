import { ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { tableItems } from '../../support/api.js';
import { eventually, startTestStack } from '../../support/stack.js';

let stack: LocalStack;
let sqs: SQSClient;

beforeAll(async () => {
  stack = await startTestStack({ startPollers: false });
  sqs = new SQSClient({});
});
afterAll(async () => {
  sqs?.destroy();
  await stack?.stop();
});

const submitSource = () => stack.eventSources.find((s) => s.mapping.queueUrl === stack.info.queues.submit?.url)!;

async function deadLetters() {
  const { Messages = [] } = await sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: stack.info.queues.submitDlq?.url,
      MaxNumberOfMessages: 10,
      MessageAttributeNames: ['All'],
      WaitTimeSeconds: 0,
    }),
  );
  return Messages;
}

describe('direct enqueue on the submit queue', () => {
  it('moves a message the contract refuses to the submit DLQ with its reason, creating nothing', async () => {
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: stack.info.queues.submit?.url,
        MessageBody: '{"type":"t","tasks":[{"processor":"no.such"}]}',
      }),
    );
    await sqs.send(new SendMessageCommand({ QueueUrl: stack.info.queues.submit?.url, MessageBody: 'not json at all' }));
    await eventually(async () => (await submitSource().pollOnce()) > 0 || undefined);
    const dead = await eventually(async () => {
      const messages = await deadLetters();
      return messages.length >= 2 ? messages : undefined;
    });
    const reasons = dead.map((m) => JSON.parse(m.MessageAttributes?.Reason?.StringValue ?? '{}').code).sort();
    expect(reasons).toEqual(['UNKNOWN_PROCESSOR', 'VALIDATION_FAILED']);
    expect(dead.map((m) => m.Body)).toContain('not json at all');
    expect(await tableItems(stack)).toEqual([]);
  });

  it('makes one job from a message delivered twice (message id as the key)', async () => {
    const body = JSON.stringify({ type: 'queued', tasks: [{ processor: 'demo.echo', input: 1 }] });
    const { MessageId } = await sqs.send(
      new SendMessageCommand({ QueueUrl: stack.info.queues.submit?.url, MessageBody: body }),
    );
    const source = submitSource();
    // Deliver the same message twice, as SQS may.
    source.mapping.chaos = { redeliver: true };
    try {
      await eventually(async () => (await source.pollOnce()) > 0 || undefined);
    } finally {
      source.mapping.chaos = undefined;
    }
    const jobs = (await tableItems(stack)).filter((item) => item.type === 'queued');
    expect(jobs).toHaveLength(1);
    expect(jobs[0]?.idempotencyKey).toBe(MessageId);
  });
});

describe('a queued body that carries its own idempotencyKey', () => {
  it('makes its job under that key (the message id is only the fallback)', async () => {
    const body = { type: 'keyed', idempotencyKey: 'body-key-1', tasks: [{ processor: 'demo.echo' }] };
    await sqs.send(
      new SendMessageCommand({ QueueUrl: stack.info.queues.submit?.url, MessageBody: JSON.stringify(body) }),
    );
    await eventually(async () => (await submitSource().pollOnce()) > 0 || undefined);
    const jobs = (await tableItems(stack)).filter((item) => item.type === 'keyed');
    expect(jobs).toHaveLength(1);
    expect(jobs[0]?.idempotencyKey).toBe('body-key-1');
  });
});

describe('the owner of a queued submission', () => {
  it('refuses an Owner attribute from a sender that is not trusted, creating nothing', async () => {
    const before = (await tableItems(stack)).length;
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: stack.info.queues.submit?.url,
        MessageBody: JSON.stringify({ type: 'impostor', tasks: [{ processor: 'demo.echo' }] }),
        MessageAttributes: { Owner: { DataType: 'String', StringValue: 'iam:AIDASOMEONEELSE' } },
      }),
    );
    await eventually(async () => (await submitSource().pollOnce()) > 0 || undefined);
    const dead = await eventually(async () => {
      const messages = await deadLetters();
      return messages.length > 0 ? messages : undefined;
    });
    expect(JSON.parse(dead[0]?.MessageAttributes?.Reason?.StringValue ?? '{}').code).toBe('FORBIDDEN');
    expect((await tableItems(stack)).length).toBe(before);
  });
});

describe('a queued body nested too deep', () => {
  it('moves to the submit DLQ with a VALIDATION_FAILED reason naming the value, creating nothing', async () => {
    const before = await tableItems(stack);
    const sent = new Set<string>();
    for (const depth of [65, 2500, 100_000]) {
      const input = `${'['.repeat(depth)}${']'.repeat(depth)}`;
      const { MessageId } = await sqs.send(
        new SendMessageCommand({
          QueueUrl: stack.info.queues.submit?.url,
          MessageBody: `{"type":"deep","tasks":[{"processor":"demo.echo","input":${input}}]}`,
        }),
      );
      sent.add(MessageId ?? '');
    }
    await eventually(async () => (await submitSource().pollOnce()) > 0 || undefined);
    const reasons: unknown[] = [];
    await eventually(async () => {
      for (const message of await deadLetters()) {
        if (sent.has(message.MessageAttributes?.SourceMessageId?.StringValue ?? '')) {
          reasons.push(JSON.parse(message.MessageAttributes?.Reason?.StringValue ?? '{}'));
        }
      }
      return reasons.length >= 3 || undefined;
    });
    for (const reason of reasons) {
      expect(reason).toMatchObject({
        code: 'VALIDATION_FAILED',
        details: [{ path: 'tasks[0].input', message: 'must nest at most 64 levels deep' }],
      });
    }
    expect(await tableItems(stack)).toEqual(before);
  });
});
