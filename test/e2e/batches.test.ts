import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../local/stack.js';
import { apiClient } from '../support/api.js';
import { startTestStack } from '../support/stack.js';

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
});
