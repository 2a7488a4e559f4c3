import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../local/stack.js';
import { S3BatchFiles } from '../../shared/aws/batch-files.js';
import { clients } from '../../shared/aws/clients.js';
import { DynamoJobStore } from '../../shared/aws/job-store.js';
import { S3PayloadStore } from '../../shared/aws/payloads.js';
import { DynamoTallyStore } from '../../shared/aws/tally-store.js';
import { type BatchDeps, BatchEngine } from '../../shared/core/batches/engine.js';
import type { ChunkRequest, WorkQueue } from '../../shared/core/ports.js';
import { ProcessorRegistry } from '../../shared/core/processors.js';
import { parseOrThrow, submitBatchSchema, type WorkMessage } from '../../shared/core/schemas.js';
import { Cursors } from '../../shared/core/search.js';
import { countingS3 } from '../support/counting-s3.js';
import { startTestStack } from '../support/stack.js';

/**
 * The batch use cases on the real store, tallies and files (embedded cloud, no pollers), with the
 * work queue kept in memory so a test decides which messages are delivered, twice, or lost.
 */
let stack: LocalStack;
let engine: BatchEngine;
let deps: BatchDeps;
const queue: WorkMessage[] = [];
const memoryQueue: WorkQueue = {
  send: async (messages) => {
    queue.push(...messages);
  },
};

beforeAll(async () => {
  stack = await startTestStack({ startPollers: false });
  const { doc, s3 } = clients();
  const store = new DynamoJobStore(doc, stack.info.tables.jobs, new S3PayloadStore(s3, stack.info.buckets.data), 1);
  deps = {
    store,
    tallies: new DynamoTallyStore(doc, stack.info.tables.jobs, 1),
    files: new S3BatchFiles(s3, stack.info.buckets.data),
    queue: memoryQueue,
    invoker: {
      invoke: async () => ({ status: 'ok', result: null }),
      invokeChunk: async (_processor, request: ChunkRequest) => ({
        status: 'reply',
        reply: { rows: request.chunk.rows.map(({ line, input }) => ({ line, status: 'ok', result: input })) },
      }),
    },
    processors: ProcessorRegistry.fromJson(
      JSON.stringify({ rows: { kind: 'chunks', target: { type: 'lambda', functionName: 'f' }, timeoutSeconds: 5 } }),
      { workerTimeoutSeconds: 300, maxReceiveCount: 30 },
    ),
    clock: { now: () => new Date() },
    cursors: new Cursors(async () => 'test-key'),
  };
  engine = new BatchEngine(deps);
});
afterAll(() => stack?.stop());

const OWNER = { owner: 'o', admin: false };

async function submit(batch: Record<string, unknown>, key?: string) {
  const prepared = engine.prepare(parseOrThrow(submitBatchSchema, { type: 't', batch }, 'Job'), OWNER.owner, key);
  return (await engine.commit(prepared)).job.id;
}

/** Delivers every queued message (once), except those `lose` picks; returns what was lost. */
async function drain(
  lose: (message: WorkMessage) => boolean = () => false,
  by: BatchEngine = engine,
  planDeadline?: number,
): Promise<WorkMessage[]> {
  const lost: WorkMessage[] = [];
  while (queue.length > 0) {
    const message = queue.shift() as WorkMessage;
    if (lose(message)) {
      lost.push(message);
      continue;
    }
    if ('chunk' in message) await by.runChunk(message, { messageId: 'm', receiveCount: 1, sentAt: Date.now() });
    else if ('step' in message && message.step === 'plan')
      await by.plan(
        message.jobId,
        { sentAt: Date.now() },
        {
          ...(message.from !== undefined ? { from: message.from } : {}),
          ...(message.resume !== undefined ? { resume: message.resume } : {}),
          ...(planDeadline !== undefined ? { deadline: planDeadline } : {}),
        },
      );
    else if ('step' in message)
      await by.finalize(message.jobId, message.from !== undefined ? { from: message.from } : {});
  }
  return lost;
}

