import { afterAll, beforeAll, describe } from 'vitest';
import type { LocalStack } from '../../local/stack.js';
import { jwtOwner } from '../../shared/core/owners.js';
import { bearer } from '../support/api.js';
import { callers, twoOwners } from '../support/isolation.js';
import { startTestStack } from '../support/stack.js';

let stack: LocalStack;
const tokens = new Map<string, string>();

beforeAll(async () => {
  stack = await startTestStack({ auth: { mode: 'jwt' }, handlerEnv: { ADMIN_SCOPE: 'jobs:admin' } });
  for (const name of ['alice', 'bob', 'root']) {
    tokens.set(name, await stack.issueToken({ sub: name, ...(name === 'root' ? { scope: 'jobs:admin' } : {}) }));
  }
});
afterAll(() => stack?.stop());

describe('two owners over HTTP with JWTs (the owner is the sub claim)', () => {
  twoOwners(
    () => callers(stack, (name) => bearer(tokens.get(name)!)),
    (name) => jwtOwner('sub', name),
  );
});
