import { PutObjectCommand } from '@aws-sdk/client-s3';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../local/stack.js';
import { createClients } from '../../shared/aws/clients.js';
import { apiClient, tableItems } from '../support/api.js';
import { eventually, startTestStack } from '../support/stack.js';

/**
 * Paths the other suites take only through the API or on fakes: a submission through the submit
 * queue (its own function and role) and a dead-lettered task message (the dead-letters function).
 * With IAM_RECORD_DIR set they also prove those roles' grants (infra/iam-check.ts).
 */
let stack: LocalStack;
let sqs: SQSClient;
let api: ReturnType<typeof apiClient>;

// A rows processor that answers only when told: its chunk stays in flight while a test poisons it.
let answer: () => void = () => {};
const answered = new Promise<void>((resolve) => {
  answer = resolve;
});

beforeAll(async () => {
  stack = await startTestStack({
    extraFunctions: [
      {
        name: 'stall-rows',
        handler: async (event) => {
          await answered;
          return { rows: event.chunk.rows.map(({ line }: { line: number }) => ({ line, status: 'ok', result: line })) };
        },
        timeoutSeconds: 30,
        memoryMb: 128,
      },
    ],
    processors: {
      'test.stall': {
        target: { type: 'lambda', functionName: 'stall-rows' },
        kind: 'chunks',
        timeoutSeconds: 20,
        maxAttempts: 1,
      },
    },
  });
  sqs = new SQSClient({});
  api = apiClient(stack);
});
afterAll(async () => {
  answer();
  sqs?.destroy();
  await stack?.stop();
});

const send = (queue: 'submit' | 'workDlq', body: unknown) =>
  sqs.send(new SendMessageCommand({ QueueUrl: stack.info.queues[queue]?.url, MessageBody: JSON.stringify(body) }));

async function queuedJob(type: string): Promise<string> {
  const job = await eventually(
    async () => (await tableItems(stack)).find((i) => i.type === type && i.sk === 'JOB'),
    20_000,
  );
  return String(job.pk).slice('JOB#'.length);
}

describe('a submission through the submit queue', () => {
  it('keeps a large input in S3 and runs it like one posted to the API', async () => {
    const input = { text: 'x'.repeat(80_000) };
    await send('submit', { type: 'queued-large', tasks: [{ processor: 'demo.echo', input }] });
    const done = await api.waitFor(await queuedJob('queued-large'));
    expect(done.status).toBe('SUCCEEDED');
    // demo.echo answers its input: read back from S3.
    expect(done.tasks?.[0]?.result).toEqual({ echo: input });
  });

  it('holds a batch of rows until its release, and reads a batch input file named in the message', async () => {
    const rows = Array.from({ length: 5 }, (_, i) => ({ n: i + 1 }));
    await send('submit', { type: 'queued-held', batch: { processor: 'demo.rows', rows, chunkSize: 2, hold: true } });
    const held = await queuedJob('queued-held');
    expect((await api.get(held)).body.status).toBe('HELD');
    expect((await api.call('POST', `/v1/jobs/${held}/release`)).status).toBe(202);
    const key = `incoming/by-hand-${Date.now()}.jsonl`;
    const { s3 } = createClients();
    await s3.send(
      new PutObjectCommand({
        Bucket: stack.info.buckets.data,
        Key: key,
        Body: rows.map((r) => JSON.stringify(r)).join('\n'),
      }),
    );
    await send('submit', {
      type: 'queued-file',
      batch: { processor: 'demo.rows', input: { bucket: stack.info.buckets.data, key }, chunkSize: 2 },
    });
    for (const id of [held, await queuedJob('queued-file')]) {
      const done = (await api.waitFor(id)) as unknown as { status: string; batch: { chunks: unknown } };
      expect(done.status).toBe('SUCCEEDED');
      expect(done.batch.chunks).toEqual({ total: 3, done: 3 });
    }
  });
});

describe('a dead-lettered task message', () => {
  it('fails its task as poison, and the job with it', async () => {
    const submitted = await api.submit({
      type: 'poisoned',
      tasks: [{ processor: 'demo.sleep', input: { ms: 30_000 } }],
    });
    expect(submitted.status).toBe(202);
    const id = submitted.body.id;
    await send('workDlq', { jobId: id, task: 0 });
    const done = await api.waitFor(id);
    expect(done.status).toBe('FAILED');
    expect(done.tasks?.[0]?.error).toMatchObject({ kind: 'poison' });
  });
});

describe('a dead-lettered chunk message', () => {
  it('fails its rows as poison, so the batch can end', async () => {
    const rows = [{ n: 1 }, { n: 2 }];
    const submitted = await api.submit({
      type: 'poisoned-chunk',
      batch: { processor: 'test.stall', rows, chunkSize: 2 },
    });
    expect(submitted.status).toBe(202);
    const id = submitted.body.id;
    const item = await eventually(async () =>
      (await tableItems(stack)).find((i) => i.pk === `JOB#${id}` && i.sk === 'JOB'),
    );
    await send('workDlq', {
      jobId: id,
      chunk: 0,
      chunks: 1,
      request: String(item.requestHash).slice(0, 16),
      attempt: 1,
      rows: rows.map((input, i) => ({ line: i + 1, input })),
    });
    const done = (await api.waitFor(id)) as unknown as {
      status: string;
      counts: { failed: number };
      batch: { outputs: { errors: { url: string } } };
    };
    expect(done.status).toBe('FAILED');
    expect(done.counts.failed).toBe(2);
    const errors = (await (await fetch(done.batch.outputs.errors.url)).text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(errors.map((e) => e.error?.kind)).toEqual(['poison', 'poison']);
  });
});
