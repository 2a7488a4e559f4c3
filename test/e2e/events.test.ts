import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../local/stack.js';
import { apiClient } from '../support/api.js';
import { startTestStack } from '../support/stack.js';

// biome-ignore lint/suspicious/noExplicitAny: replies are read as a user's script would
type Any = any;

let stack: LocalStack;
let api: ReturnType<typeof apiClient>;

beforeAll(async () => {
  stack = await startTestStack({
    processors: {
      'test.chatty': {
        target: { type: 'lambda', functionName: 'chatty' },
        timeoutSeconds: 5,
        maxAttempts: 2,
        backoff: { type: 'fixed', delaySeconds: 1 },
      },
    },
    extraFunctions: [
      {
        name: 'chatty',
        timeoutSeconds: 5,
        memoryMb: 128,
        // Logs what it does through its reply; fails its first attempt.
        handler: async (event: { task: { attempt: number } }) =>
          event.task.attempt === 1
            ? {
                status: 'error',
                error: { code: 'BUSY', message: 'try later', retryable: true },
                log: [{ level: 'warn', message: 'upstream busy', data: { waitMs: 1000 } }],
              }
            : { status: 'ok', result: { ok: true }, log: [{ message: 'posted 3 entries', data: { entries: 3 } }] },
      },
    ],
  });
  api = apiClient(stack);
});
afterAll(() => stack?.stop());

async function events(id: string): Promise<Any[]> {
  const reply = await api.call<Any>('GET', `/v1/jobs/${id}/events`);
  expect(reply.status).toBe(200);
  return reply.body.items;
}

describe("a job's update log", () => {
  it("reads a sequential job's events in order, with what its processor logged", async () => {
    const job = await api.run({
      type: 'events',
      tasks: [{ processor: 'demo.echo', input: 1 }, { processor: 'test.chatty' }, { processor: 'demo.echo', input: 3 }],
    });
    expect(job.status).toBe('SUCCEEDED');
    const log = await events(job.id);
    const [t0, t1, t2] = job.tasks.map((t) => t.id);
    expect(log.map((e) => [e.type, e.taskId ?? null])).toEqual([
      ['job.submitted', null],
      ['task.queued', t0],
      ['job.started', null],
      ['task.started', t0],
      ['task.succeeded', t0],
      ['task.queued', t1],
      ['task.started', t1],
      ['task.attempt_failed', t1],
      ['task.retry_scheduled', t1],
      ['task.log', t1],
      ['task.started', t1],
      ['task.log', t1],
      ['task.succeeded', t1],
      ['task.queued', t2],
      ['task.started', t2],
      ['task.succeeded', t2],
      ['job.succeeded', null],
    ]);
    const ats = log.map((e) => e.at);
    expect([...ats].sort()).toEqual(ats);
    expect(log.filter((e) => e.type === 'task.log').map((e) => [e.level, e.message, e.data])).toEqual([
      ['warn', 'upstream busy', { waitMs: 1000 }],
      ['info', 'posted 3 entries', { entries: 3 }],
    ]);
    expect(log.find((e) => e.type === 'task.succeeded' && e.taskId === t1).data).toMatchObject({ attempts: 2 });
    expect(log.find((e) => e.type === 'task.attempt_failed').data).toMatchObject({
      attempt: 1,
      error: { code: 'BUSY', message: 'try later' },
    });
    expect(log.find((e) => e.type === 'task.retry_scheduled').data).toMatchObject({ attempt: 1, retryDelaySeconds: 1 });
  });

  it('keeps every attempt of a task that succeeded on its third, in the log and the view', async () => {
    const job = await api.run({ type: 'events', tasks: [{ processor: 'demo.flaky', input: { failTimes: 2 } }] });
    expect(job.status).toBe('SUCCEEDED');
    const task: Any = job.tasks[0];
    expect(task.attempts).toBe(3);
    expect(task.attemptsDropped).toBe(0);
    expect(task.attemptLog.map((a: Any) => [a.attempt, a.outcome, a.error === null, a.retryDelaySeconds])).toEqual([
      [1, 'retried', false, 1],
      [2, 'retried', false, 1],
      [3, 'succeeded', true, null],
    ]);
    for (const a of task.attemptLog) expect(a.startedAt <= a.endedAt).toBe(true);
    const log = await events(job.id);
    expect(log.filter((e) => e.taskId === task.id).map((e) => [e.type, e.data?.attempt ?? null])).toEqual([
      ['task.queued', null],
      ['task.started', 1],
      ['task.attempt_failed', 1],
      ['task.retry_scheduled', 1],
      ['task.started', 2],
      ['task.attempt_failed', 2],
      ['task.retry_scheduled', 2],
      ['task.started', 3],
      ['task.succeeded', null],
    ]);
  });

  it('shows a one-attempt task as one attempt without storing a record for it', async () => {
    const job = await api.run({ type: 'events', tasks: [{ processor: 'demo.echo', input: 1 }] });
    expect(job.tasks[0]).toMatchObject({
      attempts: 1,
      attemptsDropped: 0,
      attemptLog: [{ attempt: 1, outcome: 'succeeded', error: null, retryDelaySeconds: null }],
    });
    expect(job.tasks[0]?.attemptLog[0]?.startedAt).toBe(job.tasks[0]?.startedAt);
  });

  it("tells an aborted job's story, and answers 404 for an unknown job", async () => {
    const { body } = await api.submit({ type: 'events', tasks: [{ processor: 'demo.sleep', input: { ms: 5000 } }] });
    await api.abort(body.id);
    const log = await events(body.id);
    expect(log.at(-1)).toMatchObject({ type: 'job.aborted', level: 'warn' });
    expect(log.some((e) => e.type === 'task.aborted')).toBe(true);
    expect((await api.call('GET', '/v1/jobs/nope/events')).status).toBe(404);
    expect((await api.call('GET', `/v1/jobs/${body.id}/events?cursor=x`)).status).toBe(400);
  });

  it('logs a batch: submitted, planned, chunks done, ended, outputs assembled', async () => {
    const { body } = await api.submit({
      type: 'events',
      batch: { processor: 'demo.rows', rows: [1, 2, { fail: true }], chunkSize: 2, maxFailedRows: 1 },
    });
    let job: Any;
    do job = (await api.get(body.id, 5)).body;
    while (!job.batch.finalized);
    const log = await events(body.id);
    expect(log.map((e) => e.type)).toEqual([
      'job.submitted',
      'batch.planned',
      'batch.chunks_done',
      'job.succeeded',
      'batch.finalized',
    ]);
    expect(log[2].data).toMatchObject({ chunks: 2, succeeded: 2, failed: 1 });
  });
});
