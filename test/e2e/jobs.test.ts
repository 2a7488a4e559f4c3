import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../local/stack.js';
import { apiClient } from '../support/api.js';
import { eventually, startTestStack } from '../support/stack.js';

let stack: LocalStack;
let api: ReturnType<typeof apiClient>;

beforeAll(async () => {
  stack = await startTestStack();
  api = apiClient(stack);
});
afterAll(() => stack?.stop());

const echo = (input: unknown, name?: string) => ({ processor: 'demo.echo', input, ...(name ? { name } : {}) });

describe('jobs of tasks, end to end over HTTP with the demo processors', () => {
  it('runs a sequential job of echo tasks to SUCCEEDED with results in order', async () => {
    const job = await api.run({
      type: 'demo',
      name: 'three echoes',
      tasks: [echo(1, 'one'), echo({ two: 2 }), echo('three')],
    });
    expect(job.status).toBe('SUCCEEDED');
    expect(job.tasks.map((t) => t.result)).toEqual([{ echo: 1 }, { echo: { two: 2 } }, { echo: 'three' }]);
    expect(job.tasks.map((t) => t.status)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    // Each task started only after the one before it ended.
    for (let i = 1; i < job.tasks.length; i++) {
      expect(Date.parse(job.tasks[i]!.startedAt!)).toBeGreaterThanOrEqual(Date.parse(job.tasks[i - 1]!.endedAt!));
    }
    expect(job.counts).toEqual({ total: 3, pending: 0, running: 0, succeeded: 3, failed: 0, aborted: 0 });
    expect(job.progress).toBe(1);
    expect(job.name).toBe('three echoes');
  });

  it('stops a sequential job at its failing task: FAILED, the rest ABORTED and never invoked', async () => {
    const job = await api.run({
      type: 'demo',
      tasks: [echo('first'), { processor: 'demo.fail', input: { code: 'NOPE' } }, echo('never')],
    });
    expect(job.status).toBe('FAILED');
    expect(job.tasks.map((t) => t.status)).toEqual(['SUCCEEDED', 'FAILED', 'ABORTED']);
    expect(job.tasks[1]?.error).toEqual({ kind: 'error', code: 'NOPE', message: 'demo.fail failed with NOPE' });
    expect(job.tasks[1]?.attempts).toBe(1);
    expect(job.tasks[2]).toMatchObject({ attempts: 0, startedAt: null, result: null, error: { kind: 'aborted' } });
  });

  it('ends a concurrent job of echo + fail FAILED with the echo SUCCEEDED', async () => {
    const job = await api.run({
      type: 'demo',
      strategy: 'concurrent',
      tasks: [echo('ok'), { processor: 'demo.fail' }],
    });
    expect(job.status).toBe('FAILED');
    expect(job.tasks[0]).toMatchObject({ status: 'SUCCEEDED', result: { echo: 'ok' } });
    expect(job.tasks[1]).toMatchObject({ status: 'FAILED', error: { kind: 'error', code: 'DEMO_FAIL' } });
  });

  it('runs concurrent tasks side by side', async () => {
    const job = await api.run({
      type: 'demo',
      strategy: 'concurrent',
      tasks: Array.from({ length: 4 }, () => ({ processor: 'demo.sleep', input: { ms: 2500 } })),
    });
    expect(job.status).toBe('SUCCEEDED');
    const started = job.tasks.map((t) => Date.parse(t.startedAt!));
    const ended = job.tasks.map((t) => Date.parse(t.endedAt!));
    // All four were running at the same moment.
    expect(Math.max(...started)).toBeLessThan(Math.min(...ended));
  });

  it('retries demo.flaky with failTimes 2 and SUCCEEDS on attempt 3', async () => {
    const job = await api.run({ type: 'demo', tasks: [{ processor: 'demo.flaky', input: { failTimes: 2 } }] });
    expect(job.status).toBe('SUCCEEDED');
    expect(job.tasks[0]).toMatchObject({ attempts: 3, result: { attempt: 3 }, error: null });
  });

  it('fails demo.crash with kind crash after 2 attempts', async () => {
    const job = await api.run({ type: 'demo', tasks: [{ processor: 'demo.crash' }] });
    expect(job.status).toBe('FAILED');
    expect(job.tasks[0]).toMatchObject({ status: 'FAILED', attempts: 2, error: { kind: 'crash' } });
    expect(job.tasks[0]?.error?.message).toContain('demo.crash always throws');
  });

  it('aborts a job whose first task sleeps: ABORTED at once, later tasks never run', async () => {
    const submitted = await api.submit({
      type: 'demo',
      tasks: [{ processor: 'demo.sleep', input: { ms: 5000 } }, echo('later')],
    });
    const id = submitted.body.id;
    await eventually(async () => (await api.get(id)).body.tasks[0]?.status === 'RUNNING');
    const aborted = await api.abort(id);
    expect(aborted.status).toBe(202);
    expect(aborted.body.status).toBe('ABORTED');
    expect(aborted.body.tasks.map((t) => t.status)).toEqual(['ABORTED', 'ABORTED']);

    // demo.sleep notices the abort and stops early; its late reply is kept as history only.
    const late = await eventually(async () => {
      const { body } = await api.get(id);
      return body.tasks[0]!.history.length > 0 ? body : undefined;
    }, 5000);
    expect(late.status).toBe('ABORTED');
    expect(late.tasks[0]).toMatchObject({ status: 'ABORTED', error: { kind: 'aborted' } });
    expect(late.tasks[1]).toMatchObject({ status: 'ABORTED', attempts: 0, startedAt: null });

    const again = await api.abort(id);
    expect(again.status).toBe(200);
    expect(again.body.updatedAt).toBe(late.updatedAt);
  });

  it('refuses to abort a finished job with 409 INVALID_STATE', async () => {
    const job = await api.run({ type: 'demo', tasks: [echo(1)] });
    const reply = await api.abort(job.id);
    expect(reply.status).toBe(409);
    expect(reply.body).toMatchObject({ error: { code: 'INVALID_STATE' } });
    expect((await api.get(job.id)).body.status).toBe('SUCCEEDED');
  });

  it('answers an idempotent replay with the first job, and a different body with 409', async () => {
    const body = { type: 'demo', tasks: [echo('once')] };
    const first = await api.submit(body, { 'Idempotency-Key': 'order-7731' });
    expect(first.status).toBe(202);
    expect(first.headers.get('location')).toBe(`/v1/jobs/${first.body.id}`);
    const replay = await api.submit(body, { 'Idempotency-Key': 'order-7731' });
    expect(replay.status).toBe(200);
    expect(replay.body.id).toBe(first.body.id);
    const viaField = await api.submit({ ...body, idempotencyKey: 'order-7731' });
    expect(viaField.body.id).toBe(first.body.id);
    const other = await api.submit({ type: 'demo', tasks: [echo('twice')] }, { 'Idempotency-Key': 'order-7731' });
    expect(other.status).toBe(409);
    expect(other.body).toMatchObject({ error: { code: 'IDEMPOTENCY_MISMATCH' } });
    const done = await api.waitFor(first.body.id);
    expect(done.tasks[0]?.attempts).toBe(1);
  });

  it('runs a job sent on the submit queue, once even when the message is redelivered', async () => {
    const sqs = new SQSClient({});
    try {
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: stack.info.queues.submit?.url,
          MessageBody: JSON.stringify({ type: 'from-queue', meta: { request_id: 'q-1' }, tasks: [echo('queued')] }),
          MessageAttributes: { IdempotencyKey: { DataType: 'String', StringValue: 'queue-key-1' } },
        }),
      );
      const replay = await eventually(async () => {
        const reply = await api.submit(
          { type: 'from-queue', meta: { request_id: 'q-1' }, tasks: [echo('queued')] },
          { 'Idempotency-Key': 'queue-key-1' },
        );
        return reply.status === 200 ? reply : undefined;
      });
      const job = await api.waitFor(replay.body.id);
      expect(job).toMatchObject({ type: 'from-queue', status: 'SUCCEEDED', meta: { request_id: 'q-1' } });
      expect(job.tasks[0]?.result).toEqual({ echo: 'queued' });
    } finally {
      sqs.destroy();
    }
  });

  it('keeps large inputs and results in S3 and shows the values', async () => {
    const big = { blob: 'x'.repeat(100 * 1024) };
    const job = await api.run({ type: 'demo', tasks: [echo(big)] });
    expect(job.status).toBe('SUCCEEDED');
    expect(job.tasks[0]?.result).toEqual({ echo: big });
  });

  it('runs tasks whose inputs hold any JSON number or add up past one DynamoDB item', async () => {
    const numbers = await api.run({ type: 'numbers', tasks: [echo({ huge: 1e200, big: 9007199254740991 })] });
    expect(numbers.tasks[0]?.result).toEqual({ echo: { huge: 1e200, big: 9007199254740991 } });
    const wide = await api.run({
      type: 'wide',
      strategy: 'concurrent',
      tasks: Array.from({ length: 8 }, (_, i) => echo({ pad: String(i).repeat(60_000) })),
    });
    expect(wide.status).toBe('SUCCEEDED');
    expect(wide.tasks[3]?.result).toEqual({ echo: { pad: '3'.repeat(60_000) } });
  });

  it('answers 404 for an unknown job, however long its id', async () => {
    expect((await api.get('x'.repeat(3000))).status).toBe(404);
    const reply = await api.get('j-does-not-exist');
    expect(reply.status).toBe(404);
    expect(reply.body).toMatchObject({ error: { code: 'NOT_FOUND' } });
    expect((await api.abort('j-does-not-exist')).status).toBe(404);
  });
});
