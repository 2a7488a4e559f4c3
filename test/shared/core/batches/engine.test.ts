import { describe, expect, it } from 'vitest';
import { type BatchDeps, BatchEngine } from '../../../../shared/core/batches/engine.js';
import type { BatchJob, RowOutcome } from '../../../../shared/core/batches/model.js';
import {
  IdempotencyMismatchError,
  InvalidStateError,
  NotFoundError,
  PayloadTooLargeError,
  ValidationError,
} from '../../../../shared/core/errors.js';
import type { ChunkCall, ChunkRequest } from '../../../../shared/core/ports.js';
import { type Processor, ProcessorRegistry } from '../../../../shared/core/processors.js';
import {
  type ChunkMessage,
  parseOrThrow,
  submitBatchSchema,
  type WorkMessage,
} from '../../../../shared/core/schemas.js';
import { type Envelope, Gate, memoryPorts, waitFor } from '../../../support/memory/index.js';
import { testProcessor } from '../../../support/processors.js';

/**
 * The batch use cases on the in-memory ports: a test decides which messages are delivered, twice,
 * out of turn or never. What needs S3 or DynamoDB themselves (CSV files read across slices, what a
 * plan downloads, the adapters' conditional writes) is in test/integration/batch-engine.test.ts.
 */

const processor = (name: string, over: Partial<Processor> = {}): Processor =>
  testProcessor(name, { kind: 'chunks', backoff: { type: 'fixed', delaySeconds: 4 }, ...over });
const PROCESSORS = [
  processor('rows'),
  processor('quick', { timeoutSeconds: 0.05, maxAttempts: 1 }),
  processor('tasks-only', { kind: 'tasks' }),
];
const OWNER = { owner: 'o', admin: false };

function world(over: Partial<BatchDeps> = {}, options: { partBytes?: number } = {}) {
  const ports = memoryPorts(options);
  const logs: string[] = [];
  const deps: BatchDeps = {
    store: ports.store,
    tallies: ports.tallies,
    files: ports.files,
    queue: ports.queue,
    invoker: ports.invoker,
    processors: new ProcessorRegistry(PROCESSORS),
    clock: ports.clock,
    cursors: ports.cursors,
    leaseAfterMs: 20,
    log: (level, message) => logs.push(`${level}: ${message}`),
    ...over,
  };
  const engine = new BatchEngine(deps);
  const submit = async (batch: Record<string, unknown>, key?: string, by = engine) => {
    const prepared = by.prepare(parseOrThrow(submitBatchSchema, { type: 't', batch }, 'Job'), OWNER.owner, key);
    return (await by.commit(prepared)).job.id;
  };
  const deliver = (envelope: Envelope, by = engine, planDeadline?: number) => {
    const message = envelope.body;
    if ('chunk' in message) {
      return by.runChunk(message, {
        messageId: envelope.messageId,
        receiveCount: envelope.receiveCount,
        sentAt: envelope.sentAt,
      });
    }
    if (!('step' in message)) throw new Error('not a batch message');
    if (message.step === 'finalize') return by.finalize(message.jobId, message.from ? { from: message.from } : {});
    return by.plan(
      message.jobId,
      { sentAt: envelope.sentAt },
      {
        ...(message.from !== undefined ? { from: message.from } : {}),
        ...(message.resume !== undefined ? { resume: message.resume } : {}),
        ...(planDeadline !== undefined ? { deadline: planDeadline } : {}),
      },
    );
  };
  /** Delivers every pending message once, except those `lose` picks (returned). */
  const drain = async (lose: (m: WorkMessage) => boolean = () => false, by = engine, planDeadline?: number) => {
    const lost: WorkMessage[] = [];
    while (ports.queue.pending.length > 0) {
      const envelope = ports.queue.take();
      if (lose(envelope.body)) lost.push(envelope.body);
      else await deliver(envelope, by, planDeadline);
    }
    return lost;
  };
  /** Puts a message back as a fresh send (a test's copy of a step or chunk). */
  const resend = (...messages: WorkMessage[]) => ports.queue.send(messages);
  const results = async (job: BatchJob) => ports.files.getOutcomes(job.batch.outputs!.results!.key);
  return { ...ports, deps, engine, logs, submit, deliver, drain, resend, results };
}

const isStep = (step: 'plan' | 'finalize') => (m: WorkMessage) => 'step' in m && m.step === step;
const ok = (r: ChunkRequest): ChunkCall => ({
  status: 'reply',
  reply: { rows: r.chunk.rows.map(({ line, input }) => ({ line, status: 'ok', result: input })) },
});

