import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { queueDepth, tableItems } from '../../support/api.js';
import { eventually, startTestStack } from '../../support/stack.js';

/**
 * Fault suite, scenario 7: 10,000 submissions at once on the submit queue, each with its own
 * idempotency key, and every 10th sent twice. All are accepted exactly once and all finish.
 */
const JOBS = 10_000;

let stack: LocalStack;
beforeAll(async () => {
  stack = await startTestStack();
});
afterAll(() => stack?.stop());

describe('10,000 submissions at once', () => {
  it('accepts each exactly once and finishes them all', async () => {
    const sqs = new SQSClient({});
    const entry = (i: number, id: string) => ({
      Id: id,
      MessageBody: JSON.stringify({ type: 'flood', tasks: [{ processor: 'demo.echo', input: i }] }),
      MessageAttributes: { IdempotencyKey: { DataType: 'String', StringValue: `flood-${i}` } },
    });
    const started = Date.now();
    const batches: ReturnType<typeof entry>[][] = [];
    for (let i = 0; i < JOBS; i += 10) batches.push(Array.from({ length: 10 }, (_, j) => entry(i + j, `a${j}`)));
    for (let i = 0; i < JOBS; i += 100) batches.push(Array.from({ length: 10 }, (_, j) => entry(i + j * 10, `b${j}`)));
    let next = 0;
    const sender = async () => {
      while (next < batches.length) {
        const Entries = batches[next++]!;
        const { Failed = [] } = await sqs.send(
          new SendMessageBatchCommand({ QueueUrl: stack.info.queues.submit?.url, Entries }),
        );
        expect(Failed).toEqual([]);
      }
    };
    await Promise.all(Array.from({ length: 8 }, sender));
    sqs.destroy();
    // A full table read is not cheap: every 5 s.
    let items: Record<string, unknown>[] = [];
    await eventually(async () => {
      await new Promise((r) => setTimeout(r, 5000));
      items = (await tableItems(stack)).filter((item) => item.type === 'flood' && item.sk === 'JOB');
      return items.length >= JOBS && items.every((item) => item.status === 'SUCCEEDED');
    }, 600_000);
    await eventually(async () => (await queueDepth(stack, 'work')) === 0 || undefined, 60_000);
    expect(items).toHaveLength(JOBS);
    expect(new Set(items.map((item) => item.idempotencyKey)).size).toBe(JOBS);
    expect(items.filter((item) => item.status !== 'SUCCEEDED')).toEqual([]);
    expect(await queueDepth(stack, 'submitDlq')).toBe(0);
    console.log(
      `FLOOD ${JOBS} submissions (+${JOBS / 10} duplicates) in ${((Date.now() - started) / 1000).toFixed(0)} s: ${JOBS} jobs, each once, all SUCCEEDED, 0 violations`,
    );
  }, 900_000);
});
