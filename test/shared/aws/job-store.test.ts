import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { clients } from '../../../shared/aws/clients.js';
import { DynamoJobIndex } from '../../../shared/aws/job-index.js';
import { DynamoJobStore } from '../../../shared/aws/job-store.js';
import { dynamoItemSize } from '../../../shared/aws/meter.js';
import { S3PayloadStore } from '../../../shared/aws/payloads.js';
import { type ProcessorInvoker, type TaskRequest, taskInput, type WorkQueue } from '../../../shared/core/ports.js';
import { ProcessorRegistry } from '../../../shared/core/processors.js';
import { abortJob } from '../../../shared/core/tasks/repairs.js';
import type { AttemptOutcome } from '../../../shared/core/tasks/transitions.js';
import { createJob } from '../../../shared/core/tasks/transitions.js';
import { taskJobs } from '../../support/engines.js';
import { testProcessor } from '../../support/processors.js';
import { startTestStack } from '../../support/stack.js';

let stack: LocalStack;
let store: DynamoJobStore;
let payloads: S3PayloadStore;

beforeAll(async () => {
  stack = await startTestStack({ startPollers: false });
  payloads = new S3PayloadStore(clients().s3, stack.info.buckets.data, 1024);
  store = new DynamoJobStore(clients().doc, stack.info.tables.jobs, payloads, 1);
});
afterAll(() => stack?.stop());

const newJob = (id: string, input: unknown = 1) =>
  createJob(
    { type: 't', strategy: 'sequential', failFast: false, tasks: [{ processor: 'p', input }] },
    { jobId: id, taskIds: [`${id}.0`] },
    new Date(),
    { owner: 'o', requestHash: 'h' },
  ).job;

describe('DynamoJobStore on the embedded DynamoDB', () => {
  it('creates once and hands back the existing job on a second create', async () => {
    const job = newJob('store-1');
    expect(await store.create(job)).toEqual({ created: true });
    const again = await store.create({ ...job, requestHash: 'other' });
    expect(again.created).toBe(false);
    if (!again.created) expect(again.existing.requestHash).toBe('h');
  });

  it('refuses a write that names a version someone else already replaced', async () => {
    const job = newJob('store-2');
    await store.create(job);
    const mine = { ...job, version: 2, name: 'mine' };
    const theirs = { ...job, version: 2, name: 'theirs' };
    expect(await store.replace(theirs, 1)).toBe(true);
    expect(await store.replace(mine, 1)).toBe(false);
    expect((await store.get('store-2'))?.name).toBe('theirs');
  });

  it('keeps large inputs in S3 behind a reference and reads them back', async () => {
    const big = { rows: 'y'.repeat(5000) };
    await store.create(newJob('store-3', big));
    const { Items = [] } = await clients().doc.send(new ScanCommand({ TableName: stack.info.tables.jobs }));
    const item = Items.find((i) => i.pk === 'JOB#store-3');
    expect(JSON.stringify(item).length).toBeLessThan(1000);
    const stored = await store.get('store-3');
    expect(await taskInput(payloads, stored!.id, stored!.tasks[0]!)).toEqual(big);
  });

  it('stores a large job compact, a small one as readable attributes, and reads both back as written', async () => {
    const ids = Array.from({ length: 100 }, (_, i) => `store-compressed.${i}`);
    const { job: large } = createJob(
      {
        type: 't',
        strategy: 'concurrent',
        failFast: false,
        tasks: ids.map((_, i) => ({ processor: 'demo.echo', name: `step ${i}`, input: { i, note: 'hello' } })),
      },
      { jobId: 'store-compressed', taskIds: ids },
      new Date(),
      { owner: 'o', requestHash: 'h' },
    );
    await store.create(large);
    const one = newJob('store-small');
    await store.create(one);
    const item = async (id: string) =>
      (await clients().doc.send(new ScanCommand({ TableName: stack.info.tables.jobs }))).Items?.find(
        (i) => i.pk === `JOB#${id}`,
      );
    const compressed = await item('store-compressed');
    expect(compressed?.tasks).toBeUndefined();
    expect(compressed?.jobZ).toBeInstanceOf(Uint8Array);
    // Billed per started KB on every rewrite: the list of 100 maps would be well over 10 KB.
    expect(dynamoItemSize(compressed)).toBeLessThan(3 * 1024);
    expect(await store.get('store-compressed')).toEqual(large);
    const small = await item('store-small');
    expect(small?.tasksZ).toBeUndefined();
    expect(small?.tasks?.[0]?.processor).toBe('p');
    expect(await store.get('store-small')).toEqual(one);
  });

  it('reads a job past its retention as gone and lets its id be used again', async () => {
    const job = newJob('store-4');
    const ended = { ...job, status: 'SUCCEEDED' as const, endedAt: new Date(Date.now() - 2 * 86400_000).toISOString() };
    await store.create(ended);
    expect(await store.get('store-4')).toBeUndefined();
    expect(await store.create(newJob('store-4'))).toEqual({ created: true });
    expect((await store.get('store-4'))?.status).toBe('PENDING');
  });
});

