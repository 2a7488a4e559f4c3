import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../local/stack.js';
import { createClients } from '../../shared/aws/clients.js';
import { apiClient, queueDepth, tableItems } from '../support/api.js';
import { eventually, startTestStack } from '../support/stack.js';

let stack: LocalStack;
let api: ReturnType<typeof apiClient>;

beforeAll(async () => {
  stack = await startTestStack();
  api = apiClient(stack);
});
afterAll(() => stack?.stop());

// biome-ignore lint/suspicious/noExplicitAny: replies are read as a user's script would
type Batch = any;

const rowsOf = (n: number, failing: number[] = []) =>
  Array.from({ length: n }, (_, i) => (failing.includes(i + 1) ? { n: i + 1, fail: true } : { n: i + 1 }));

async function settle(id: string, seconds = 60): Promise<Batch> {
  const until = Date.now() + seconds * 1000;
  for (;;) {
    const { body } = await api.get(id, 5);
    const b = body as Batch;
    if ((['SUCCEEDED', 'FAILED', 'ABORTED'].includes(b.status) && b.batch.finalized) || Date.now() > until) return b;
  }
}

async function download(url: string): Promise<string[]> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  const text = await response.text();
  return text === '' ? [] : text.replace(/\n$/, '').split('\n');
}

describe('batches over HTTP with demo.rows', () => {
  it('runs 2,500 inline rows in chunks of 100: 3 failing rows fail the batch, files hold every line in order', async () => {
    const submitted = await api.submit({
      type: 'import',
      batch: { processor: 'demo.rows', rows: rowsOf(2500, [7, 1234, 2500]), chunkSize: 100, context: { source: 't' } },
    });
    expect(submitted.status).toBe(202);
    const job = await settle((submitted.body as Batch).id);
    expect(job.status).toBe('FAILED');
    // It says why it failed.
    expect(job.error).toEqual({
      kind: 'error',
      code: 'TOO_MANY_FAILED_ROWS',
      message: '3 rows failed; maxFailedRows is 0',
    });
    expect(job.kind).toBe('batch');
    expect(job.counts).toEqual({ total: 2500, pending: 0, running: 0, succeeded: 2497, failed: 3, aborted: 0 });
    expect(job.batch.chunks).toEqual({ total: 25, done: 25 });
    const results = (await download(job.batch.outputs.results.url)).map((l) => JSON.parse(l));
    expect(results.map((r) => r.line)).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1));
    expect(results[0]).toEqual({ line: 1, status: 'SUCCEEDED', result: { echo: { n: 1 } } });
    const errors = (await download(job.batch.outputs.errors.url)).map((l) => JSON.parse(l));
    expect(errors.map((e) => [e.line, e.error.code])).toEqual([
      [7, 'ROW_FAIL'],
      [1234, 'ROW_FAIL'],
      [2500, 'ROW_FAIL'],
    ]);
    const echo = await download(job.batch.outputs.echo.url);
    expect(echo).toHaveLength(2497);
    expect(echo[0]).toBe('{"n":1}');
    expect(job.batch.outputs.echo.lines).toBe(2497);
  }, 90_000);

  it('SUCCEEDS with the same failures when maxFailedRows tolerates them', async () => {
    const submitted = await api.submit({
      type: 'import',
      batch: { processor: 'demo.rows', rows: rowsOf(250, [1, 2, 3]), chunkSize: 100, maxFailedRows: 5 },
    });
    const job = await settle((submitted.body as Batch).id);
    expect(job.status).toBe('SUCCEEDED');
    expect(job.counts).toMatchObject({ succeeded: 247, failed: 3 });
    expect(job.error).toBeNull();
  });

  it('holds a batch, appends twice, releases it: lines continue across appends', async () => {
    const submitted = await api.submit({
      type: 'import',
      batch: { processor: 'demo.rows', rows: rowsOf(3), chunkSize: 2, hold: true },
    });
    expect(submitted.status).toBe(202);
    const id = (submitted.body as Batch).id;
    expect((submitted.body as Batch).status).toBe('HELD');
    const first = await api.call('POST', `/v1/jobs/${id}/rows`, { rows: [{ a: 1 }, { a: 2 }] });
    expect(first).toMatchObject({ status: 200, body: { appended: 2, totalRows: 5 } });
    const second = await api.call('POST', `/v1/jobs/${id}/rows`, { rows: [{ a: 3 }] });
    expect(second.body).toEqual({ appended: 1, totalRows: 6 });
    // Nothing runs while held.
    expect(((await api.get(id)).body as Batch).counts).toMatchObject({ total: 6, pending: 6 });
    const released = await api.call('POST', `/v1/jobs/${id}/release`);
    expect(released.status).toBe(202);
    const job = await settle(id);
    expect(job.status).toBe('SUCCEEDED');
    const results = (await download(job.batch.outputs.results.url)).map((l) => JSON.parse(l));
    expect(results.map((r) => [r.line, r.result.echo])).toEqual([
      [1, { n: 1 }],
      [2, { n: 2 }],
      [3, { n: 3 }],
      [4, { a: 1 }],
      [5, { a: 2 }],
      [6, { a: 3 }],
    ]);
    // Released (and finished) batches take no more rows and cannot be released again.
    expect((await api.call('POST', `/v1/jobs/${id}/rows`, { rows: [1] })).status).toBe(409);
    expect((await api.call<Batch>('POST', `/v1/jobs/${id}/release`)).body.error.code).toBe('INVALID_STATE');
  });

  it('adds an append retried with its idempotency key once, even when the retry comes after the release', async () => {
    const submitted = await api.submit({
      type: 'import',
      batch: { processor: 'demo.rows', rows: rowsOf(2), hold: true },
    });
    const id = (submitted.body as Batch).id;
    const rows = `/v1/jobs/${id}/rows`;
    const first = await api.call('POST', rows, { rows: [{ a: 1 }, { a: 2 }] }, { 'idempotency-key': 'part-1' });
    expect(first).toMatchObject({ status: 200, body: { appended: 2, totalRows: 4 } });
    // The answer was lost, say: the client sends the same append again, here in the body's field.
    const retried = await api.call('POST', rows, { rows: [{ a: 1 }, { a: 2 }], idempotencyKey: 'part-1' });
    expect(retried).toMatchObject({ status: 200, body: { appended: 2, totalRows: 4 } });
    // Other rows under a used key are a client bug, not a retry.
    const other = await api.call<Batch>('POST', rows, { rows: [{ a: 9 }] }, { 'idempotency-key': 'part-1' });
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe('IDEMPOTENCY_MISMATCH');
    expect(
      (await api.call<Batch>('POST', rows, { rows: [1], idempotencyKey: 'x' }, { 'idempotency-key': 'y' })).status,
    ).toBe(400);
    const second = await api.call('POST', rows, { rows: [{ a: 3 }] }, { 'idempotency-key': 'part-2' });
    expect(second.body).toEqual({ appended: 1, totalRows: 5 });
    expect((await api.call('POST', `/v1/jobs/${id}/release`)).status).toBe(202);
    // A late retry of an append that was applied still gets its first answer; a new append does not.
    expect(await api.call('POST', rows, { rows: [{ a: 1 }, { a: 2 }] }, { 'idempotency-key': 'part-1' })).toMatchObject(
      {
        status: 200,
        body: { appended: 2, totalRows: 4 },
      },
    );
    expect((await api.call('POST', rows, { rows: [{ a: 4 }] }, { 'idempotency-key': 'part-3' })).status).toBe(409);
    const job = await settle(id);
    expect(job.counts).toMatchObject({ total: 5, succeeded: 5 });
    const results = (await download(job.batch.outputs.results.url)).map((l) => JSON.parse(l));
    expect(results.map((r) => r.result.echo)).toEqual([{ n: 1 }, { n: 2 }, { a: 1 }, { a: 2 }, { a: 3 }]);
  });

  it('takes appends sent four at a time, each keyed and sent twice: every row runs once, in its own line', async () => {
    const submitted = await api.submit({
      type: 'import',
      batch: { processor: 'demo.rows', hold: true, chunkSize: 20 },
    });
    const id = (submitted.body as Batch).id;
    const next = { n: 0 };
    const producer = async () => {
      for (let n = ++next.n; n <= 48; n = ++next.n) {
        const append = () => api.call('POST', `/v1/jobs/${id}/rows`, { rows: [{ n }] }, { 'idempotency-key': `n${n}` });
        const [once, again] = await Promise.all([append(), append()]);
        expect(once.status).toBe(200);
        expect(again.body).toEqual(once.body);
      }
    };
    await Promise.all(Array.from({ length: 4 }, producer));
    expect((await api.call('POST', `/v1/jobs/${id}/release`)).status).toBe(202);
    const job = await settle(id);
    expect(job.counts).toMatchObject({ total: 48, succeeded: 48 });
    const results = (await download(job.batch.outputs.results.url)).map((l) => JSON.parse(l).result.echo.n);
    expect(results.sort((a, b) => a - b)).toEqual(Array.from({ length: 48 }, (_, i) => i + 1));
  }, 60_000);

  it('runs a file uploaded through the presigned URL (CSV with a header row)', async () => {
    const submitted = await api.submit({
      type: 'ledger',
      batch: { processor: 'examples.ledger', upload: true, input: { format: 'csv' }, chunkSize: 2, maxFailedRows: 10 },
    });
    expect(submitted.status).toBe(202);
    const created = submitted.body as Batch;
    expect(created.status).toBe('HELD');
    expect(created.batch.upload).toMatchObject({ method: 'PUT', format: 'csv' });
    // Release before the upload: refused, nothing changes.
    expect((await api.call('POST', `/v1/jobs/${created.id}/release`)).status).toBe(409);
    const csv = [
      'date,account,amount,currency,description',
      '2026-11-02,DE89370400440532013000,12.50,EUR,coffee',
      '2026-11-03,DE89370400440532013000,-100,EUR,"refund, partial"',
      '2026-13-01,nope,1.234,EU,bad everything',
      '2026-11-04,DE89370400440532013000,3',
      '2026-11-05,DE89370400440532013000,7.00,EUR,"multi',
      'line memo"',
      '"2026-11-06"x,DE89370400440532013000,1,EUR,bad quote',
      '2026-11-07,DE89370400440532013000,9.99,EUR,last',
    ].join('\r\n');
    const put = await fetch(created.batch.upload.url, { method: 'PUT', body: csv });
    expect(put.status).toBe(200);
    expect((await api.call('POST', `/v1/jobs/${created.id}/release`)).status).toBe(202);
    const job = await settle(created.id);
    expect(job.status).toBe('SUCCEEDED');
    expect(job.counts).toMatchObject({ total: 7, succeeded: 4, failed: 3 });
    const results = (await download(job.batch.outputs.results.url)).map((l) => JSON.parse(l));
    expect(results.map((r) => r.status)).toEqual([
      'SUCCEEDED',
      'SUCCEEDED',
      'FAILED',
      'FAILED',
      'SUCCEEDED',
      'FAILED',
      'SUCCEEDED',
    ]);
    expect(results[2].error.code).toBe('INVALID_TRANSACTION');
    expect(results[2].messages).toHaveLength(4);
    expect(results[3].error).toMatchObject({ code: 'BAD_ROW' });
    // The row's number is its `line`; the message names both it and where it is in the file.
    expect(results[3].line).toBe(4);
    expect(results[3].error.message).toBe('row 4 (file line 5): 3 field(s); the header has 5');
    expect(results[5].error.code).toBe('BAD_ROW');
    expect(results[4].result.description).toBe('multi\nline memo');
    expect(await download(job.batch.outputs.postings.url)).toEqual([
      'main;2026-11-02;DE89370400440532013000;debit;1250;EUR',
      'main;2026-11-03;DE89370400440532013000;credit;10000;EUR',
      'main;2026-11-05;DE89370400440532013000;debit;700;EUR',
      'main;2026-11-07;DE89370400440532013000;debit;999;EUR',
    ]);
  });

  it('runs an input file as it was at submit: one replaced before the release fails the batch, saying so', async () => {
    const { s3 } = createClients();
    const key = `incoming/replaced-${Date.now()}.jsonl`;
    const put = (body: string) =>
      s3.send(new PutObjectCommand({ Bucket: stack.info.buckets.data, Key: key, Body: body }));
    await put('{"n":1}\n{"n":2}\n');
    const submitted = await api.submit({
      type: 'import',
      batch: { processor: 'demo.rows', input: { bucket: stack.info.buckets.data, key }, hold: true },
    });
    expect(submitted.status).toBe(202);
    await put('{"n":1}\n{"n":2}\n{"n":3}\n');
    expect((await api.call('POST', `/v1/jobs/${(submitted.body as Batch).id}/release`)).status).toBe(202);
    const job = await settle((submitted.body as Batch).id);
    expect(job.status).toBe('FAILED');
    expect(job.error).toMatchObject({ kind: 'error', code: 'INPUT_CHANGED' });
    expect(job.error.message).toMatch(/changed after the batch was submitted/);
    expect(job.batch.finalized).toBe(true);
  });

  it('reads an input file from S3 (JSON Lines), and pages through rows by status with cursors', async () => {
    const { s3 } = createClients();
    const key = `incoming/by-hand-${Date.now()}.jsonl`;
    const lines = rowsOf(450, [10, 20, 449]).map((r) => JSON.stringify(r));
    lines.splice(100, 0, '{not json');
    await s3.send(new PutObjectCommand({ Bucket: stack.info.buckets.data, Key: key, Body: `${lines.join('\n')}\n` }));
    const submitted = await api.submit({
      type: 'import',
      batch: {
        processor: 'demo.rows',
        input: { bucket: stack.info.buckets.data, key },
        chunkSize: 7,
        maxFailedRows: 4,
      },
    });
    expect(submitted.status).toBe(202);
    const job = await settle((submitted.body as Batch).id);
    expect(job.status).toBe('SUCCEEDED');
    expect(job.counts).toMatchObject({ total: 451, succeeded: 447, failed: 4 });
    const failed: Batch[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: { body: Batch } = await api.call(
        'GET',
        `/v1/jobs/${job.id}/rows?status=FAILED&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
      );
      failed.push(...page.body.items);
      cursor = page.body.nextCursor;
      pages++;
    } while (cursor);
    expect(failed.map((r) => r.line)).toEqual([10, 20, 101, 450]);
    expect(failed[2].error.code).toBe('BAD_ROW');
    expect(failed[2].error.message).toMatch(/^row 101 \(file line 101\): not JSON: /);
    expect(pages).toBeGreaterThanOrEqual(2);
    // Every row, in order, across pages of 100 (no gaps, no duplicates).
    const all: number[] = [];
    cursor = null;
    do {
      const page: { body: Batch } = await api.call(
        'GET',
        `/v1/jobs/${job.id}/rows?limit=100${cursor ? `&cursor=${cursor}` : ''}`,
      );
      all.push(...page.body.items.map((r: Batch) => r.line));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(all).toEqual(Array.from({ length: 451 }, (_, i) => i + 1));
    // A cursor is bound to its query and cannot be forged.
    const first: { body: Batch } = await api.call('GET', `/v1/jobs/${job.id}/rows?limit=1`);
    const other = await api.call<Batch>('GET', `/v1/jobs/${job.id}/rows?status=FAILED&cursor=${first.body.nextCursor}`);
    expect(other.status).toBe(400);
    const forged = `${Buffer.from(JSON.stringify({ l: 400, q: 'x' })).toString('base64url')}.AAAA`;
    expect((await api.call('GET', `/v1/jobs/${job.id}/rows?cursor=${forged}`)).status).toBe(400);
  });

  it("runs a file uploaded with the README's curl command: a stray quote fails its row alone, the rest run", async () => {
    const submitted = await api.submit({
      type: 'bank_import',
      batch: { processor: 'demo.rows', upload: true, input: { format: 'csv' }, chunkSize: 50, maxFailedRows: 1000 },
    });
    const created = submitted.body as Batch;
    // The very command the README gives, run by curl (which sends a body as a form unless told
    // otherwise, and asks `Expect: 100-continue` past 1 MB: this file is larger).
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const command = readme.split('\n').find((line) => /^curl .*-X PUT .*"\$UPLOAD_URL"/.test(line));
    expect(command).toBeDefined();
    const dir = mkdtempSync(join(tmpdir(), 'upload-'));
    const lines = [
      'n,memo',
      '1,ok',
      '2,"stray quote',
      ...Array.from({ length: 12_000 }, (_, i) => `${i + 3},${'x'.repeat(90)}`),
    ];
    writeFileSync(join(dir, 'transactions.csv'), `${lines.join('\n')}\n`);
    // Not execFileSync: the embedded S3 answers from this very process.
    await promisify(execFile)('bash', ['-c', command!], {
      cwd: dir,
      env: { ...process.env, UPLOAD_URL: created.batch.upload.url },
    });
    expect((await api.call('POST', `/v1/jobs/${created.id}/release`)).status).toBe(202);
    const job = await settle(created.id, 120);
    expect(job.status).toBe('SUCCEEDED');
    expect(job.counts).toMatchObject({ total: 12_002, succeeded: 12_001, failed: 1 });
    const errors = (await download(job.batch.outputs.errors.url)).map((l) => JSON.parse(l));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ line: 2, error: { code: 'BAD_ROW' } });
    expect(errors[0].error.message).toMatch(/^row 2 \(file line 3\): a quoted field is not closed within 100 lines/);
  }, 150_000);

  it('fails a batch whose input holds no rows with EMPTY_INPUT, rather than succeed with none', async () => {
    const { s3 } = createClients();
    const bucket = stack.info.buckets.data;
    const empty = async (format: 'csv' | 'jsonl', body: string) => {
      const submitted = await api.submit({
        type: 'import',
        batch: { processor: 'demo.rows', upload: true, input: { format } },
      });
      const created = submitted.body as Batch;
      expect((await fetch(created.batch.upload.url, { method: 'PUT', body })).status).toBe(200);
      expect((await api.call('POST', `/v1/jobs/${created.id}/release`)).status).toBe(202);
      return created.id;
    };
    const key = `incoming/blank-${Date.now()}.jsonl`;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: '\n  \n' }));
    const named = await api.submit({ type: 'import', batch: { processor: 'demo.rows', input: { bucket, key } } });
    const held = await api.submit({ type: 'import', batch: { processor: 'demo.rows', hold: true } });
    expect((await api.call('POST', `/v1/jobs/${(held.body as Batch).id}/release`)).status).toBe(202);
    const ids = [
      await empty('jsonl', ''),
      await empty('csv', 'n,memo\r\n'),
      (named.body as Batch).id,
      (held.body as Batch).id,
    ];
    for (const id of ids) {
      const job = await settle(id);
      expect(job).toMatchObject({
        status: 'FAILED',
        counts: { total: 0 },
        error: { kind: 'error', code: 'EMPTY_INPUT' },
      });
      expect(job.error.message).toMatch(/no rows/);
      expect(job.batch.finalized).toBe(true);
    }
  }, 90_000);

  it('fails a CSV batch whose header cannot be read, rather than read no rows or misnamed ones', async () => {
    for (const header of ['n,"memo', 'n,memo,n']) {
      const submitted = await api.submit({
        type: 'import',
        batch: { processor: 'demo.rows', upload: true, input: { format: 'csv' }, maxFailedRows: 10 },
      });
      const created = submitted.body as Batch;
      await fetch(created.batch.upload.url, { method: 'PUT', body: `${header}\n1,a,b\n2,c,d\n` });
      await api.call('POST', `/v1/jobs/${created.id}/release`);
      const job = await settle(created.id);
      expect(job).toMatchObject({ status: 'FAILED', error: { kind: 'error', code: 'BAD_HEADER' } });
      expect(job.error.message).toMatch(/CSV header \(file line 1\)/);
    }
  });

  it('aborts mid-batch: ABORTED, unrun rows counted ABORTED, outputs assembled from what finished', async () => {
    // Chunks of one slow row each, so the abort lands while most have not run.
    const submitted = await api.submit({
      type: 'import',
      batch: { processor: 'demo.rows', rows: rowsOf(400), chunkSize: 1 },
    });
    const id = (submitted.body as Batch).id;
    await eventually(async () => ((await api.get(id)).body as Batch).counts.succeeded > 0);
    const aborted = await api.abort(id);
    expect(aborted.status).toBe(202);
    const reply = aborted.body as Batch;
    expect(reply.status).toBe('ABORTED');
    expect(reply.counts.aborted).toBeGreaterThan(0);
    expect(reply.counts.succeeded + reply.counts.aborted).toBe(400);
    const job = await settle(id);
    // The abort's counts are final: nothing committed after it.
    expect(job.counts).toEqual(reply.counts);
    const results = (await download(job.batch.outputs.results.url)).map((l) => JSON.parse(l));
    expect(results).toHaveLength(400);
    expect(results.filter((r) => r.status === 'ABORTED')).toHaveLength(reply.counts.aborted);
    expect(job.batch.outputs.echo.lines).toBe(reply.counts.succeeded);
    expect((await api.abort(id)).status).toBe(200);
  });
});

describe('batches from the submit queue', () => {
  it('runs a batch sent as a queue message; the same key over HTTP finds the same job', async () => {
    const body = { type: 'queued-batch', batch: { processor: 'demo.rows', rows: rowsOf(30), chunkSize: 8 } };
    const sqs = new SQSClient({});
    try {
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: stack.info.queues.submit?.url,
          MessageBody: JSON.stringify(body),
          MessageAttributes: { IdempotencyKey: { DataType: 'String', StringValue: 'queued-batch-1' } },
        }),
      );
    } finally {
      sqs.destroy();
    }
    const replay = await eventually(async () => {
      const reply = await api.submit(body, { 'Idempotency-Key': 'queued-batch-1' });
      return reply.status === 200 ? reply : undefined;
    });
    const job = await settle((replay.body as Batch).id);
    expect(job).toMatchObject({ type: 'queued-batch', status: 'SUCCEEDED', counts: { total: 30, succeeded: 30 } });
    expect(job.batch.chunks).toEqual({ total: 4, done: 4 });
    // Same key, other body: refused.
    const other = await api.submit({ ...body, type: 'other' }, { 'Idempotency-Key': 'queued-batch-1' });
    expect(other.status).toBe(409);
  });
});

describe("bad batch input is refused with the contract's error and writes nothing", () => {
  const refused: [string, unknown, string][] = [
    [
      'both tasks and batch',
      { type: 't', tasks: [{ processor: 'demo.echo' }], batch: { processor: 'demo.rows', rows: [1] } },
      'batch',
    ],
    ['rows not an array', { type: 't', batch: { processor: 'demo.rows', rows: { a: 1 } } }, 'batch.rows'],
    ['chunkSize 0', { type: 't', batch: { processor: 'demo.rows', rows: [1], chunkSize: 0 } }, 'batch.chunkSize'],
    ['chunkSize 1001', { type: 't', batch: { processor: 'demo.rows', rows: [1], chunkSize: 1001 } }, 'batch.chunkSize'],
    ['no rows at all', { type: 't', batch: { processor: 'demo.rows' } }, 'batch.rows'],
    ['an unknown field', { type: 't', batch: { processor: 'demo.rows', rows: [1], colour: 'red' } }, 'batch'],
    [
      'a file without a key',
      { type: 't', batch: { processor: 'demo.rows', input: { bucket: 'some-bucket' } } },
      'batch.input',
    ],
    [
      'upload and a file',
      { type: 't', batch: { processor: 'demo.rows', upload: true, input: { bucket: 'bbb', key: 'k' } } },
      'batch.input',
    ],
  ];
  for (const [what, body, path] of refused) {
    it(`refuses ${what}`, async () => {
      const before = (await tableItems(stack)).length;
      const reply = await api.submit(body);
      expect(reply.status).toBe(400);
      expect((reply.body as Batch).error.code).toBe('VALIDATION_FAILED');
      expect((reply.body as Batch).error.details.map((d: { path: string }) => d.path)).toContain(path);
      expect((await tableItems(stack)).length).toBe(before);
    });
  }

  it('refuses an unknown processor and an S3 key that does not exist, creating no job', async () => {
    // Earlier scenarios' messages (an aborted batch's chunks, rows retried after a delay) must be
    // gone, and the table at rest, before counting.
    await eventually(async () => (await queueDepth(stack, 'work')) === 0 || undefined, 60_000);
    let before = -1;
    await eventually(async () => {
      const now = (await tableItems(stack)).length;
      const settled = now === before;
      before = now;
      if (!settled) await new Promise((r) => setTimeout(r, 1000));
      return settled || undefined;
    }, 60_000);
    const depth = await queueDepth(stack, 'work');
    const unknown = await api.submit({ type: 't', batch: { processor: 'nope.rows', rows: [1] } });
    expect(unknown.status).toBe(400);
    expect((unknown.body as Batch).error.code).toBe('UNKNOWN_PROCESSOR');
    const missing = await api.submit({
      type: 't',
      batch: {
        processor: 'demo.rows',
        input: { bucket: stack.info.buckets.data, key: 'incoming/no/such/file.csv', format: 'csv' },
      },
    });
    expect(missing.status).toBe(400);
    expect((missing.body as Batch).error.details[0]).toMatchObject({ path: 'batch.input.key' });
    expect((missing.body as Batch).error.message).toMatch(/does not exist/);
    expect((await tableItems(stack)).length).toBe(before);
    expect(await queueDepth(stack, 'work')).toBe(depth);
  }, 120_000);

  it('refuses appending to or releasing a batch that is not HELD, and rows that are not an array', async () => {
    const submitted = await api.submit({ type: 't', batch: { processor: 'demo.rows', rows: [1, 2] } });
    const id = (submitted.body as Batch).id;
    expect((await api.call<Batch>('POST', `/v1/jobs/${id}/rows`, { rows: [3] })).body.error.code).toBe('INVALID_STATE');
    expect((await api.call<Batch>('POST', `/v1/jobs/${id}/release`)).status).toBe(409);
    const held = await api.submit({ type: 't', batch: { processor: 'demo.rows', hold: true } });
    const heldId = (held.body as Batch).id;
    expect((await api.call<Batch>('POST', `/v1/jobs/${heldId}/rows`, { rows: 'x' })).status).toBe(400);
    expect((await api.call<Batch>('POST', `/v1/jobs/${heldId}/rows`, { rows: [] })).status).toBe(400);
    expect(((await api.get(heldId)).body as Batch).counts.total).toBe(0);
    expect((await api.call<Batch>('GET', `/v1/jobs/${heldId}/rows?limit=0`)).status).toBe(400);
    expect((await api.call<Batch>('GET', `/v1/jobs/${heldId}/rows?status=DONE`)).status).toBe(400);
  });
});
