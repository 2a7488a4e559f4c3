import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { createClients } from '../../../shared/aws/clients.js';
import { dynamoItemSize, installMeter, Meter, uninstallMeter } from '../../../shared/aws/meter.js';
import { resources } from '../../../shared/resources.js';
import { apiClient } from '../../support/api.js';
import { startTestStack } from '../../support/stack.js';

describe('item size by DynamoDB’s rules', () => {
  it('counts attribute names and values', () => {
    expect(dynamoItemSize({ pk: 'JOB#1' })).toBe(2 + 5);
    expect(dynamoItemSize({ a: true, b: null })).toBe(1 + 1 + 1 + 1);
    expect(dynamoItemSize({ m: { k: 'vv' } })).toBe(1 + 3 + 1 + 1 + 2);
  });
});

describe('the request meter on a running stack', () => {
  let stack: LocalStack;
  const meter = new Meter();
  beforeAll(async () => {
    stack = await startTestStack();
    meter.indexes.set(stack.info.tables.jobs, resources.tables.jobs.indexes);
    installMeter(meter);
  });
  afterAll(async () => {
    uninstallMeter();
    await stack?.stop();
  });

  it('bills SQS one request per started 64 KiB of a batch', async () => {
    meter.reset();
    const { sqs } = createClients();
    await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: stack.info.queues.workDlq.url,
        Entries: [
          { Id: '1', MessageBody: 'x'.repeat(40 * 1024) },
          { Id: '2', MessageBody: 'y'.repeat(40 * 1024) },
        ],
      }),
    );
    expect(meter.byOperation()['SQS.SendMessageBatch']).toMatchObject({ calls: 1, sqsRequests: 2 });
    sqs.destroy();
  });

  it('counts what one single-task job costs, call by call (the cost anatomy issue 9 tracks)', async () => {
    meter.reset();
    const job = await apiClient(stack).run({ type: 'metered', tasks: [{ processor: 'demo.echo', input: 1 }] });
    expect(job.status).toBe('SUCCEEDED');
    const ops = meter.byOperation();
    // Create and finish: two conditional Puts of a small item, 1 WRU each. Only a task still
    // running after a second also has its start written (with its lease), so on a slow engine
    // there may be a third. Find's index: one byOwner entry, written at create and never moved
    // (a job that succeeds gets no byOutcome entry).
    const puts = ops['DynamoDB.PutItem'];
    expect(puts?.calls).toBeGreaterThanOrEqual(2);
    expect(puts?.calls).toBeLessThanOrEqual(3);
    expect(puts).toMatchObject({ wru: puts?.calls, indexWrites: 1 });
    expect(ops['SQS.SendMessageBatch']?.sqsRequests).toBe(1);
    expect(ops['ApiGateway.request']?.apiRequests).toBeGreaterThanOrEqual(1);
    expect(ops['Lambda.jobs-local-worker']?.lambdaInvocations).toBeGreaterThanOrEqual(1);
    expect(ops['Lambda.jobs-local-demo-echo']?.lambdaInvocations).toBe(1);
  });
});
