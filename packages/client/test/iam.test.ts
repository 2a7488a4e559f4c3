import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../../local/cloud.js';
import { localPrincipal } from '../../../local/runtime/principals.js';
import type { LocalStack } from '../../../local/stack.js';
import { iamOwner } from '../../../shared/core/owners.js';
import { startTestStack } from '../../../test/support/stack.js';
import { type BatchView, ForbiddenError, JobsClient, NotFoundError } from '../src/index.js';

/** The client against the local API in LOCAL_AUTH=iam: every request signed with real SigV4. */
const users = ['alice', 'bob'].map((name) => ({
  name,
  accessKeyId: `AKIA${name.toUpperCase()}LOCAL`,
  secretAccessKey: `secret-of-${name}`,
}));
// The local cloud's own credentials, which the stack puts in the environment: the standard chain finds them.
const chainUser = { name: 'chain', ...LOCAL_CREDENTIALS };
let stack: LocalStack;

beforeAll(async () => {
  stack = await startTestStack({ auth: { mode: 'iam', users: [...users, chainUser] } });
});
afterAll(() => stack?.stop());

const as = (name: string) => {
  const { accessKeyId, secretAccessKey } = users.find((user) => user.name === name)!;
  return new JobsClient({
    endpoint: stack.info.api,
    auth: { type: 'iam', region: LOCAL_REGION, credentials: { accessKeyId, secretAccessKey } },
  });
};

describe('the client with SigV4', () => {
  it('submits and waits as its signer, whose job no other principal sees', async () => {
    const alice = as('alice');
    const job = await alice.submit({ type: 'signed', tasks: [{ processor: 'demo.echo', input: 1 }] });
    expect(job.owner).toBe(iamOwner(localPrincipal('alice').userId));
    // A long poll: the signed query string (`?wait=`) is checked too.
    expect((await alice.wait(job.id, { timeoutMs: 20_000 })).status).toBe('SUCCEEDED');
    await expect(as('bob').get(job.id)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('pages through Find with signed cursors, and reads a batch’s rows', async () => {
    const alice = as('alice');
    const type = `signed-pages-${Date.now()}`;
    for (let i = 0; i < 4; i++) await alice.submit({ type, meta: { i }, tasks: [{ processor: 'demo.echo' }] });
    const found: string[] = [];
    for await (const job of alice.find({ type, limit: 1, 'meta.i': '2' })) found.push(job.type);
    expect(found).toEqual([type]);
    const all: string[] = [];
    for await (const job of alice.find({ type, limit: 1 })) all.push(job.id);
    expect(all).toHaveLength(4);
    const batch = await alice.submitBatch({ type: 'signed-batch', batch: { processor: 'demo.rows', rows: [1, 2, 3] } });
    const done = (await alice.wait(batch.id, { timeoutMs: 30_000 })) as BatchView;
    const lines: number[] = [];
    for await (const row of alice.rows(batch.id, { limit: 1 })) lines.push(row.line);
    expect(lines).toEqual([1, 2, 3]);
    // A presigned URL carries its own signature: the download sends no SigV4 of ours.
    const echo = await new Response(await alice.download(done.batch.outputs.echo!)).text();
    expect(echo.trim().split('\n')).toEqual(['1', '2', '3']);
  }, 60_000);

  it('signs with the standard credential chain when given no credentials, and with a credentials function', async () => {
    const chained = new JobsClient({ endpoint: stack.info.api, auth: { type: 'iam' } });
    const job = await chained.submit({ type: 'chained', tasks: [{ processor: 'demo.echo' }] });
    expect(job.owner).toBe(iamOwner(localPrincipal('chain').userId));
    let asked = 0;
    const provided = new JobsClient({
      endpoint: stack.info.api,
      auth: {
        type: 'iam',
        region: LOCAL_REGION,
        credentials: async () => {
          asked++;
          return { accessKeyId: users[1]!.accessKeyId, secretAccessKey: users[1]!.secretAccessKey };
        },
      },
    });
    expect((await provided.submit({ type: 'provided', tasks: [{ processor: 'demo.echo' }] })).owner).toBe(
      iamOwner(localPrincipal('bob').userId),
    );
    expect(asked).toBeGreaterThan(0);
  });

  it("is refused with API Gateway's 403 as a ForbiddenError when the signature is wrong", async () => {
    const forged = new JobsClient({
      endpoint: stack.info.api,
      auth: {
        type: 'iam',
        region: LOCAL_REGION,
        credentials: { accessKeyId: users[0]!.accessKeyId, secretAccessKey: 'guess' },
      },
      retries: 0,
    });
    const error = await forged.get('anything').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ForbiddenError);
    expect(error).toMatchObject({ status: 403, code: 'FORBIDDEN', message: 'Forbidden' });
    await expect(new JobsClient({ endpoint: stack.info.api }).get('anything')).rejects.toBeInstanceOf(ForbiddenError);
  });
});
