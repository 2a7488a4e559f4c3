import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../local/stack.js';
import { injected, injectFaults } from '../../shared/aws/faults.js';
import { apiClient, tableItems } from '../support/api.js';
import { eventually, startTestStack } from '../support/stack.js';

/**
 * A job is written before its first messages are sent (so no worker looks for a job not written
 * yet); when that send fails for good, the job written for it is taken back. Over HTTP the caller
 * gets the contract's 500 and nothing is left; through the submit queue the submission comes back
 * and makes its one job then. (Also proves both roles' grant to delete a job item: iam-check.)
 */
let stack: LocalStack;
let sqs: SQSClient;
let api: ReturnType<typeof apiClient>;

beforeAll(async () => {
  stack = await startTestStack();
  sqs = new SQSClient({});
  api = apiClient(stack);
});
afterEach(() => injectFaults(undefined));
afterAll(async () => {
  sqs?.destroy();
  await stack?.stop();
});

/** Every send of work messages fails, through all of the SDK's retries, `times` calls long. */
const workSendsFail = (attempts: number) =>
  injectFaults({ rate: 1, commands: ['SendMessageBatchCommand'], limit: attempts });

const jobsOfType = async (type: string) => (await tableItems(stack)).filter((i) => i.type === type && i.sk === 'JOB');

describe('when the first messages of a job cannot be sent', () => {
  it('answers a POST with 500 INTERNAL and leaves no job; the retry with the same key makes it afresh', async () => {
    const body = { type: 'send-fails-http', tasks: [{ processor: 'demo.echo', input: 'once' }] };
    workSendsFail(3);
    const failed = await api.submit(body, { 'Idempotency-Key': 'send-fails-1' });
    expect(injected.failures).toBe(3);
    expect(failed.status).toBe(500);
    expect(failed.body).toMatchObject({ error: { code: 'INTERNAL' } });
    expect(await jobsOfType('send-fails-http')).toEqual([]);

    const retried = await api.submit(body, { 'Idempotency-Key': 'send-fails-1' });
    expect(retried.status).toBe(202);
    const done = await api.waitFor(retried.body.id);
    expect(done.status).toBe('SUCCEEDED');
    expect(done.tasks[0]?.result).toEqual({ echo: 'once' });
  });

  it('through the submit queue: the submission comes back after its backoff and makes exactly one job', async () => {
    workSendsFail(3);
    const body = { type: 'send-fails-queue', tasks: [{ processor: 'demo.echo', input: 'queued' }] };
    await sqs.send(
      new SendMessageCommand({ QueueUrl: stack.info.queues.submit.url, MessageBody: JSON.stringify(body) }),
    );
    await eventually(async () => injected.failures === 3 || undefined, 20_000);
    const [job] = await eventually(async () => {
      const jobs = await jobsOfType('send-fails-queue');
      return jobs.length > 0 && jobs.every((j) => j.status === 'SUCCEEDED') ? jobs : undefined;
    }, 60_000);
    expect(await jobsOfType('send-fails-queue')).toHaveLength(1);
    expect(job).toMatchObject({ status: 'SUCCEEDED' });
  }, 90_000);
});
