import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { injected, injectFaults } from '../../../shared/aws/faults.js';
import type { JobView } from '../../../shared/core/view.js';
import { apiClient, queueDepth } from '../../support/api.js';
import { eventually, startTestStack } from '../../support/stack.js';

/** A mixed workload: sequential, concurrent with a failure, retries, a crash. */
const workload = [
  { type: 'seq', tasks: [1, 2, 3].map((n) => ({ processor: 'demo.echo', input: n })) },
  {
    type: 'conc',
    strategy: 'concurrent',
    tasks: [{ processor: 'demo.echo', input: 'a' }, { processor: 'demo.fail' }, { processor: 'demo.echo', input: 'b' }],
  },
  {
    type: 'flaky',
    tasks: [
      { processor: 'demo.flaky', input: { failTimes: 2 } },
      { processor: 'demo.echo', input: 'after' },
    ],
  },
  {
    type: 'crash',
    strategy: 'concurrent',
    tasks: [{ processor: 'demo.crash' }, { processor: 'demo.echo', input: 'c' }],
  },
];

/** What a user sees of a finished job, without timestamps and ids. */
function outcome(job: JobView) {
  return {
    type: job.type,
    status: job.status,
    counts: job.counts,
    tasks: job.tasks.map((t) => ({
      status: t.status,
      attempts: t.attempts,
      result: t.result,
      kind: t.error?.kind ?? null,
    })),
  };
}

async function runWorkload(stack: LocalStack) {
  const api = apiClient(stack);
  const ids = await Promise.all(workload.map(async (body) => (await api.submit(body)).body.id));
  const jobs = await Promise.all(ids.map((id) => api.waitFor(id, 60)));
  return jobs.map(outcome);
}

let clean: ReturnType<typeof outcome>[];

describe('outcomes under faults match a clean run', () => {
  beforeAll(async () => {
    const stack = await startTestStack();
    try {
      clean = await runWorkload(stack);
    } finally {
      await stack.stop();
    }
    expect(clean.map((j) => j.status)).toEqual(['SUCCEEDED', 'FAILED', 'SUCCEEDED', 'FAILED']);
  }, 60_000);

  it('when every message is delivered twice and every task message is also sent twice', async () => {
    const stack = await startTestStack({ chaos: { redeliver: true, resend: true } });
    try {
      expect(await runWorkload(stack)).toEqual(clean);
      await eventually(async () => (await queueDepth(stack, 'work')) === 0 || undefined, 30_000);
      // The faults really happened: far more deliveries than the 12 tasks' own messages. Counted in
      // messages, not invocations: a busy machine hands the worker more messages per invocation.
      const work = stack.eventSources.find((s) => s.mapping.queueUrl === stack.info.queues.work?.url);
      expect(work?.stats.records).toBeGreaterThanOrEqual(2 * 12);
    } finally {
      await stack.stop();
    }
  }, 90_000);

  describe('when an AWS outage outlasts the SDK’s own retries', () => {
    let stack: LocalStack;
    beforeAll(async () => {
      stack = await startTestStack();
    });
    afterAll(async () => {
      injectFaults(undefined);
      await stack?.stop();
    });

    it('brings the message back in seconds, not after the queue’s 30-minute visibility', async () => {
      const api = apiClient(stack);
      // Attempt 1 fails; hiding its message until the retry is due then fails on every one of
      // the SDK's three tries, so the worker's handling of that message throws.
      injectFaults({ rate: 1, commands: ['ChangeMessageVisibilityCommand'], limit: 3 });
      const { body } = await api.submit({
        type: 'outage',
        tasks: [{ processor: 'demo.flaky', input: { failTimes: 1 } }],
      });
      const job = await api.waitFor(body.id, 20);
      expect(injected.failures).toBe(3);
      expect(job.status).toBe('SUCCEEDED');
      expect(job.tasks[0]).toMatchObject({ status: 'SUCCEEDED', attempts: 2 });
      await eventually(async () => (await queueDepth(stack, 'work')) === 0 || undefined, 30_000);
    }, 60_000);
  });

  describe('when a worker is killed mid-task', () => {
    let stack: LocalStack;
    const calls: number[] = [];
    beforeAll(async () => {
      stack = await startTestStack({
        handlerEnv: { LEASE_MARGIN_SECONDS: '1' },
        processors: {
          'test.stall': {
            target: { type: 'lambda', functionName: 'stall' },
            timeoutSeconds: 2,
            maxAttempts: 3,
            backoff: { type: 'fixed', delaySeconds: 0 },
          },
        },
        extraFunctions: [
          {
            name: 'stall',
            timeoutSeconds: 10,
            memoryMb: 128,
            // Attempt 1 hangs (its worker is killed meanwhile); later attempts answer at once.
            handler: async (event: { task: { attempt: number; input: unknown } }) => {
              calls.push(event.task.attempt);
              if (event.task.attempt === 1) await new Promise((r) => setTimeout(r, 8000));
              return { status: 'ok', result: { done: event.task.input } };
            },
          },
        ],
      });
    });
    afterAll(() => stack?.stop());

    it('loses nothing: the lease lapses and the next delivery runs attempt 2', async () => {
      const api = apiClient(stack);
      const { body } = await api.submit({
        type: 'killed',
        tasks: [
          { processor: 'test.stall', input: 'x' },
          { processor: 'demo.echo', input: 'next' },
        ],
      });
      await eventually(async () => (await api.get(body.id)).body.tasks[0]?.status === 'RUNNING');
      expect(stack.host.kill('jobs-local-worker')).toBeGreaterThanOrEqual(1);

      const job = await api.waitFor(body.id, 30);
      expect(job.status).toBe('SUCCEEDED');
      expect(job.tasks[0]).toMatchObject({ status: 'SUCCEEDED', attempts: 2, result: { done: 'x' } });
      expect(job.tasks[1]).toMatchObject({ status: 'SUCCEEDED', attempts: 1, result: { echo: 'next' } });
      expect(calls.slice(0, 2)).toEqual([1, 2]);
    });
  });
});
