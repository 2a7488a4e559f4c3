import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { jwtOwner } from '../../../shared/core/owners.js';
import { startTestStack } from '../../../test/support/stack.js';
import { JobsClient, NotFoundError, UnauthorizedError } from '../src/index.js';

/** The client against the local API in LOCAL_AUTH=jwt: bearer tokens of the local issuer. */
let stack: LocalStack;

beforeAll(async () => {
  stack = await startTestStack({ auth: { mode: 'jwt' } });
});
afterAll(() => stack?.stop());

describe('the client with a JWT', () => {
  it('submits and waits as the token’s subject, whose job another subject does not see', async () => {
    const alice = new JobsClient({
      endpoint: stack.info.api,
      auth: { type: 'jwt', token: await stack.issueToken({ sub: 'alice' }) },
    });
    const job = await alice.submit({ type: 'bearer', tasks: [{ processor: 'demo.echo' }] });
    expect(job.owner).toBe(jwtOwner('sub', 'alice'));
    expect((await alice.wait(job.id, { timeoutMs: 20_000 })).status).toBe('SUCCEEDED');
    const events: string[] = [];
    for await (const event of alice.events(job.id)) events.push(event.type);
    expect(events).toContain('job.succeeded');
    const bob = new JobsClient({
      endpoint: stack.info.api,
      auth: { type: 'jwt', token: await stack.issueToken({ sub: 'bob' }) },
    });
    await expect(bob.get(job.id)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('asks a token function before every request, so a caller can refresh its token', async () => {
    let asked = 0;
    const client = new JobsClient({
      endpoint: stack.info.api,
      auth: {
        type: 'jwt',
        token: async () => {
          asked++;
          return stack.issueToken({ sub: 'carol' });
        },
      },
    });
    const job = await client.submit({ type: 'refreshed', tasks: [{ processor: 'demo.echo' }] });
    await client.get(job.id);
    expect(asked).toBe(2);
  });

  it("is refused with the authorizer's 401 as an UnauthorizedError, expired or without a token", async () => {
    const expired = await stack.issueToken({ sub: 'alice', exp: Math.floor(Date.now() / 1000) - 60 });
    const error = await new JobsClient({ endpoint: stack.info.api, auth: { type: 'jwt', token: expired } })
      .get('anything')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnauthorizedError);
    expect(error).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    await expect(new JobsClient({ endpoint: stack.info.api }).get('anything')).rejects.toBeInstanceOf(
      UnauthorizedError,
    );
  });
});
