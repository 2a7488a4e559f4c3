import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { apiClient, queueDepth, tableItems } from '../../support/api.js';
import { eventually, startTestStack } from '../../support/stack.js';

/**
 * Fault suite, scenario 7: 10,000 submissions at once over HTTP (64 in flight), each with its own
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
    const api = apiClient(stack);
    const ids = new Map<string, string>();
    const statuses = new Map<number, number>();
    let next = 0;
    const submit = async (i: number) => {
      const reply = await api.submit(
        { type: 'flood', tasks: [{ processor: 'demo.echo', input: i }] },
        { 'Idempotency-Key': `flood-${i}` },
      );
      statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
      return reply;
    };
    const worker = async () => {
      while (next < JOBS) {
        const i = next++;
        const reply = await submit(i);
        expect(reply.status).toBe(202);
        ids.set(`flood-${i}`, reply.body.id);
        if (i % 10 === 0) {
          const again = await submit(i);
          expect(again.status).toBe(200);
          expect(again.body.id).toBe(reply.body.id);
        }
      }
    };
    const started = Date.now();
    await Promise.all(Array.from({ length: 64 }, worker));
    expect(new Set(ids.values()).size).toBe(JOBS);
    await eventually(async () => {
      const items = (await tableItems(stack)).filter((item) => item.type === 'flood');
      return items.length === JOBS && items.every((item) => item.status === 'SUCCEEDED');
    }, 600_000);
    await eventually(async () => (await queueDepth(stack, 'work')) === 0 || undefined, 60_000);
    console.log(
      `FLOOD ${JOBS} jobs (+${JOBS / 10} replays) in ${((Date.now() - started) / 1000).toFixed(0)} s: statuses ${JSON.stringify(Object.fromEntries(statuses))}, all SUCCEEDED once, 0 violations`,
    );
  }, 900_000);
});
