import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../local/stack.js';
import { injected, injectFaults } from '../../shared/aws/faults.js';
import type { JobView } from '../../shared/core/view.js';
import { apiClient, queueDepth } from '../support/api.js';
import { eventually, startTestStack } from '../support/stack.js';

/**
 * The fault suite's first scenario (issue 9): a mixed workload while 5% of all AWS calls — by the
 * handlers and by the local runtime's pollers — fail with throttling or 5xx, with added latency.
 * Every job must end terminal with the outcome a clean run gives, and no message stay behind.
 */
const workload = [
  { type: 'seq', tasks: [1, 2, 3].map((n) => ({ processor: 'demo.echo', input: n })) },
  { type: 'conc', strategy: 'concurrent', tasks: [{ processor: 'demo.echo', input: 'a' }, { processor: 'demo.fail' }] },
  { type: 'flaky', tasks: [{ processor: 'demo.flaky', input: { failTimes: 1 } }] },
];
const expected = [
  ['SUCCEEDED', ['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']],
  ['FAILED', ['SUCCEEDED', 'FAILED']],
  ['SUCCEEDED', ['SUCCEEDED']],
];

describe('under injected AWS faults (5% throttling/5xx, up to 20 ms latency)', () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(async () => {
    injectFaults(undefined);
    await stack?.stop();
  });

  it('ends every job as a clean run would, and leaves no message behind', async () => {
    const api = apiClient(stack);
    injectFaults({ rate: 0.05, latencyMs: 20 });
    const jobs: JobView[] = [];
    for (let round = 0; round < 5; round++) {
      const ids: string[] = [];
      for (const body of workload) {
        // A submit may itself hit an exhausted retry: the caller retries with its idempotency key.
        const key = `round-${round}-${body.type}`;
        const reply = await eventually(async () => {
          const r = await api.submit(body, { 'Idempotency-Key': key });
          return r.status === 202 || r.status === 200 ? r : undefined;
        });
        ids.push(reply.body.id);
      }
      for (const id of ids) jobs.push(await api.waitFor(id, 60));
    }
    expect(injected.failures).toBeGreaterThan(0);
    console.log(`FAULTS ${injected.failures} of ${injected.calls} calls`);
    jobs.forEach((job, i) => {
      const [status, tasks] = expected[i % expected.length] as [string, string[]];
      expect(job.status, job.type).toBe(status);
      expect(job.tasks.map((t) => t.status)).toEqual(tasks);
      expect(job.counts.total).toBe(job.counts.succeeded + job.counts.failed + job.counts.aborted);
    });
    injectFaults(undefined);
    await eventually(async () => (await queueDepth(stack, 'work')) === 0 || undefined, 30_000);
  }, 180_000);

  it('counts every batch row once and writes every output line once', async () => {
    const api = apiClient(stack);
    injectFaults({ rate: 0.05, latencyMs: 20 });
    const rows = Array.from({ length: 300 }, (_, i) => (i % 97 === 5 ? { n: i + 1, fail: true } : { n: i + 1 }));
    const reply = await eventually(async () => {
      const r = await api.submit(
        { type: 'batch', batch: { processor: 'demo.rows', rows, chunkSize: 10, maxFailedRows: 10 } },
        { 'Idempotency-Key': 'faulty-batch' },
      );
      return r.status === 202 || r.status === 200 ? r : undefined;
    });
    // biome-ignore lint/suspicious/noExplicitAny: the batch view as a user reads it
    const job: any = await eventually(async () => {
      // biome-ignore lint/suspicious/noExplicitAny: the batch view as a user reads it
      const { body }: { body: any } = await api.get(reply.body.id, 5).catch(() => ({ body: undefined }));
      return body?.batch?.finalized ? body : undefined;
    }, 120_000);
    const failures = injected.failures;
    injectFaults(undefined);
    expect(failures).toBeGreaterThan(0);
    expect(job.status).toBe('SUCCEEDED');
    expect(job.counts).toMatchObject({ total: 300, succeeded: 296, failed: 4, aborted: 0, pending: 0 });
    const results = (await (await fetch(job.batch.outputs.results.url)).text()).trim().split('\n');
    expect(results.map((line) => JSON.parse(line).line)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    const echo = (await (await fetch(job.batch.outputs.echo.url)).text()).trim().split('\n');
    expect(new Set(echo).size).toBe(296);
    console.log(`FAULTS batch: ${failures} injected, 0 violations`);
    await eventually(async () => (await queueDepth(stack, 'work')) === 0 || undefined, 30_000);
  }, 180_000);
});
