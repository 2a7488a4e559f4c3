import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_REGION } from '../../../local/cloud.js';
import { localPrincipal } from '../../../local/runtime/principals.js';
import type { LocalStack } from '../../../local/stack.js';
import { iamOwner, jwtOwner } from '../../../shared/core/owners.js';
import { startTestStack } from '../../../test/support/stack.js';
import { buildOnce, jobs, pkg } from './support.js';

/**
 * `--auth iam` (SigV4 from the standard credential chain) and `--auth jwt` (a bearer token from
 * the flag or JOBS_TOKEN), against the local API in those modes.
 */
const alice = { name: 'alice', accessKeyId: 'AKIAALICECLI', secretAccessKey: 'secret-of-alice' };
const noProfile = { JOBS_CONFIG: join(pkg, 'no-such-config.json'), JOBS_OWNER: undefined };

beforeAll(() => buildOnce(), 120_000);

describe('--auth iam', () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startTestStack({ auth: { mode: 'iam', users: [alice] } });
  });
  afterAll(() => stack?.stop());

  it('signs with the credentials of the environment, and exits 5 when they are wrong', async () => {
    const env = {
      ...noProfile,
      JOBS_ENDPOINT: stack.info.api,
      AWS_ACCESS_KEY_ID: alice.accessKeyId,
      AWS_SECRET_ACCESS_KEY: alice.secretAccessKey,
      AWS_SESSION_TOKEN: undefined,
      AWS_PROFILE: undefined,
    };
    const args = ['--auth', 'iam', '--region', LOCAL_REGION];
    const submitted = await jobs([...args, 'submit', '--type', 'signed', '--processor', 'demo.echo', '--json'], {
      env,
    });
    expect(submitted.stderr).toBe('');
    expect(JSON.parse(submitted.stdout)).toMatchObject({ owner: iamOwner(localPrincipal('alice').userId) });
    const listed = await jobs([...args, 'ls', '--type', 'signed', '--json'], { env });
    expect(listed.code).toBe(0);

    const wrong = await jobs([...args, 'ls'], { env: { ...env, AWS_SECRET_ACCESS_KEY: 'guess' } });
    expect(wrong.code).toBe(5);
    expect(wrong.stderr).toBe('error: FORBIDDEN: Forbidden\n');
  });
});

describe('--auth jwt', () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startTestStack({ auth: { mode: 'jwt' } });
  });
  afterAll(() => stack?.stop());

  it('sends the token of --token or JOBS_TOKEN; none is a usage error, a bad one exit 5', async () => {
    const env = { ...noProfile, JOBS_ENDPOINT: stack.info.api, JOBS_AUTH: 'jwt' };
    const token = await stack.issueToken({ sub: 'carol' });
    const submitted = await jobs(
      ['submit', '--type', 'bearer', '--processor', 'demo.echo', '--json', '--token', token],
      {
        env,
      },
    );
    const job = JSON.parse(submitted.stdout) as { id: string; owner: string };
    expect(job.owner).toBe(jwtOwner('sub', 'carol'));
    // A token alone picks jwt.
    const got = await jobs(['get', job.id, '--json'], { env: { ...env, JOBS_AUTH: undefined, JOBS_TOKEN: token } });
    expect(JSON.parse(got.stdout)).toMatchObject({ id: job.id });

    const missing = await jobs(['get', job.id], { env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^error: --auth jwt needs a token/);
    const bad = await jobs(['get', job.id, '--token', 'not.a.jwt'], { env });
    expect(bad.code).toBe(5);
    expect(bad.stderr).toMatch(/^error: UNAUTHORIZED: /);
  });
});