describe('the sweeper repairs a batch whose step message was lost', () => {
  it('finalizes a batch whose finalize step was lost after its last chunk', async () => {
    const id = await submit({ processor: 'rows', rows: [1, 2, 3, 4, 5], chunkSize: 2 });
    const lost = await drain((m) => 'step' in m && m.step === 'finalize');
    expect(lost).toHaveLength(1);
    expect((await engine.get(id)).status).toBe('RUNNING');
    expect(await engine.sweepOne(id, 0)).toBe(true);
    await drain();
    const job = await engine.get(id);
    expect(job.status).toBe('SUCCEEDED');
    expect(job.batch.counts).toEqual({ succeeded: 5, failed: 0, aborted: 0 });
    expect(job.batch.outputs?.results?.lines).toBe(5);
  });

  it('plans again a batch whose chunk messages were lost, running only the chunks not committed', async () => {
    const id = await submit({ processor: 'rows', rows: [1, 2, 3, 4, 5, 6], chunkSize: 2, hold: true });
    await engine.release(id, OWNER);
    let chunksLost = 0;
    // The plan runs; of its three chunk messages, two are lost.
    await drain((m) => 'chunk' in m && m.chunk > 0 && ++chunksLost > 0);
    expect(chunksLost).toBe(2);
    expect(await engine.sweepOne(id, 0)).toBe(true);
    const sent: number[] = [];
    await drain((m) => {
      if ('chunk' in m) sent.push(m.chunk);
      return false;
    });
    expect(sent).toEqual([1, 2]);
    expect((await engine.get(id)).batch.counts).toEqual({ succeeded: 6, failed: 0, aborted: 0 });
  });

  it('leaves a finished batch alone, and a second finalize changes nothing', async () => {
    const id = await submit({ processor: 'rows', rows: [1], chunkSize: 1 });
    await drain();
    const done = await engine.get(id);
    await engine.finalize(id);
    expect(await engine.get(id)).toEqual(done);
    expect(await engine.sweepOne(id, 0)).toBe(false);
  });
});