describe('a zombie worker against the real store', () => {
  it('cannot overwrite the attempt that replaced it; its outcome is kept as history', async () => {
    let now = Date.now();
    const releases: ((o: AttemptOutcome) => void)[] = [];
    const invoker: Pick<ProcessorInvoker, 'invoke'> = {
      invoke: (_p, request: TaskRequest) =>
        request.task.attempt === 1
          ? new Promise((resolve) => releases.push(resolve))
          : Promise.resolve({ status: 'ok', result: { by: request.task.attempt } }),
    };
    const sent: unknown[] = [];
    const queue: WorkQueue = { send: async (messages) => void sent.push(...messages) };
    const engine = taskJobs({
      store,
      queue,
      invoker,
      payloads,
      processors: new ProcessorRegistry([testProcessor('p', { timeoutSeconds: 60 })]),
      clock: { now: () => new Date(now) },
      leaseMarginSeconds: 5,
      // Write the start at once, so the test sees the lease the zombie then loses.
      recordStartAfterMs: 0,
    });
    const { job } = await engine.submit({ type: 'zombie', tasks: [{ processor: 'p', input: 'x' }] }, 'o');
    // The task's message as the submit sent it (with the ticket the task waits for).
    const message = sent[0] as { jobId: string; task: number; ticket: string };
    expect(message).toMatchObject({ jobId: job.id, task: 0 });
    const zombie = engine.runTask(message, { messageId: 'm1' });
    await new Promise((r) => setTimeout(r, 200));
    expect((await store.get(job.id))?.tasks[0]).toMatchObject({ status: 'RUNNING', attempts: 1 });

    // The lease lapses (the worker looks dead) and the message comes back: attempt 2.
    now += 66_000;
    expect(await engine.runTask(message, { messageId: 'm1' })).toEqual({ kind: 'done' });
    // The zombie wakes up and reports success for attempt 1.
    releases[0]?.({ status: 'ok', result: { by: 1 } });
    expect(await zombie).toEqual({ kind: 'keep' });

    const final = await store.get(job.id);
    expect(final?.status).toBe('SUCCEEDED');
    expect(final?.tasks[0]).toMatchObject({ attempts: 2, result: { by: 2 }, late: [{ attempt: 1, status: 'ok' }] });
  });
});

describe('review findings, as regressions', () => {
  it('a refused replay with another large input does not touch the first job’s stored input', async () => {
    const first = { ...newJob('store-5', { big: 'a'.repeat(3000) }), requestHash: 'hash-first' };
    await store.create(first);
    const other = { ...newJob('store-5', { big: 'b'.repeat(3000) }), requestHash: 'hash-other' };
    expect((await store.create(other)).created).toBe(false);
    const stored = await store.get('store-5');
    expect(await taskInput(payloads, stored!.id, stored!.tasks[0]!)).toEqual({ big: 'a'.repeat(3000) });
  });

  it('treats its own committed write as won when the SDK’s retry of it is refused', async () => {
    const job = newJob('store-6');
    await store.create(job);
    const { doc } = clients();
    // The first Put commits but its answer is lost; the SDK sends it again and that is refused.
    const replay = 'replay-put';
    doc.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'PutItemCommand') return next(args);
        await next(args);
        return next(args);
      },
      { step: 'initialize', name: replay },
    );
    try {
      const racing = new DynamoJobStore(doc, stack.info.tables.jobs, payloads, 1);
      // Simulate the lost first response: the write lands, then a refused retry is what we see.
      const twice = { ...job, version: 2, name: 'mine' };
      expect(await racing.replace(twice, 1)).toBe(true);
      expect((await store.get('store-6'))?.name).toBe('mine');
    } finally {
      doc.middlewareStack.remove(replay);
    }
  });

  it('keeps any JSON number and an item within budget however inputs add up', async () => {
    const numbers = { huge: 1e200, tiny: 1e-200, long: 9007199254740991 };
    await store.create(newJob('store-7', numbers));
    expect((await store.get('store-7'))?.tasks[0]?.input).toEqual(numbers);

    const many = createJob(
      {
        type: 't',
        strategy: 'concurrent',
        failFast: false,
        tasks: Array.from({ length: 8 }, (_, i) => ({ processor: 'p', input: { pad: String(i).repeat(60_000) } })),
      },
      { jobId: 'store-8', taskIds: Array.from({ length: 8 }, (_, i) => `store-8.${i}`) },
      new Date(),
      { owner: 'o', requestHash: 'h8' },
    ).job;
    // 64 KiB limit per value, but together they would pass DynamoDB's 400 KB item limit.
    const wide = new DynamoJobStore(
      clients().doc,
      stack.info.tables.jobs,
      new S3PayloadStore(clients().s3, stack.info.buckets.data),
      1,
    );
    expect(await wide.create(many)).toEqual({ created: true });
    const read = await wide.get('store-8');
    expect(await taskInput(payloads, read!.id, read!.tasks[7]!)).toEqual({ pad: '7'.repeat(60_000) });
  });
});

