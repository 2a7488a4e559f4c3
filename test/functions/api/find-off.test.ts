import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { apiClient, tableItems } from '../../support/api.js';
import { startTestStack } from '../../support/stack.js';

/** `SEARCH_INDEX=off`: a deployment that never searches pays no index writes. */
let stack: LocalStack;
beforeAll(async () => {
  stack = await startTestStack({ handlerEnv: { SEARCH_INDEX: 'off' } });
});
afterAll(() => stack?.stop());

describe('with Find switched off', () => {
  it('writes jobs without search keys (so no index entries) and answers the Find routes with 409', async () => {
    const api = apiClient(stack);
    const job = await api.run({ type: 'unindexed', tasks: [{ processor: 'demo.echo', input: 1 }] });
    expect(job.status).toBe('SUCCEEDED');
    const [item] = (await tableItems(stack)).filter((i) => i.pk === `JOB#${job.id}`);
    expect(item).toBeDefined();
    expect(Object.keys(item!).filter((name) => ['sOwner', 'sOrder', 'sEnd'].includes(name))).toEqual([]);
    for (const path of ['/v1/jobs?type=unindexed', '/v1/tasks']) {
      const reply = await api.call<{ error: { code: string } }>('GET', path);
      expect(reply.status).toBe(409);
      expect(reply.body.error.code).toBe('INVALID_STATE');
    }
    // Everything else works as before, events included.
    expect((await api.call('GET', `/v1/jobs/${job.id}/events`)).status).toBe(200);
  });
});