describe('a large input is planned in slices', () => {
  const rows = Array.from({ length: 25 }, (_, i) => i + 1);

  it('sends at most a slice of chunks per plan step and hands the rest to the next step', async () => {
    const sliced = new BatchEngine({ ...deps, planChunksPerStep: 3 });
    const id = await submit({ processor: 'rows', rows, chunkSize: 2, hold: true });
    await sliced.release(id, OWNER);
    const steps: (number | undefined)[] = [];
    const sent: number[] = [];
    await drain((m) => {
      if ('step' in m && m.step === 'plan') steps.push(m.from);
      if ('chunk' in m) sent.push(m.chunk);
      return false;
    }, sliced);
    // 13 chunks, 3 per step: the first step sends 0–2, the next ones go on from 3, 6, 9 and 12.
    expect(steps).toEqual([undefined, 3, 6, 9, 12]);
    expect(sent.sort((a, b) => a - b)).toEqual(Array.from({ length: 13 }, (_, i) => i));
    const job = await sliced.get(id);
    expect(job.status).toBe('SUCCEEDED');
    expect(job.batch.counts).toEqual({ succeeded: 25, failed: 0, aborted: 0 });
  });

  it('sends at least one chunk per step when steps are out of time, so the plan always moves on', async () => {
    const id = await submit({ processor: 'rows', rows: [1, 2, 3, 4, 5, 6, 7], chunkSize: 2, hold: true });
    await engine.release(id, OWNER);
    const steps: (number | undefined)[] = [];
    await drain(
      (m) => {
        if ('step' in m && m.step === 'plan') steps.push(m.from);
        return false;
      },
      engine,
      Date.now() - 1,
    );
    expect(steps).toEqual([undefined, 1, 2, 3]);
    expect((await engine.get(id)).batch.counts).toEqual({ succeeded: 7, failed: 0, aborted: 0 });
  });

  it('resumes each slice where the last one stopped in the file, reading a CSV as one pass would', async () => {
    const { s3 } = clients();
    const bucket = stack.info.buckets.data!;
    // A byte-order mark, CRLF line ends, blank lines, quoted fields with commas and line breaks,
    // non-ASCII text, a ragged record and a badly quoted one: every boundary a resume could break.
    const records = ['\uFEFFid,name,note'];
    for (let n = 1; n <= 40; n++) {
      if (n === 7) records.push('7,ragged');
      else if (n === 19) records.push('19,x"y"z,w');
      else if (n === 40) records.push('40,"never closed,x');
      else if (n % 5 === 0) records.push(`${n},"Zoë, ${n}","two\r\nlines"`);
      else records.push(`${n},name ${n},ok`);
      if (n % 9 === 0) records.push('');
    }
    const key = 'incoming/resumed.csv';
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: records.join('\r\n') }));
    const run = async (by: BatchEngine) => {
      const id = await submit({ processor: 'rows', input: { bucket, key, format: 'csv' }, chunkSize: 3 });
      const resumes: unknown[] = [];
      await drain((m) => {
        if ('step' in m && m.step === 'plan' && m.from) resumes.push(m.resume);
        return false;
      }, by);
      const job = await by.get(id);
      return { resumes, counts: job.batch.counts, rows: await deps.files.getOutcomes(job.batch.outputs!.results!.key) };
    };
    const whole = await run(engine);
    const sliced = await run(new BatchEngine({ ...deps, planChunksPerStep: 2 }));
    expect(whole.resumes).toEqual([]);
    // 40 records in chunks of 3: 14 chunks, 2 per step, so 6 steps that each resume in the file.
    expect(sliced.resumes).toHaveLength(6);
    expect(sliced.resumes.every((r) => (r as { byte: number }).byte > 0)).toBe(true);
    expect(sliced.rows).toEqual(whole.rows);
    expect(sliced.counts).toEqual(whole.counts);
    // The record with a quoted line break was read whole, and the bad ones failed alone.
    expect(whole.rows.find((r) => r.line === 10)?.result).toEqual({ id: '10', name: 'Zoë, 10', note: 'two\nlines' });
    expect(whole.rows.filter((r) => r.status === 'FAILED').map((r) => r.line)).toEqual([7, 19, 40]);
  });

  it('reads the input about twice in all (count, then send), however many slices the plan takes', async () => {
    // The sliced engine reads through a connection that counts what it downloads.
    const { s3, downloaded } = countingS3();
    const bucket = stack.info.buckets.data!;
    const pad = 'x'.repeat(80);
    const body = Array.from({ length: 80_000 }, (_, i) => JSON.stringify({ n: i + 1, pad })).join('\n');
    const size = Buffer.byteLength(body);
    await clients().s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'incoming/eight-mb.jsonl', Body: body }));
    const sliced = new BatchEngine({ ...deps, files: new S3BatchFiles(s3, bucket), planChunksPerStep: 8 });
    const id = await submit({ processor: 'rows', input: { bucket, key: 'incoming/eight-mb.jsonl' }, chunkSize: 1000 });
    const before = downloaded();
    let steps = 0;
    // Only the plan: its chunk messages are dropped here, as what is measured is the reading.
    await drain((m) => {
      if ('step' in m && m.step === 'plan') steps++;
      return 'chunk' in m;
    }, sliced);
    expect(steps).toBe(10);
    const read = downloaded() - before;
    // From the start each time, the ten slices alone would read 5.5 times the file.
    expect(read).toBeLessThan(3 * size);
    expect((await sliced.get(id)).status).toBe('RUNNING');
    s3.destroy();
  }, 60_000);

  it('fails the batch, not mixes its rows, when the input file is replaced between two slices', async () => {
    const sliced = new BatchEngine({ ...deps, planChunksPerStep: 3 });
    const { s3 } = clients();
    const bucket = stack.info.buckets.data!;
    const key = 'incoming/replaced.jsonl';
    const file = (tag: string) => rows.map((n) => JSON.stringify({ n, tag })).join('\n');
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: file('first') }));
    const id = await submit({ processor: 'rows', input: { bucket, key, format: 'jsonl' }, chunkSize: 2 });
    // The first slice is planned and its chunks run; then someone overwrites the file before the
    // step that plans the next slice.
    const next = await drain((m) => 'step' in m && m.step === 'plan' && m.from === 3, sliced);
    expect(next).toHaveLength(1);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: file('second') }));
    queue.push(...next);
    await drain(() => false, sliced);
    const job = await sliced.get(id);
    expect(job.status).toBe('FAILED');
    expect(job.batch.error).toMatchObject({ code: 'INPUT_CHANGED' });
    // The rows of the first slice ran (from the file as submitted); the rest never did.
    expect(job.batch.counts).toEqual({ succeeded: 6, failed: 0, aborted: 19 });
    const results = await deps.files.getOutcomes(job.batch.outputs!.results!.key);
    expect(results.filter((r) => r.status === 'SUCCEEDED').map((r) => (r.result as { tag: string }).tag)).toEqual(
      Array(6).fill('first'),
    );
  });

  it('loses and repeats nothing when every plan step is delivered twice, out of turn', async () => {
    const sliced = new BatchEngine({ ...deps, planChunksPerStep: 3 });
    const id = await submit({ processor: 'rows', rows, chunkSize: 2, hold: true });
    await sliced.release(id, OWNER);
    // Each plan step runs twice: its second copy comes last, after later steps and chunks.
    const copied = new Set<string>();
    await drain((m) => {
      if ('step' in m && m.step === 'plan' && !copied.has(JSON.stringify(m))) {
        copied.add(JSON.stringify(m));
        queue.push(m);
      }
      return false;
    }, sliced);
    expect(copied.size).toBe(5);
    const job = await sliced.get(id);
    expect(job.batch.counts).toEqual({ succeeded: 25, failed: 0, aborted: 0 });
    const page = await sliced.rows(id, OWNER, { limit: 100 });
    expect(page.items.map((row) => row.result)).toEqual(rows);
  });
});