describe('a worker that does not know a task’s processor', () => {
  it('fails the task (crash, UNKNOWN_PROCESSOR) instead of dropping its message forever', async () => {
    const deps = {
      store,
      queue: { send: async () => {} },
      invoker: { invoke: async () => ({ status: 'ok' as const, result: null }) },
      payloads,
      clock: { now: () => new Date() },
    };
    const p = {
      kind: 'tasks' as const,
      target: { type: 'lambda' as const, functionName: 'p' },
      timeoutSeconds: 5,
      maxAttempts: 1,
      backoff: { type: 'fixed' as const, delaySeconds: 0 },
    };
    const api = taskJobs({ ...deps, processors: new ProcessorRegistry([{ name: 'p.old', ...p }]) });
    const worker = taskJobs({ ...deps, processors: new ProcessorRegistry([{ name: 'p.new', ...p }]) });
    const { job } = await api.submit({ type: 'drift', tasks: [{ processor: 'p.old' }] }, 'o');
    expect(await worker.runTask({ jobId: job.id, task: 0 }, { messageId: 'm' })).toEqual({ kind: 'done' });
    const failed = await store.get(job.id);
    expect(failed?.status).toBe('FAILED');
    expect(failed?.tasks[0]?.error).toMatchObject({ kind: 'crash', code: 'UNKNOWN_PROCESSOR' });
  });
});

describe('a task message that overtakes its job', () => {
  it('is held while young (its job is about to be written) and dropped once old', async () => {
    const engine = taskJobs({
      store,
      queue: { send: async () => {} },
      invoker: { invoke: async () => ({ status: 'ok' as const, result: null }) },
      payloads,
      processors: new ProcessorRegistry([]),
      clock: { now: () => new Date() },
    });
    const message = { jobId: 'not-written-yet', task: 0 };
    expect(await engine.runTask(message, { messageId: 'm', sentAt: Date.now() - 1000 })).toEqual({
      kind: 'retry',
      delaySeconds: 2,
    });
    expect(await engine.runTask(message, { messageId: 'm', sentAt: Date.now() - 120_000 })).toEqual({ kind: 'done' });
  });
});

describe('retention', () => {
  it('treats a job past its retention as gone (read, search) and the local sweeper deletes it', async () => {
    const longAgo = new Date(Date.now() - 40 * 86400_000);
    const created = createJob(
      { type: 'old-news', strategy: 'sequential', failFast: false, tasks: [{ processor: 'p', input: 1 }] },
      { jobId: 'retained-1', taskIds: ['retained-1.0'] },
      longAgo,
      { owner: 'o', requestHash: 'h' },
    ).job;
    const finished = abortJob(created, longAgo).job;
    // Kept 30 days by type, past that now; a fresh one of another type stays.
    const store30 = new DynamoJobStore(clients().doc, stack.info.tables.jobs, payloads, 365, { 'old-news': 30 });
    await store30.create(finished);
    await store30.create(newJob('retained-2'));
    expect(await store30.read('retained-1')).toBeUndefined();
    const index = new DynamoJobIndex(clients().doc, stack.info.tables.jobs);
    expect(await index.load(['retained-1', 'retained-2'])).toHaveLength(1);
    expect(await store30.purgeExpired(new Date())).toBeGreaterThanOrEqual(1);
    const { Items = [] } = await clients().doc.send(new ScanCommand({ TableName: stack.info.tables.jobs }));
    expect(Items.map((i) => i.pk)).not.toContain('JOB#retained-1');
    expect(Items.map((i) => i.pk)).toContain('JOB#retained-2');
  });
});
