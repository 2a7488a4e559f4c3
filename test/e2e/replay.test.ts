import { SendMessageBatchCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../local/stack.js';
import { apiClient } from '../support/api.js';
import { eventually, startTestStack } from '../support/stack.js';

let stack: LocalStack;
let api: ReturnType<typeof apiClient>;

/** How often the counting processor ran, per job. */
const runs = new Map<string, number>();

beforeAll(async () => {
  stack = await startTestStack({
    processors: {
      'test.counted': {
        target: { type: 'lambda', functionName: 'counted' },
        timeoutSeconds: 10,
        maxAttempts: 3,
        backoff: { type: 'fixed', delaySeconds: 1 },
      },
    },
    extraFunctions: [
      {
        name: 'counted',
        timeoutSeconds: 10,
        memoryMb: 128,
        // Runs past the engine's first second, so every replay lands while its start is unwritten.
        handler: async (event: { job: { id: string } }) => {
          runs.set(event.job.id, (runs.get(event.job.id) ?? 0) + 1);
          await new Promise((r) => setTimeout(r, 1500));
          return { status: 'ok', result: { ran: true } };
        },
      },
    ],
  });
  api = apiClient(stack);
});
afterAll(() => stack?.stop());

const body = (type: string) => ({ type, tasks: [{ processor: 'test.counted', input: { n: 1 } }] });

describe('a submit retried with one idempotency key', () => {
  it('over HTTP: five POSTs make one job whose processor runs once', async () => {
    const replies = [];
    for (let i = 0; i < 5; i++) replies.push(await api.submit(body('replay-http'), { 'Idempotency-Key': 'replay-1' }));
    expect(replies.map((r) => r.status)).toEqual([202, 200, 200, 200, 200]);
    const id = replies[0]!.body.id;
    expect(new Set(replies.map((r) => r.body.id))).toEqual(new Set([id]));
    const job = await api.waitFor(id);
    expect(job.status).toBe('SUCCEEDED');
    // Give any duplicate message time to be received and (wrongly) run.
    await new Promise((r) => setTimeout(r, 3000));
    expect(runs.get(id)).toBe(1);
    const after = (await api.get(id)).body;
    expect(after.tasks[0]).toMatchObject({ attempts: 1, history: [] });
  });

  it('via the submit queue: five messages with one IdempotencyKey make one job whose processor runs once', async () => {
    const sqs = new SQSClient({});
    try {
      await sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: stack.info.queues.submit?.url,
          Entries: Array.from({ length: 5 }, (_, i) => ({
            Id: String(i),
            MessageBody: JSON.stringify(body('replay-queue')),
            MessageAttributes: { IdempotencyKey: { DataType: 'String', StringValue: 'replay-q-1' } },
          })),
        }),
      );
      const replay = await eventually(async () => {
        const reply = await api.submit(body('replay-queue'), { 'Idempotency-Key': 'replay-q-1' });
        return reply.status === 200 ? reply : undefined;
      });
      const job = await api.waitFor(replay.body.id);
      expect(job.status).toBe('SUCCEEDED');
      await new Promise((r) => setTimeout(r, 3000));
      expect(runs.get(job.id)).toBe(1);
      expect((await api.get(job.id)).body.tasks[0]).toMatchObject({ attempts: 1, history: [] });
    } finally {
      sqs.destroy();
    }
  });

  it('a copy of a task message that arrives while the first attempt is in its first second runs nothing', async () => {
    const submitted = await api.submit(body('replay-copy'));
    expect(submitted.status).toBe(202);
    const sqs = new SQSClient({});
    try {
      // What a replay that missed the job (or anything else re-sending) puts on the work queue.
      for (const copy of [
        { jobId: submitted.body.id, task: 0 },
        { jobId: submitted.body.id, task: 0, ticket: 'x' },
      ]) {
        await sqs.send(
          new SendMessageCommand({ QueueUrl: stack.info.queues.work?.url, MessageBody: JSON.stringify(copy) }),
        );
      }
    } finally {
      sqs.destroy();
    }
    const job = await api.waitFor(submitted.body.id);
    expect(job.status).toBe('SUCCEEDED');
    await new Promise((r) => setTimeout(r, 3000));
    expect(runs.get(job.id)).toBe(1);
    expect((await api.get(job.id)).body.tasks[0]).toMatchObject({ attempts: 1, history: [] });
  });
});
