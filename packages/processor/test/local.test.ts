import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localProcessors } from '../../../local/processors.js';
import type { LocalStack } from '../../../local/stack.js';
import { apiClient } from '../../../test/support/api.js';
import { startTestStack } from '../../../test/support/stack.js';

// biome-ignore lint/suspicious/noExplicitAny: replies are read as a user's script would
type Any = any;

let stack: LocalStack;
let api: ReturnType<typeof apiClient>;

/** Kit-built handlers registered as `npm start` registers a user's own (README, "Your own processors locally"). */
beforeAll(async () => {
  const options = await localProcessors({
    PROCESSORS: JSON.stringify({
      'invoice.render': {
        target: { type: 'lambda', functionName: 'invoice-render' },
        timeoutSeconds: 10,
        maxAttempts: 2,
        backoff: { type: 'fixed', delaySeconds: 1 },
      },
      'invoice.lines': {
        target: { type: 'lambda', functionName: 'invoice-lines' },
        kind: 'chunks',
        timeoutSeconds: 10,
        maxAttempts: 2,
        backoff: { type: 'fixed', delaySeconds: 1 },
      },
    }),
    LOCAL_FUNCTIONS: JSON.stringify({
      'invoice-render': { module: './invoices.ts', export: 'render' },
      'invoice-lines': { module: './invoices.ts', export: 'lines' },
    }),
    DEMO_PROCESSORS: 'off',
    INIT_CWD: fileURLToPath(new URL('./fixtures/', import.meta.url)),
  });
  stack = await startTestStack(options);
  api = apiClient(stack);
});
afterAll(() => stack?.stop());

describe('a kit-built Lambda on the local stack', () => {
  it('runs a job: results, a retried crash, a final ProcessorError, a refused input, and the log', async () => {
    const job: Any = await api.run({
      type: 'invoices',
      strategy: 'concurrent',
      tasks: [
        { processor: 'invoice.render', input: { invoice: 'INV-7' } },
        { processor: 'invoice.render', input: { invoice: 'INV-8', crashOnce: true } },
        { processor: 'invoice.render', input: { invoice: 'INV-0' } },
        { processor: 'invoice.render', input: { invoice: 'seven' } },
      ],
    });
    expect(job.status).toBe('FAILED');
    expect(job.tasks.map((t: Any) => [t.status, t.attempts, t.result ?? t.error])).toEqual([
      ['SUCCEEDED', 1, { pdf: 'INV-7.pdf', attempt: 1 }],
      ['SUCCEEDED', 2, { pdf: 'INV-8.pdf', attempt: 2 }],
      ['FAILED', 1, { kind: 'error', code: 'VOID_INVOICE', message: 'invoice 0 is void' }],
      [
        'FAILED',
        1,
        { kind: 'error', code: 'INVALID_INPUT', message: 'invoice: Invalid string: must match pattern /^INV-\\d+$/' },
      ],
    ]);
    const events = (await api.call<Any>('GET', `/v1/jobs/${job.id}/events`)).body.items;
    const crashed = job.tasks[1].id;
    expect(events.filter((e: Any) => e.taskId === crashed).map((e: Any) => [e.type, e.message])).toEqual(
      expect.arrayContaining([
        ['task.attempt_failed', expect.stringContaining('renderer not warmed up')],
        ['task.log', 'rendering'],
      ]),
    );
    expect(events.find((e: Any) => e.type === 'task.log' && e.taskId === job.tasks[0].id)?.data).toEqual({
      invoice: 'INV-7',
      attempt: 1,
    });
  });

  it('runs a batch: rows validated one by one, a retried row, and a named output', async () => {
    const submitted = await api.submit<Any>({
      type: 'picking',
      batch: {
        processor: 'invoice.lines',
        chunkSize: 2,
        maxFailedRows: 1,
        context: { ledger: 'eu' },
        rows: [
          { sku: 'A-1', qty: 2 },
          { sku: 'BUSY', qty: 1 },
          { sku: 'B-2', qty: -3 },
          { sku: 'C-3', qty: 5 },
        ],
      },
    });
    expect(submitted.status).toBe(202);
    let job: Any;
    for (let i = 0; i < 20; i++) {
      job = (await api.get<Any>(submitted.body.id, 5)).body;
      if (job.batch?.finalized) break;
    }
    expect(job.status).toBe('SUCCEEDED');
    expect(job.counts).toMatchObject({ total: 4, succeeded: 3, failed: 1 });
    const picklist = await (await fetch(job.batch.outputs.picklist.url)).text();
    expect(picklist).toBe('A-1;2\nBUSY;1\nC-3;5\n');
    const failed = (await api.call<Any>('GET', `/v1/jobs/${job.id}/rows?status=FAILED`)).body.items;
    expect(failed).toEqual([
      expect.objectContaining({
        line: 3,
        error: expect.objectContaining({
          code: 'INVALID_ROW',
          message: 'qty: Too small: expected number to be >0',
        }),
      }),
    ]);
    const results = (await (await fetch(job.batch.outputs.results.url)).text()).trim().split('\n');
    expect(results.map((line) => JSON.parse(line)).map((row) => [row.line, row.result ?? row.error.code])).toEqual([
      [1, { sku: 'A-1', qty: 2, ledger: 'eu' }],
      [2, { sku: 'BUSY', qty: 1, ledger: 'eu' }],
      [3, 'INVALID_ROW'],
      [4, { sku: 'C-3', qty: 5, ledger: 'eu' }],
    ]);
  });
});