describe('submitting a batch', () => {
  it('sends inline rows straight out as chunks, runs them and assembles the outputs', async () => {
    const w = world();
    const id = await w.submit({
      processor: 'rows',
      rows: [1, 2, { fail: true }, 4, 5],
      chunkSize: 2,
      maxFailedRows: 1,
    });
    w.invoker.otherwiseChunk('rows', (r) => ({
      status: 'reply',
      reply: {
        rows: r.chunk.rows.map(({ line, input }) =>
          (input as { fail?: boolean })?.fail
            ? { line, status: 'error', error: { code: 'NOPE', message: 'bad row' } }
            : { line, status: 'ok', result: input, outputs: { names: `row ${line}` } },
        ),
      },
    }));
    expect((await w.engine.get(id)).status).toBe('RUNNING');
    expect(w.queue.bodies().map((m) => ('chunk' in m ? m.chunk : 'step'))).toEqual([0, 1, 2]);
    await w.drain();
    const job = await w.engine.get(id);
    expect(job.status).toBe('SUCCEEDED');
    expect(job.batch.counts).toEqual({ succeeded: 4, failed: 1, aborted: 0 });
    expect((await w.results(job)).map((r) => r.status)).toEqual([
      'SUCCEEDED',
      'SUCCEEDED',
      'FAILED',
      'SUCCEEDED',
      'SUCCEEDED',
    ]);
    expect(w.files.text(job.batch.outputs!.names!.key)).toBe('row 1\nrow 2\nrow 4\nrow 5\n');
    await expect(w.files.getOutcomes(job.batch.outputs!.errors!.key)).resolves.toHaveLength(1);
    expect(w.invoker.chunkCalls[0]?.request).toEqual({
      job: { id, type: 't' },
      chunk: {
        index: 0,
        attempt: 1,
        context: {},
        rows: [
          { line: 1, input: 1 },
          { line: 2, input: 2 },
        ],
      },
    });
  });

  it('fails a batch whose rows fail past maxFailedRows', async () => {
    const w = world();
    w.invoker.otherwiseChunk('rows', (r) => ({
      status: 'reply',
      reply: { rows: r.chunk.rows.map(({ line }) => ({ line, status: 'error' })) },
    }));
    const id = await w.submit({ processor: 'rows', rows: [1, 2], chunkSize: 2, maxFailedRows: 1 });
    await w.drain();
    const job = await w.engine.get(id);
    expect(job.status).toBe('FAILED');
    expect(job.batch.error).toMatchObject({ code: 'TOO_MANY_FAILED_ROWS' });
  });

  it('refuses a processor that takes tasks, an unknown one, and input files callers may not name', async () => {
    const w = world({ inputs: { buckets: ['partner-drop'] } });
    await expect(w.submit({ processor: 'tasks-only', rows: [1] })).rejects.toThrow(/Not a batch processor/);
    await expect(w.submit({ processor: 'nope', rows: [1] })).rejects.toThrow(/Unknown processor/);
    await expect(
      w.submit({ processor: 'rows', input: { bucket: w.files.bucket, key: 'outputs/someone-else/results.jsonl' } }),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(w.submit({ processor: 'rows', input: { bucket: 'elsewhere', key: 'a.jsonl' } })).rejects.toThrow(
      /not one this deployment reads from/,
    );
    // A listed bucket is fine, but the file must be there.
    await expect(w.submit({ processor: 'rows', input: { bucket: 'partner-drop', key: 'a.jsonl' } })).rejects.toThrow(
      /does not exist/,
    );
    w.files.putObject('partner-drop', 'a.jsonl', '1\n2\n');
    await w.submit({ processor: 'rows', input: { bucket: 'partner-drop', key: 'a.jsonl' } });
    expect(w.store.ids()).toHaveLength(1);
  });

  it('refuses an input file over the size limit, writing nothing', async () => {
    const w = world({ inputs: { maxBytes: 10 } });
    w.files.putObject(w.files.bucket, 'incoming/big.jsonl', '1\n2\n3\n4\n5\n6\n');
    await expect(
      w.submit({ processor: 'rows', input: { bucket: w.files.bucket, key: 'incoming/big.jsonl' } }),
    ).rejects.toBeInstanceOf(PayloadTooLargeError);
    expect(w.store.ids()).toEqual([]);
    expect(w.queue.sent).toEqual([]);
  });

  it('reads a JSON Lines file, failing a line that is not JSON alone, and fails an empty file as EMPTY_INPUT', async () => {
    const w = world();
    w.files.putObject(w.files.bucket, 'incoming/rows.jsonl', '{"a":1}\n\nnot json\n{"a":3}\n');
    const id = await w.submit({ processor: 'rows', input: { bucket: w.files.bucket, key: 'incoming/rows.jsonl' } });
    await w.drain();
    const job = await w.engine.get(id);
    expect(job.batch.plan).toEqual({ rows: 3, chunks: 1 });
    const rows = await w.results(job);
    expect(rows.map((r) => r.status)).toEqual(['SUCCEEDED', 'FAILED', 'SUCCEEDED']);
    expect(rows[1]?.error).toMatchObject({ code: 'BAD_ROW', message: expect.stringContaining('file line 3') });

    w.files.putObject(w.files.bucket, 'incoming/empty.jsonl', '\n');
    const empty = await w.submit({ processor: 'rows', input: { bucket: w.files.bucket, key: 'incoming/empty.jsonl' } });
    await w.drain();
    expect((await w.engine.get(empty)).batch.error).toMatchObject({ code: 'EMPTY_INPUT' });
  });
});

describe('a held batch', () => {
  it('takes appends (a keyed one once), then runs all its rows once released', async () => {
    const w = world();
    const id = await w.submit({ processor: 'rows', rows: [1], hold: true, chunkSize: 2 });
    expect(w.queue.pending).toHaveLength(0);
    expect(await w.engine.append(id, OWNER, [2, 3], 'append-1')).toEqual({ appended: 2, totalRows: 3 });
    expect(await w.engine.append(id, OWNER, [2, 3], 'append-1')).toEqual({ appended: 2, totalRows: 3 });
    await expect(w.engine.append(id, OWNER, [9], 'append-1')).rejects.toBeInstanceOf(IdempotencyMismatchError);
    expect(await w.engine.append(id, OWNER, [4])).toEqual({ appended: 1, totalRows: 4 });
    await expect(w.engine.append(id, { owner: 'mallory', admin: false }, [5])).rejects.toBeInstanceOf(NotFoundError);

    const released = await w.engine.release(id, OWNER);
    expect(released.status).toBe('PENDING');
    await expect(w.engine.release(id, OWNER)).rejects.toBeInstanceOf(InvalidStateError);
    await expect(w.engine.append(id, OWNER, [5])).rejects.toBeInstanceOf(InvalidStateError);
    // A keyed append's retry after the release still gets its first answer.
    expect(await w.engine.append(id, OWNER, [2, 3], 'append-1')).toEqual({ appended: 2, totalRows: 3 });

    await w.drain();
    const job = await w.engine.get(id);
    expect((await w.results(job)).map((r) => r.result)).toEqual([1, 2, 3, 4]);
  });

  it('with upload: hands out an upload URL, refuses a release before the upload, then runs the file', async () => {
    const w = world();
    const id = await w.submit({ processor: 'rows', upload: true });
    const held = await w.engine.get(id);
    const view = await w.engine.view(held, { upload: true });
    expect(view.batch).toMatchObject({ upload: { method: 'PUT', format: 'jsonl' } });
    await expect(w.engine.release(id, OWNER)).rejects.toThrow(/nothing was uploaded yet/);
    w.files.putObject(w.files.bucket, held.batch.upload!.key, '"a"\n"b"\n');
    await w.engine.release(id, OWNER);
    await w.drain();
    expect((await w.results(await w.engine.get(id))).map((r) => r.result)).toEqual(['a', 'b']);
  });

  it('refuses to release an upload over the size limit', async () => {
    const w = world({ inputs: { maxBytes: 4 } });
    const id = await w.submit({ processor: 'rows', upload: true });
    w.files.putObject(w.files.bucket, (await w.engine.get(id)).batch.upload!.key, '"a"\n"b"\n');
    await expect(w.engine.release(id, OWNER)).rejects.toBeInstanceOf(PayloadTooLargeError);
    expect((await w.engine.get(id)).status).toBe('HELD');
  });
});

describe('a chunk', () => {
  it('whose job is not written yet is sent again in 2 s while young, keeping when it was first sent', async () => {
    const w = world();
    const message: ChunkMessage = { jobId: 'not-yet', chunk: 0, chunks: 1, request: 'r', attempt: 1, rows: [] };
    await w.resend(message);
    const first = w.queue.take();
    expect(await w.deliver(first)).toEqual({ kind: 'done' });
    const again = w.queue.take();
    expect(again.delaySeconds).toBe(2);
    expect(again.body).toEqual({ ...message, firstSentAt: first.sentAt });
    // Past the grace period, counted from the first send: dropped.
    w.clock.advance(61_000);
    expect(await w.deliver(again)).toEqual({ kind: 'done' });
    expect(w.queue.pending).toHaveLength(0);
  });

  it('delivered twice runs once and counts once', async () => {
    const w = world();
    const id = await w.submit({ processor: 'rows', rows: [1, 2], chunkSize: 2 });
    const chunk = w.queue.take();
    await w.deliver(chunk);
    w.queue.redeliver(chunk);
    await w.drain();
    expect(w.invoker.chunkCalls).toHaveLength(1);
    expect((await w.engine.get(id)).batch.counts).toEqual({ succeeded: 2, failed: 0, aborted: 0 });
  });

  it('that crashes comes back after the backoff as its next attempt; on its last, its rows fail', async () => {
    const w = world();
    const crash: ChunkCall = { status: 'error', error: { kind: 'crash', message: 'boom' }, retryable: true };
    w.invoker.replyChunk('rows', crash, crash, crash);
    const id = await w.submit({ processor: 'rows', rows: [1, 2], chunkSize: 2, maxFailedRows: 2 });
    const chunk = w.queue.take();
    expect(await w.deliver(chunk)).toEqual({ kind: 'retry', delaySeconds: 4 });
    w.queue.redeliver(chunk);
    expect(await w.deliver(w.queue.take())).toEqual({ kind: 'retry', delaySeconds: 4 });
    w.queue.redeliver({ ...chunk, receiveCount: 2 });
    expect(await w.deliver(w.queue.take())).toEqual({ kind: 'done' });
    expect(w.invoker.chunkCalls.map((c) => c.request.chunk.attempt)).toEqual([1, 2, 3]);
    await w.drain();
    const job = await w.engine.get(id);
    expect((await w.results(job)).map((r) => r.error?.message)).toEqual(['boom', 'boom']);
  });

  it('whose processor does not answer in time fails its rows as a timeout (one attempt allowed)', async () => {
    const w = world();
    w.invoker.replyChunk('quick', { hang: true });
    const id = await w.submit({ processor: 'quick', rows: [1], maxFailedRows: 1 });
    await w.drain();
    const rows = await w.results(await w.engine.get(id));
    expect(rows[0]?.error).toMatchObject({ kind: 'timeout' });
  });

  it('that runs long gets its message hidden for the processor timeout and margin', async () => {
    const w = world();
    const gate = new Gate<ChunkCall>();
    w.invoker.replyChunk('rows', { gate });
    await w.submit({ processor: 'rows', rows: [1] });
    const message = w.queue.take();
    const leases: number[] = [];
    const verdict = w.engine.runChunk(
      message.body as ChunkMessage,
      { messageId: message.messageId, receiveCount: 1 },
      { onLease: async (seconds) => void leases.push(seconds) },
    );
    await waitFor(() => leases.length > 0);
    expect(leases).toEqual([5 + 10]);
    gate.open({ status: 'reply', reply: { rows: [{ line: 1, status: 'ok' }] } });
    expect(await verdict).toEqual({ kind: 'done' });
  });

  it('with rows the processor asks to retry sends only those again, and commits every row once', async () => {
    const w = world();
    w.invoker.replyChunk('rows', (r) => ({
      status: 'reply',
      reply: { rows: r.chunk.rows.map(({ line }) => ({ line, status: line === 2 ? 'retry' : 'ok', result: line })) },
    }));
    const id = await w.submit({ processor: 'rows', rows: [1, 2, 3], chunkSize: 3 });
    expect(await w.deliver(w.queue.take())).toEqual({ kind: 'done' });
    const retry = w.queue.take();
    expect(retry.delaySeconds).toBe(4);
    expect(retry.body).toMatchObject({ chunk: 0, attempt: 2, rows: [{ line: 2, input: 2 }] });
    expect((retry.body as ChunkMessage).carry).toHaveLength(1);
    w.queue.redeliver({ ...retry, receiveCount: 0 });
    await w.drain();
    expect(w.invoker.chunkCalls[1]?.request.chunk).toMatchObject({ attempt: 2, rows: [{ line: 2, input: 2 }] });
    const job = await w.engine.get(id);
    expect((await w.results(job)).map((r) => [r.line, r.status])).toEqual([
      [1, 'SUCCEEDED'],
      [2, 'SUCCEEDED'],
      [3, 'SUCCEEDED'],
    ]);
  });

  it('of a processor this worker does not know fails its rows (UNKNOWN_PROCESSOR) so the batch can end', async () => {
    const w = world();
    const id = await w.submit({ processor: 'rows', rows: [1, 2] });
    const worker = new BatchEngine({ ...w.deps, processors: new ProcessorRegistry([]) });
    await w.drain(() => false, worker);
    const job = await w.engine.get(id);
    expect(job.status).toBe('FAILED');
    expect((await w.results(job))[0]?.error).toMatchObject({ code: 'UNKNOWN_PROCESSOR' });
  });

  it('dead-lettered fails its rows as poison; the batch still ends', async () => {
    const w = world();
    const id = await w.submit({ processor: 'rows', rows: [1, 2, 3], chunkSize: 2, maxFailedRows: 5 });
    const [poisoned] = w.queue.lose((m) => 'chunk' in m && m.chunk === 0);
    await w.engine.poisonChunk(poisoned!.body as ChunkMessage);
    await w.drain();
    const job = await w.engine.get(id);
    expect(job.status).toBe('SUCCEEDED');
    expect((await w.results(job)).map((r) => r.error?.kind ?? 'ok')).toEqual(['poison', 'poison', 'ok']);
    // A dead letter of a chunk already committed changes nothing.
    await w.engine.poisonChunk(poisoned!.body as ChunkMessage);
    expect(await w.engine.get(id)).toEqual(job);
  });
});

describe('a plan or finalize step that keeps failing', () => {
  it('fails the batch as poison when planning kept failing, and only logs when finalizing did', async () => {
    const w = world();
    const id = await w.submit({ processor: 'rows', rows: [1], hold: true });
    await w.engine.release(id, OWNER);
    w.queue.lose();
    await w.engine.poisonStep(id, 'finalize');
    expect((await w.engine.get(id)).status).toBe('PENDING');
    await w.engine.poisonStep(id, 'plan');
    await w.drain();
    const job = await w.engine.get(id);
    expect(job.status).toBe('FAILED');
    expect(job.batch.error).toMatchObject({ kind: 'poison' });
    expect(job.batch.counts).toEqual({ succeeded: 0, failed: 0, aborted: 1 });
  });
});

describe('aborting a batch', () => {
  it('counts the rows of chunks not committed as ABORTED; a chunk finishing after it is not counted', async () => {
    const w = world();
    const gate = new Gate<ChunkCall>();
    w.invoker.replyChunk('rows', ok, { gate });
    const id = await w.submit({ processor: 'rows', rows: [1, 2, 3, 4, 5], chunkSize: 2 });
    await w.deliver(w.queue.take());
    const inFlight = w.deliver(w.queue.take());
    await gate.entered;
    await expect(w.engine.abort(id, { owner: 'mallory', admin: false })).rejects.toBeInstanceOf(NotFoundError);
    const aborted = await w.engine.abort(id, OWNER);
    expect(aborted).toMatchObject({ changed: true, job: { status: 'ABORTED' } });
    expect(aborted.job.batch.counts).toEqual({ succeeded: 2, failed: 0, aborted: 3 });
    gate.open({ status: 'reply', reply: { rows: [3, 4].map((line) => ({ line, status: 'ok' })) } });
    expect(await inFlight).toEqual({ kind: 'done' });
    expect((await w.engine.abort(id, OWNER)).changed).toBe(false);
    await w.drain();
    const job = await w.engine.get(id);
    expect(job.batch.counts).toEqual({ succeeded: 2, failed: 0, aborted: 3 });
    expect((await w.results(job)).map((r) => r.status)).toEqual([
      'SUCCEEDED',
      'SUCCEEDED',
      'ABORTED',
      'ABORTED',
      'ABORTED',
    ]);
    expect(w.invoker.chunkCalls).toHaveLength(2);
  });

  it('aborts a held batch before it was ever planned: its rows all count as ABORTED', async () => {
    const w = world();
    const id = await w.submit({ processor: 'rows', rows: [1, 2], hold: true, chunkSize: 1 });
    await w.engine.append(id, OWNER, [3]);
    const { job } = await w.engine.abort(id, OWNER);
    expect(job.status).toBe('ABORTED');
    await w.drain();
    const after = await w.engine.get(id);
    expect(after.batch.counts).toEqual({ succeeded: 0, failed: 0, aborted: 3 });
    expect((await w.results(after)).map((r) => r.status)).toEqual(['ABORTED', 'ABORTED', 'ABORTED']);
    expect(w.invoker.chunkCalls).toHaveLength(0);
  });

  it('aborts a released batch whose plan step has not run yet; the plan step then sends nothing', async () => {
    const w = world();
    const id = await w.submit({ processor: 'rows', rows: [1, 2, 3], hold: true, chunkSize: 1 });
    await w.engine.release(id, OWNER);
    await w.engine.abort(id, OWNER);
    await w.drain();
    const after = await w.engine.get(id);
    expect(after.status).toBe('ABORTED');
    expect(after.batch.counts).toEqual({ succeeded: 0, failed: 0, aborted: 3 });
    expect(w.queue.sent.filter((e) => 'chunk' in e.body)).toHaveLength(0);
  });

  it('refuses to abort a batch that already ended', async () => {
    const w = world();
    const id = await w.submit({ processor: 'rows', rows: [1] });
    await w.drain();
    await expect(w.engine.abort(id, OWNER)).rejects.toBeInstanceOf(InvalidStateError);
  });

  it('completes, in the finalize step, an abort whose caller died after writing its intent', async () => {
    const w = world();
    const id = await w.submit({ processor: 'rows', rows: [1, 2], chunkSize: 1 });
    const job = await w.engine.get(id);
    // The intent is written and the finalize step sent; the tallies were never closed.
    w.store.put({ ...job, version: job.version + 1, batch: { ...job.batch, abortRequestedAt: job.updatedAt } });
    await w.resend({ jobId: id, step: 'finalize' });
    await w.drain();
    const after = await w.engine.get(id);
    expect(after.status).toBe('ABORTED');
    expect(after.batch.counts).toEqual({ succeeded: 0, failed: 0, aborted: 2 });
    expect(w.invoker.chunkCalls).toHaveLength(0);
  });
});

describe('reading a batch', () => {
  it('pages rows in line order with cursors bound to their query, and filters by status', async () => {
    const w = world();
    w.invoker.otherwiseChunk('rows', (r) => ({
      status: 'reply',
      reply: { rows: r.chunk.rows.map(({ line }) => ({ line, status: line % 2 ? 'ok' : 'error', result: line })) },
    }));
    const id = await w.submit({ processor: 'rows', rows: [1, 2, 3, 4, 5], chunkSize: 2, maxFailedRows: 5 });
    // Before any chunk ran, every row is PENDING.
    expect((await w.engine.rows(id, OWNER, { limit: 10 })).items.map((r) => r.status)).toEqual(
      Array(5).fill('PENDING'),
    );
    await w.drain();
    const lines: number[] = [];
    let cursor: string | undefined;
    do {
      const page = await w.engine.rows(id, OWNER, { limit: 2, ...(cursor ? { cursor } : {}) });
      lines.push(...page.items.map((r) => r.line));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(lines).toEqual([1, 2, 3, 4, 5]);
    const failed = await w.engine.rows(id, OWNER, { status: 'FAILED', limit: 10 });
    expect(failed.items.map((r: RowOutcome) => r.line)).toEqual([2, 4]);
    const first = await w.engine.rows(id, OWNER, { limit: 1 });
    await expect(
      w.engine.rows(id, OWNER, { status: 'FAILED', limit: 1, cursor: first.nextCursor! }),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(w.engine.rows(id, { owner: 'mallory', admin: false }, { limit: 1 })).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });

  it('shows progress while running and the outputs with their download URLs once finalized', async () => {
    const w = world();
    const id = await w.submit({ processor: 'rows', rows: [1, 2, 3, 4], chunkSize: 2 });
    await w.deliver(w.queue.take());
    const running = await w.engine.view(await w.engine.get(id));
    expect(running).toMatchObject({
      status: 'RUNNING',
      counts: { total: 4, pending: 2, succeeded: 2 },
      progress: 0.5,
      batch: { chunks: { total: 2, done: 1 }, finalized: false },
    });
    await w.drain();
    const done = await w.engine.view(await w.engine.get(id));
    expect(done).toMatchObject({ status: 'SUCCEEDED', progress: 1, batch: { finalized: true } });
    expect(done.batch.outputs.results?.url).toContain(done.batch.outputs.results!.key);
  });
});

describe('the sweeper repairs a batch whose step message was lost', () => {
  it('finalizes a batch whose finalize step was lost after its last chunk', async () => {
    const w = world();
    const id = await w.submit({ processor: 'rows', rows: [1, 2, 3, 4, 5], chunkSize: 2 });
    const lost = await w.drain(isStep('finalize'));
    expect(lost).toHaveLength(1);
    expect((await w.engine.get(id)).status).toBe('RUNNING');
    expect(await w.engine.sweepOne(id, 0)).toBe(true);
    await w.drain();
    const job = await w.engine.get(id);
    expect(job.status).toBe('SUCCEEDED');
    expect(job.batch.counts).toEqual({ succeeded: 5, failed: 0, aborted: 0 });
    expect(job.batch.outputs?.results?.lines).toBe(5);
  });

  it('plans again a batch whose chunk messages were lost, running only the chunks not committed', async () => {
    const w = world();
    const id = await w.submit({ processor: 'rows', rows: [1, 2, 3, 4, 5, 6], chunkSize: 2, hold: true });
    await w.engine.release(id, OWNER);
    let chunksLost = 0;
    await w.drain((m) => 'chunk' in m && m.chunk > 0 && ++chunksLost > 0);
    expect(chunksLost).toBe(2);
    // Not before the grace period since the batch last moved.
    expect(await w.engine.sweepOne(id, 60)).toBe(false);
    w.clock.advance(61_000);
    expect(await w.engine.sweepOne(id, 60)).toBe(true);
    const sent: number[] = [];
    await w.drain((m) => {
      if ('chunk' in m) sent.push(m.chunk);
      return false;
    });
    expect(sent).toEqual([1, 2]);
    expect((await w.engine.get(id)).batch.counts).toEqual({ succeeded: 6, failed: 0, aborted: 0 });
  });

  it('leaves a finished batch alone, and a second finalize changes nothing', async () => {
    const w = world();
    const id = await w.submit({ processor: 'rows', rows: [1], chunkSize: 1 });
    await w.drain();
    const done = await w.engine.get(id);
    await w.engine.finalize(id);
    expect(await w.engine.get(id)).toEqual(done);
    expect(await w.engine.sweepOne(id, 0)).toBe(false);
  });

  it('ignores a finalize step that comes before the last chunk', async () => {
    const w = world();
    const id = await w.submit({ processor: 'rows', rows: [1, 2], chunkSize: 1 });
    expect(await w.engine.finalize(id)).toEqual({ kind: 'done' });
    expect((await w.engine.get(id)).batch.outputs).toBeUndefined();
  });
});

describe('a large input is planned in slices', () => {
  const rows = Array.from({ length: 25 }, (_, i) => i + 1);

  it('sends at most a slice of chunks per plan step and hands the rest to the next step', async () => {
    const w = world({ planChunksPerStep: 3 });
    const id = await w.submit({ processor: 'rows', rows, chunkSize: 2, hold: true });
    await w.engine.release(id, OWNER);
    const steps: (number | undefined)[] = [];
    const sent: number[] = [];
    await w.drain((m) => {
      if ('step' in m && m.step === 'plan') steps.push(m.from);
      if ('chunk' in m) sent.push(m.chunk);
      return false;
    });
    expect(steps).toEqual([undefined, 3, 6, 9, 12]);
    expect(sent.sort((a, b) => a - b)).toEqual(Array.from({ length: 13 }, (_, i) => i));
    const job = await w.engine.get(id);
    expect(job.status).toBe('SUCCEEDED');
    expect(job.batch.counts).toEqual({ succeeded: 25, failed: 0, aborted: 0 });
  });

  it('sends at least one chunk per step when steps are out of time, so the plan always moves on', async () => {
    const w = world();
    const id = await w.submit({ processor: 'rows', rows: [1, 2, 3, 4, 5, 6, 7], chunkSize: 2, hold: true });
    await w.engine.release(id, OWNER);
    const steps: (number | undefined)[] = [];
    await w.drain(
      (m) => {
        if ('step' in m && m.step === 'plan') steps.push(m.from);
        return false;
      },
      w.engine,
      w.clock.ms() - 1,
    );
    expect(steps).toEqual([undefined, 1, 2, 3]);
    expect((await w.engine.get(id)).batch.counts).toEqual({ succeeded: 7, failed: 0, aborted: 0 });
  });

  it('resumes each slice where the last one stopped in the file, reading what one pass reads', async () => {
    const w = world();
    const body = `\uFEFF${rows.map((n) => (n % 6 === 0 ? `{"n":${n},"note":"Zoë"}\r\n\r\n` : `{"n":${n}}\n`)).join('')}`;
    w.files.putObject(w.files.bucket, 'incoming/resumed.jsonl', body);
    const run = async (by: BatchEngine) => {
      const id = await w.submit(
        { processor: 'rows', input: { bucket: w.files.bucket, key: 'incoming/resumed.jsonl' }, chunkSize: 3 },
        undefined,
        by,
      );
      const resumes: unknown[] = [];
      await w.drain((m) => {
        if ('step' in m && m.step === 'plan' && m.from) resumes.push(m.resume);
        return false;
      }, by);
      return { resumes, rows: await w.results(await by.get(id)) };
    };
    const whole = await run(w.engine);
    const sliced = await run(new BatchEngine({ ...w.deps, planChunksPerStep: 2 }));
    expect(whole.resumes).toEqual([]);
    // 25 rows in chunks of 3: 9 chunks, 2 per step, so 4 steps that each resume in the file.
    expect(sliced.resumes).toHaveLength(4);
    expect(sliced.resumes.every((r) => (r as { byte: number }).byte > 0)).toBe(true);
    expect(sliced.rows).toEqual(whole.rows);
    expect(whole.rows.map((r) => (r.result as { n: number }).n)).toEqual(rows);
  });

  it('fails the batch, not mixes its rows, when the input file is replaced between two slices', async () => {
    const w = world({ planChunksPerStep: 3 });
    const key = 'incoming/replaced.jsonl';
    const file = (tag: string) => rows.map((n) => JSON.stringify({ n, tag })).join('\n');
    w.files.putObject(w.files.bucket, key, file('first'));
    const id = await w.submit({
      processor: 'rows',
      input: { bucket: w.files.bucket, key, format: 'jsonl' },
      chunkSize: 2,
    });
    const next = await w.drain((m) => 'step' in m && m.step === 'plan' && m.from === 3);
    expect(next).toHaveLength(1);
    w.files.putObject(w.files.bucket, key, file('second'));
    await w.resend(...next);
    await w.drain();
    const job = await w.engine.get(id);
    expect(job.status).toBe('FAILED');
    expect(job.batch.error).toMatchObject({ code: 'INPUT_CHANGED' });
    expect(job.batch.counts).toEqual({ succeeded: 6, failed: 0, aborted: 19 });
    const results = await w.results(job);
    expect(results.filter((r) => r.status === 'SUCCEEDED').map((r) => (r.result as { tag: string }).tag)).toEqual(
      Array(6).fill('first'),
    );
  });

  it('fails the batch as INPUT_MISSING when its file is gone before it is planned', async () => {
    const w = world();
    w.files.putObject(w.files.bucket, 'incoming/gone.jsonl', '1\n');
    const id = await w.submit({ processor: 'rows', input: { bucket: w.files.bucket, key: 'incoming/gone.jsonl' } });
    w.files.deleteObject(w.files.bucket, 'incoming/gone.jsonl');
    await w.drain();
    const job = await w.engine.get(id);
    expect(job.status).toBe('FAILED');
    expect(job.batch.error).toMatchObject({ code: 'INPUT_MISSING' });
    expect(job.batch.outputs).toBeDefined();
  });

  it('loses and repeats nothing when every plan step is delivered twice, out of turn', async () => {
    const w = world({ planChunksPerStep: 3 });
    const id = await w.submit({ processor: 'rows', rows, chunkSize: 2, hold: true });
    await w.engine.release(id, OWNER);
    const copied = new Set<string>();
    await w.drain((m) => {
      if ('step' in m && m.step === 'plan' && !copied.has(JSON.stringify(m))) {
        copied.add(JSON.stringify(m));
        void w.resend(m);
      }
      return false;
    });
    expect(copied.size).toBe(5);
    const job = await w.engine.get(id);
    expect(job.batch.counts).toEqual({ succeeded: 25, failed: 0, aborted: 0 });
    const page = await w.engine.rows(id, OWNER, { limit: 100 });
    expect(page.items.map((row) => row.result)).toEqual(rows);
  });
});

describe('the outputs of a large batch are assembled in slices', () => {
  const rows = Array.from({ length: 25 }, (_, i) => (i % 7 === 3 ? { n: i + 1, fail: true } : { n: i + 1 }));
  const failing = (r: ChunkRequest): ChunkCall => ({
    status: 'reply',
    reply: {
      rows: r.chunk.rows.map(({ line, input }) =>
        (input as { fail?: boolean }).fail ? { line, status: 'error' } : { line, status: 'ok', result: input },
      ),
    },
  });

  async function finalized(w: ReturnType<typeof world>, by: BatchEngine, twice = false) {
    w.invoker.otherwiseChunk('rows', failing);
    const id = await w.submit({ processor: 'rows', rows, chunkSize: 2, maxFailedRows: 10 }, undefined, by);
    const steps: (number | undefined)[] = [];
    const copied = new Set<string>();
    await w.drain((m) => {
      if ('step' in m && m.step === 'finalize') {
        steps.push(m.from);
        if (twice && !copied.has(JSON.stringify(m))) {
          copied.add(JSON.stringify(m));
          void w.resend(m);
        }
      }
      return false;
    }, by);
    const job = await by.get(id);
    return { job, steps, results: await w.results(job) };
  }

  it('hands on from step to step and ends with the very files one step makes', async () => {
    const w = world();
    const whole = await finalized(w, w.engine);
    expect(whole.steps).toEqual([undefined]);
    const sliced = await finalized(w, new BatchEngine({ ...w.deps, finalizeChunksPerStep: 3 }));
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
    // Parts of a few hundred bytes: the assembly carries multipart uploads between its steps.
    const w = world({}, { partBytes: 300 });
    const whole = await finalized(w, w.engine);
    const twins = await finalized(w, new BatchEngine({ ...w.deps, finalizeChunksPerStep: 3 }), true);
    expect(twins.results).toEqual(whole.results);
    expect(twins.job.batch.counts).toEqual(whole.job.batch.counts);

    const sliced = new BatchEngine({ ...w.deps, finalizeChunksPerStep: 3 });
    const id = await w.submit({ processor: 'rows', rows, chunkSize: 2, maxFailedRows: 10 }, undefined, sliced);
    await w.drain(isStep('finalize'), sliced);
    await w.resend({ jobId: id, step: 'finalize', from: 6 });
    await w.drain(() => false, sliced);
    expect(w.logs).toContain('warn: batch assembly starts over');
    const job = await sliced.get(id);
    expect(await w.results(job)).toEqual(whole.results);
  });

  it('starts over when twin last steps race and one finds its upload completed by the other', async () => {
    const w = world({}, { partBytes: 300 });
    const whole = await finalized(w, w.engine);
    const sliced = new BatchEngine({ ...w.deps, finalizeChunksPerStep: 3 });
    const id = await w.submit({ processor: 'rows', rows, chunkSize: 2, maxFailedRows: 10 }, undefined, sliced);
    const [last] = await w.drain((m) => 'step' in m && m.step === 'finalize' && m.from === 12, sliced);
    await Promise.all([sliced.finalize(id, { from: 12 }), sliced.finalize(id, { from: 12 })]);
    expect(last).toEqual({ jobId: id, step: 'finalize', from: 12 });
    expect(w.logs.filter((l) => l.includes('starts over'))).toHaveLength(1);
    await w.drain(() => false, sliced);
    expect(await w.results(await sliced.get(id))).toEqual(whole.results);
  });
});

describe('an idempotency key reused with other rows', () => {
  it("is refused, and the refused request's rows never reach the existing batch", async () => {
    const w = world();
    const id = await w.submit({ processor: 'rows', rows: ['mine', 'mine'], chunkSize: 2 }, 'reused-key');
    await expect(
      w.submit({ processor: 'rows', rows: ['theirs', 'theirs'], chunkSize: 2 }, 'reused-key'),
    ).rejects.toThrow(/different request/);
    // The refused request's message is delivered first.
    w.queue.pending.reverse();
    await w.drain();
    const job = await w.engine.get(id);
    expect(job.batch.counts).toEqual({ succeeded: 2, failed: 0, aborted: 0 });
    const page = await w.engine.rows(id, OWNER, { limit: 10 });
    expect(page.items.map((row) => row.result)).toEqual(['mine', 'mine']);
    expect((await w.engine.tallies(id))[0]?.commits.size).toBe(1);
  });
});
