import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { queueDepth } from '../../../test/support/api.js';
import { eventually, startTestStack } from '../../../test/support/stack.js';
import {
  type BatchView,
  InvalidStateError,
  JobsClient,
  NotFoundError,
  UnknownProcessorError,
  ValidationError,
  WaitTimeoutError,
} from '../src/index.js';
import { fileData } from '../src/node.js';
import { enqueue } from '../src/sqs.js';

/** The client against the local stack in LOCAL_AUTH=none: every method, as a user's code calls it. */
let stack: LocalStack;
let client: JobsClient;

beforeAll(async () => {
  stack = await startTestStack();
  client = new JobsClient({ endpoint: stack.info.api, auth: { type: 'none', owner: 'alice' } });
});
afterAll(() => stack?.stop());

const text = async (stream: ReadableStream<Uint8Array>) => new Response(stream).text();
const lines = async (stream: ReadableStream<Uint8Array>) => (await text(stream)).split('\n').filter(Boolean);
const collect = async <T>(items: AsyncIterable<T>) => {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
};

describe('jobs of tasks', () => {
  it('submits, reads and waits for a job until it has settled, telling each view on the way', async () => {
    const job = await client.submit({ type: 'greet', tasks: [{ processor: 'demo.echo', input: { hello: 'world' } }] });
    expect(job).toMatchObject({ type: 'greet', kind: 'tasks', tasks: [{ processor: 'demo.echo' }] });
    // No key was given: the client made one, so its own retries answer this very job.
    expect(job.idempotencyKey).toMatch(/^[0-9a-f-]{36}$/);
    expect((await client.get(job.id)).id).toBe(job.id);
    const seen: string[] = [];
    const done = await client.wait(job.id, { timeoutMs: 20_000, onUpdate: (view) => seen.push(view.status) });
    expect(done.status).toBe('SUCCEEDED');
    expect(seen.at(-1)).toBe('SUCCEEDED');
    expect(done.kind === 'tasks' && done.tasks[0]?.result).toEqual({ echo: { hello: 'world' } });
  });

  it('answers the same job for the same idempotency key', async () => {
    const body = { type: 'keyed', tasks: [{ processor: 'demo.echo' }] };
    const first = await client.submit(body, { idempotencyKey: 'order-42' });
    const again = await client.submit(body, { idempotencyKey: 'order-42' });
    expect(again.id).toBe(first.id);
  });

  it('aborts a running job, and a wait ends with it', async () => {
    const job = await client.submit({ type: 'slow', tasks: [{ processor: 'demo.sleep', input: { ms: 30_000 } }] });
    const aborted = await client.abort(job.id);
    expect(aborted.status).toBe('ABORTED');
    expect((await client.wait(job.id, { timeoutMs: 20_000 })).status).toBe('ABORTED');
  });

  it('gives up a wait after its timeout with the last view, and at once when its signal aborts', async () => {
    const job = await client.submit({ type: 'slow', tasks: [{ processor: 'demo.sleep', input: { ms: 20_000 } }] });
    const timedOut = await client.wait(job.id, { timeoutMs: 1500 }).catch((error: unknown) => error);
    expect(timedOut).toBeInstanceOf(WaitTimeoutError);
    expect((timedOut as WaitTimeoutError<{ id: string }>).last?.id).toBe(job.id);
    const controller = new AbortController();
    const waiting = client.wait(job.id, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('user went away')), 200);
    await expect(waiting).rejects.toThrow('user went away');
    await client.abort(job.id);
  });

  it('lists the update log, and follows it until the job has settled', async () => {
    const job = await client.submit({ type: 'logged', tasks: [{ processor: 'demo.flaky', input: { failTimes: 1 } }] });
    const followed = await collect(client.events(job.id, { follow: true, pollSeconds: 1 }));
    const types = followed.map((event) => event.type);
    expect(types[0]).toBe('job.submitted');
    expect(types.at(-1)).toMatch(/^job\.(succeeded|failed)$/);
    expect(new Set(types.map((t, i) => `${t}#${followed[i]?.at}#${followed[i]?.message}`)).size).toBe(types.length);
    // Read once more without follow: the same log.
    expect((await collect(client.events(job.id))).map((event) => event.type)).toEqual(types);
  });

  it('finds jobs over several pages, and tasks by processor', async () => {
    const type = `paged-${Date.now()}`;
    const ids = new Set<string>();
    for (let i = 0; i < 7; i++) {
      ids.add((await client.submit({ type, meta: { i }, tasks: [{ processor: 'demo.echo', input: i }] })).id);
    }
    const found = await eventually(async () => {
      const jobs = await collect(client.find({ type, limit: 3, order: 'asc' }));
      return jobs.length === 7 && jobs;
    });
    expect(new Set(found.map((job) => job.id))).toEqual(ids);
    const byMeta = await collect(client.find({ type, 'meta.i': '4' }));
    expect(byMeta.map((job) => job.id)).toEqual([found[4]?.id]);
    const tasks = await collect(client.tasks({ processor: 'demo.echo', limit: 2 }));
    expect(tasks.filter((task) => ids.has(task.jobId))).toHaveLength(7);
  });

  it("sees another owner's job as missing: the owner header is the caller", async () => {
    const bob = new JobsClient({ endpoint: stack.info.api, auth: { type: 'none', owner: 'bob' } });
    const job = await client.submit({ type: 'mine', tasks: [{ processor: 'demo.echo' }] });
    await expect(bob.get(job.id)).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('errors', () => {
  it("throws the contract's error of each code, with its status, code, message and details", async () => {
    const missing = await client.get('no-such-job').catch((error: unknown) => error);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect(missing).toMatchObject({ status: 404, code: 'NOT_FOUND', message: expect.stringContaining('no-such-job') });
    const unknown = await client
      .submit({ type: 'x', tasks: [{ processor: 'nobody.here' }] })
      .catch((error: unknown) => error);
    expect(unknown).toBeInstanceOf(UnknownProcessorError);
    expect(unknown).toMatchObject({ status: 400, code: 'UNKNOWN_PROCESSOR' });
    const query = await collect(client.find({ status: 'NOPE' as 'FAILED' })).catch((error: unknown) => error);
    expect(query).toMatchObject({ status: 400, code: 'VALIDATION_FAILED', details: [{ path: 'status' }] });
  });

  it('refuses a body before sending it, with the error the server would answer', async () => {
    // Types stop this at compile time; a caller without them (JSON from a file) meets the same check at run time.
    const bad = { type: 'bad type!', tasks: [] } as unknown as Parameters<JobsClient['submit']>[0];
    const local = await client.submit(bad).catch((error: unknown) => error);
    const sent = await new JobsClient({ endpoint: stack.info.api, validate: false }).submit(bad).catch((e) => e);
    expect(local).toBeInstanceOf(ValidationError);
    expect(sent).toBeInstanceOf(ValidationError);
    const { status, code, message, details } = sent as ValidationError;
    expect(local).toMatchObject({ status, code, message, details });
    expect(details.map((detail) => detail.path).sort()).toEqual(['tasks', 'type']);
  });
});

describe('batches', () => {
  it('uploads a file through the presigned URL with progress, releases it, waits, and reads rows and outputs', async () => {
    const created = await client.submitBatch({
      type: 'import',
      batch: { processor: 'demo.rows', upload: true, input: { format: 'jsonl' }, chunkSize: 50, maxFailedRows: 10 },
    });
    expect(created).toMatchObject({ status: 'HELD', batch: { upload: { method: 'PUT', format: 'jsonl' } } });
    // Released before its file is there: the server's refusal, unchanged.
    await expect(client.release(created.id)).rejects.toBeInstanceOf(InvalidStateError);
    const rows = Array.from({ length: 300 }, (_, i) => JSON.stringify(i === 7 ? { fail: true } : { n: i + 1 }));
    const file = `${rows.join('\n')}\n`;
    const progress: { loaded: number; total: number }[] = [];
    await client.upload(created, file, { onProgress: (p) => progress.push(p) });
    expect(progress.at(-1)).toEqual({ loaded: Buffer.byteLength(file), total: Buffer.byteLength(file) });
    const released = await client.release(created.id);
    expect(released.status).not.toBe('HELD');
    const done = (await client.wait(created.id, { timeoutMs: 60_000 })) as BatchView;
    expect(done).toMatchObject({ status: 'SUCCEEDED', counts: { total: 300, succeeded: 299, failed: 1 } });
    expect(done.batch.finalized).toBe(true);
    const failed = await collect(client.rows(created.id, { status: 'FAILED' }));
    expect(failed).toMatchObject([{ line: 8, status: 'FAILED', error: { code: 'ROW_FAIL' } }]);
    const all = await collect(client.rows(created.id, { limit: 40 }));
    expect(all.map((row) => row.line)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    const echo = await lines(await client.download(done.batch.outputs.echo!));
    expect(echo).toHaveLength(299);
    expect(JSON.parse(echo[0]!)).toEqual({ n: 1 });
    const results = await lines(await client.download(done.batch.outputs.results!.url));
    expect(results).toHaveLength(300);
  }, 90_000);

  it('uploads a stream: a file from the ./node entry, a sized stream as it is read, an unsized one read first', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'client-upload-'));
    const path = join(dir, 'rows.csv');
    writeFileSync(path, `n,memo\n${Array.from({ length: 120 }, (_, i) => `${i + 1},row ${i + 1}`).join('\n')}\n`);
    const sources = [
      async () => ({ data: await fileData(path) }),
      async () => ({ data: Readable.toWeb(Readable.from([Buffer.from('n\n1\n'), Buffer.from('2\n')])), size: 6 }),
      async () => ({ data: Readable.from([Buffer.from('n\n1\n2\n3\n')]) }),
    ];
    const totals: number[] = [];
    for (const source of sources) {
      const { data, size } = (await source()) as { data: Blob | AsyncIterable<Uint8Array>; size?: number };
      const created = await client.submitBatch({
        type: 'stream',
        batch: { processor: 'demo.rows', upload: true, input: { format: 'csv' } },
      });
      let last = 0;
      await client.upload(created, data as Blob, { ...(size ? { size } : {}), onProgress: (p) => (last = p.loaded) });
      expect(last).toBeGreaterThan(0);
      await client.release(created.id);
      totals.push((await client.wait(created.id, { timeoutMs: 60_000 })).counts.total);
    }
    expect(totals).toEqual([120, 2, 3]);
  }, 120_000);

  it('appends rows to a held batch (a repeated key appends once), releases it and waits', async () => {
    const held = await client.submitBatch({ type: 'held', batch: { processor: 'demo.rows', hold: true } });
    expect(held.status).toBe('HELD');
    await client.append(held.id, [{ n: 1 }, { n: 2 }], { idempotencyKey: 'part-1' });
    expect(await client.append(held.id, [{ n: 1 }, { n: 2 }], { idempotencyKey: 'part-1' })).toEqual({
      appended: 2,
      totalRows: 2,
    });
    expect(await client.append(held.id, [{ n: 3 }])).toEqual({ appended: 1, totalRows: 3 });
    await client.release(held.id);
    const done = await client.wait(held.id, { timeoutMs: 60_000 });
    expect(done).toMatchObject({ status: 'SUCCEEDED', counts: { total: 3, succeeded: 3 } });
  }, 90_000);
});

describe('enqueue onto the submit queue', () => {
  it('makes one job of a message, whose key the client chose', async () => {
    const sqs = new SQSClient({});
    try {
      const type = `queued-${Date.now()}`;
      const queueUrl = stack.info.queues.submit!.url;
      const sent = await enqueue(sqs, queueUrl, { type, tasks: [{ processor: 'demo.echo', input: 'q' }] });
      expect(sent.idempotencyKey).toMatch(/^[0-9a-f-]{36}$/);
      // The same message again (a sender's retry): still one job.
      await enqueue(sqs, queueUrl, { type, tasks: [{ processor: 'demo.echo', input: 'q' }] }, sent);
      await eventually(async () => (await queueDepth(stack, 'submit')) === 0, 20_000);
      // Sent with the local cloud's credentials: the job is the default local principal's.
      const local = new JobsClient({ endpoint: stack.info.api });
      const jobs = await eventually(async () => {
        const found = await collect(local.find({ type }));
        return found.length > 0 && found;
      }, 20_000);
      expect(jobs).toHaveLength(1);
      expect((await local.wait(jobs[0]!.id, { timeoutMs: 20_000 })).status).toBe('SUCCEEDED');
      await expect(enqueue(sqs, queueUrl, { type: 'no tasks' } as never)).rejects.toBeInstanceOf(ValidationError);
    } finally {
      sqs.destroy();
    }
  }, 40_000);
});
