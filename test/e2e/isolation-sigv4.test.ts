import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localPrincipal } from '../../local/runtime/principals.js';
import type { LocalStack } from '../../local/stack.js';
import { iamOwner } from '../../shared/core/owners.js';
import { apiClient, sigv4 } from '../support/api.js';
import { callers, twoOwners } from '../support/isolation.js';
import { startTestStack } from '../support/stack.js';

const users = ['alice', 'bob', 'root'].map((name) => ({
  name,
  accessKeyId: `AKIA${name.toUpperCase()}LOCAL`,
  secretAccessKey: `secret-of-${name}`,
}));
let stack: LocalStack;

beforeAll(async () => {
  stack = await startTestStack({
    auth: { mode: 'iam', users },
    handlerEnv: { ADMIN_PRINCIPALS: localPrincipal('root').userArn },
  });
});
afterAll(() => stack?.stop());

const as = (name: string) => sigv4(users.find((u) => u.name === name)!);

describe('two owners over HTTP with real SigV4 signatures', () => {
  it('refuses a request signed with a wrong secret', async () => {
    const forged = apiClient(stack, sigv4({ accessKeyId: users[0]!.accessKeyId, secretAccessKey: 'guess' }));
    expect((await forged.call('GET', '/v1/jobs')).status).toBe(403);
  });
  twoOwners(
    () => callers(stack, as),
    (name) => iamOwner(localPrincipal(name).userId),
  );
});