describe('the outputs of a large batch are assembled in slices', () => {
  const rows = Array.from({ length: 25 }, (_, i) => (i % 7 === 3 ? { n: i + 1, fail: true } : { n: i + 1 }));

  /** Runs a batch to its end, recording each finalize step; returns its results file, read back. */
  async function finalized(by: BatchEngine, twice = false) {
    const id = await submit({ processor: 'rows', rows, chunkSize: 2 });
    const steps: (number | undefined)[] = [];
    const copied = new Set<string>();
    await drain((m) => {
      if ('step' in m && m.step === 'finalize') {
        steps.push(m.from);
        // A twin of each step, run after everything else.
        if (twice && !copied.has(JSON.stringify(m))) {
          copied.add(JSON.stringify(m));
          queue.push(m);
        }
      }
      return false;
    }, by);
    const job = await by.get(id);
    return { job, steps, results: await deps.files.getOutcomes(job.batch.outputs!.results!.key) };
  }

  it('hands on from step to step and ends with the very files one step makes', async () => {
    const whole = await finalized(engine);
    expect(whole.steps).toEqual([undefined]);
    const sliced = await finalized(new BatchEngine({ ...deps, finalizeChunksPerStep: 3 }));
    // 13 chunks, 3 per step.
    expect(sliced.steps).toEqual([undefined, 3, 6, 9, 12]);
    expect(sliced.job.status).toBe('SUCCEEDED');
    expect(sliced.job.batch.counts).toEqual(whole.job.batch.counts);
    expect(sliced.results).toEqual(whole.results);
    expect(sliced.results.map((r) => r.line)).toEqual(rows.map((r) => r.n));
    expect(sliced.job.batch.outputs!.results).toMatchObject({
      lines: 25,
      bytes: whole.job.batch.outputs!.results!.bytes,
    });
  });

  it('ends with whole files when every step runs twice, and starts over when a step finds its state gone', async () => {
    const whole = await finalized(engine);
    const twins = await finalized(new BatchEngine({ ...deps, finalizeChunksPerStep: 3 }), true);
    expect(twins.results).toEqual(whole.results);
    expect(twins.job.batch.counts).toEqual(whole.job.batch.counts);

    const sliced = new BatchEngine({ ...deps, finalizeChunksPerStep: 3 });
    const id = await submit({ processor: 'rows', rows, chunkSize: 2 });
    // Every chunk runs; the first finalize step is lost and a step from chunk 6 arrives instead.
    await drain((m) => 'step' in m && m.step === 'finalize', sliced);
    queue.push({ jobId: id, step: 'finalize', from: 6 });
    await drain(() => false, sliced);
    const job = await sliced.get(id);
    expect(await deps.files.getOutcomes(job.batch.outputs!.results!.key)).toEqual(whole.results);
  });
});

describe('an idempotency key reused with other rows', () => {
  it("is refused, and the refused request's rows never reach the existing batch", async () => {
    const id = await submit({ processor: 'rows', rows: ['mine', 'mine'], chunkSize: 2 }, 'reused-key');
    // Same key, other rows: 409 — but its chunk messages were sent before the refusal was known.
    await expect(submit({ processor: 'rows', rows: ['theirs', 'theirs'], chunkSize: 2 }, 'reused-key')).rejects.toThrow(
      /different request/,
    );
    // The refused request's message is delivered first.
    queue.reverse();
    await drain();
    const job = await engine.get(id);
    expect(job.batch.counts).toEqual({ succeeded: 2, failed: 0, aborted: 0 });
    const page = await engine.rows(id, OWNER, { limit: 10 });
    expect(page.items.map((row) => row.result)).toEqual(['mine', 'mine']);
    const tally = await engine.tallies(id);
    expect(tally[0]?.commits.size).toBe(1);
  });
});
