import { generateKeyPairSync } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Sha256 } from '@smithy/core/checksum';
import { HttpRequest } from '@smithy/core/protocols';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../../local/cloud.js';
import { createApiGateway, type LocalApiEvent } from '../../../local/runtime/api-gateway.js';
import {
  type Authorizer,
  createJwtAuthority,
  iamAuthorizer,
  iamContext,
  type JwtAuthority,
  jwtAuthorizer,
  localAuthFromEnv,
  noneAuthorizer,
  signToken,
} from '../../../local/runtime/authorizers.js';
import { FunctionHost } from '../../../local/runtime/functions.js';
import type { LocalStack } from '../../../local/stack.js';
import { startTestStack } from '../../support/stack.js';

const ALICE = { name: 'alice', accessKeyId: 'AKIDALICE', secretAccessKey: 'alice-secret' };
const BOB = { name: 'bob', accessKeyId: 'AKIDBOB', secretAccessKey: 'bob-secret' };

const seen: LocalApiEvent[] = [];
const servers: Server[] = [];

/** A gateway in front of a function that answers with the authorizer context it was given. */
async function gateway(authorizer: Authorizer): Promise<string> {
  const host = new FunctionHost(LOCAL_REGION);
  host.register({
    name: 'echo',
    timeoutSeconds: 5,
    memoryMb: 128,
    handler: async (event: LocalApiEvent) => {
      seen.push(event);
      return { statusCode: 200, body: JSON.stringify(event.requestContext.authorizer ?? null) };
    },
  });
  const server = createApiGateway({
    host,
    functionName: 'echo',
    routes: ['GET /v1/health', 'GET /items/{id}', 'POST /items', '$default'],
    publicRoutes: ['GET /v1/health'],
    authorizer,
    log: () => {},
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterAll(() => Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve)))));

interface SignOptions {
  method?: string;
  body?: string;
  headers?: Record<string, string>;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  region?: string;
  service?: string;
  signingDate?: Date;
  /** Whether the signer sends `x-amz-content-sha256` (the SDK's default) or only folds the body's hash in. */
  applyChecksum?: boolean;
}

/** The headers the SDK's own signer puts on this request (Host left to fetch, which sends the same). */
async function sigv4(url: URL, options: SignOptions = {}): Promise<Record<string, string>> {
  const query: Record<string, string[]> = {};
  for (const [name, value] of url.searchParams) {
    query[name] = [...(query[name] ?? []), value];
  }
  const signer = new SignatureV4({
    credentials: options.credentials ?? ALICE,
    region: options.region ?? LOCAL_REGION,
    service: options.service ?? 'execute-api',
    sha256: Sha256,
    applyChecksum: options.applyChecksum ?? true,
  });
  const signed = await signer.sign(
    new HttpRequest({
      method: options.method ?? 'GET',
      protocol: url.protocol,
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      query,
      headers: { host: url.host, ...options.headers },
      body: options.body,
    }),
    { signingDate: options.signingDate },
  );
  const { host: _host, ...headers } = signed.headers;
  return headers;
}

async function call(url: URL | string, init: RequestInit = {}) {
  const before = seen.length;
  const response = await fetch(url, init);
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text ? JSON.parse(text) : undefined,
    reachedFunction: seen.length > before,
  };
}

describe('iam mode: SigV4 checked like an IAM authorizer', () => {
  let base: string;
  beforeAll(async () => {
    base = await gateway(iamAuthorizer({ users: [ALICE, BOB], region: LOCAL_REGION }));
  });

  it('accepts a request the SDK signer signed and hands the function that user', async () => {
    const url = new URL('/items/a%20b?x=1&y=two%2Bthree&x=3', base);
    const reply = await call(url, { headers: await sigv4(url) });
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual(iamContext('alice', 'AKIDALICE'));
    expect(reply.body.iam).toMatchObject({
      userArn: 'arn:aws:iam::000000000000:user/alice',
      accountId: '000000000000',
      cognitoIdentity: null,
      principalOrgId: null,
    });
    expect(reply.body.iam.userId).toMatch(/^AIDA[A-Z2-7]{17}$/);
  });

  it('accepts a signed body, with or without the x-amz-content-sha256 header', async () => {
    const url = new URL('/items', base);
    for (const applyChecksum of [true, false]) {
      const body = '{"n":1}';
      const headers = await sigv4(url, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
        applyChecksum,
      });
      expect('x-amz-content-sha256' in headers).toBe(applyChecksum);
      expect((await call(url, { method: 'POST', headers, body })).status).toBe(200);
    }
  });

  it('tells two users apart', async () => {
    const url = new URL('/items/1', base);
    const alice = await call(url, { headers: await sigv4(url, { credentials: ALICE }) });
    const bob = await call(url, { headers: await sigv4(url, { credentials: BOB }) });
    expect(alice.body.iam.userArn).toBe('arn:aws:iam::000000000000:user/alice');
    expect(bob.body.iam.userArn).toBe('arn:aws:iam::000000000000:user/bob');
    expect(alice.body.iam.userId).not.toBe(bob.body.iam.userId);
    expect(bob.body.iam.accessKey).toBe('AKIDBOB');
  });

  it('takes no orders from X-Local-Owner', async () => {
    const url = new URL('/items/1', base);
    const headers = await sigv4(url, { headers: { 'x-local-owner': 'bob' } });
    expect((await call(url, { headers })).body.iam.userArn).toBe('arn:aws:iam::000000000000:user/alice');
  });

  it('refuses with 403 {"message":"Forbidden"} and never reaches the function', async () => {
    const url = new URL('/items/1', base);
    const post = new URL('/items', base);
    const body = '{"n":1}';
    const minutes = (n: number) => new Date(Date.now() + n * 60_000);
    const cases: [string, () => Promise<RequestInit>][] = [
      ['no Authorization', async () => ({})],
      ['a garbled Authorization', async () => ({ headers: { authorization: 'AWS4-HMAC-SHA256 nonsense' } })],
      [
        'a wrong secret',
        async () => ({ headers: await sigv4(url, { credentials: { ...ALICE, secretAccessKey: 'x' } }) }),
      ],
      [
        'an unknown key',
        async () => ({
          headers: await sigv4(url, { credentials: { accessKeyId: 'AKIDNOBODY', secretAccessKey: 'x' } }),
        }),
      ],
      ['a stale date', async () => ({ headers: await sigv4(url, { signingDate: minutes(-16) }) })],
      ['a date in the future', async () => ({ headers: await sigv4(url, { signingDate: minutes(16) }) })],
      ['another region', async () => ({ headers: await sigv4(url, { region: 'eu-west-1' }) })],
      ['another service', async () => ({ headers: await sigv4(url, { service: 's3' }) })],
      [
        'an edited signed header',
        async () => {
          const headers = await sigv4(url, { headers: { 'x-trace': 'a' } });
          return { headers: { ...headers, 'x-trace': 'b' } };
        },
      ],
      ['an edited path', async () => ({ headers: await sigv4(new URL('/items/2', base)) })],
      ...[true, false].map((applyChecksum): [string, () => Promise<RequestInit>] => [
        `an edited body (${applyChecksum ? 'with' : 'without'} x-amz-content-sha256)`,
        async () => ({
          method: 'POST',
          headers: await sigv4(post, { method: 'POST', body, applyChecksum }),
          body: '{"n":2}',
        }),
      ]),
    ];
    for (const [what, init] of cases) {
      const target = what.startsWith('an edited body') ? post : url;
      const reply = await call(target, await init());
      expect(reply.status, what).toBe(403);
      expect(reply.body, what).toEqual({ message: 'Forbidden' });
      expect(reply.reachedFunction, what).toBe(false);
    }
  });

  it('leaves public routes open', async () => {
    const reply = await call(new URL('/v1/health', base));
    expect(reply.status).toBe(200);
    expect(reply.body).toBeNull();
  });
});

describe('jwt mode: tokens checked like a JWT authorizer', () => {
  let base: string;
  let authority: JwtAuthority;
  beforeAll(async () => {
    let issuer = '';
    authority = await createJwtAuthority({ issuer: () => issuer });
    base = await gateway(jwtAuthorizer(authority));
    issuer = base;
  });
  const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

  it('accepts a token of the local issuer and hands the function its claims and scopes', async () => {
    const token = await authority.issue({ sub: 'alice', scope: 'jobs:read jobs:write', groups: ['a', 'b'] });
    const reply = await call(new URL('/items/1', base), bearer(token));
    expect(reply.status).toBe(200);
    expect(reply.body.jwt.scopes).toEqual(['jobs:read', 'jobs:write']);
    // As in AWS, every claim arrives as a string.
    expect(reply.body.jwt.claims).toMatchObject({ sub: 'alice', iss: base, aud: 'jobs-local', groups: '[a b]' });
    expect(reply.body.jwt.claims.exp).toMatch(/^\d+$/);
  });

  it('gives scopes null without a scope claim, and takes client_id when there is no aud', async () => {
    const token = await authority.issue({ sub: 'svc', aud: undefined, client_id: 'jobs-local' });
    const reply = await call(new URL('/items/1', base), bearer(token));
    expect(reply.status).toBe(200);
    expect(reply.body.jwt.scopes).toBeNull();
  });

  it('refuses with 401 {"message":"Unauthorized"} and never reaches the function', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const kid = authority.jwks.keys[0]?.kid as string;
    const now = Math.floor(Date.now() / 1000);
    const cases: [string, () => Promise<RequestInit>][] = [
      ['no Authorization', async () => ({})],
      ['not a token', async () => bearer('garbage')],
      [
        'another key',
        async () => bearer(await signToken(privateKey, kid, { iss: base, aud: 'jobs-local', exp: now + 60 })),
      ],
      ['expired', async () => bearer(await authority.issue({ sub: 'a' }, { expiresIn: -60 }))],
      ['not yet valid', async () => bearer(await authority.issue({ sub: 'a', nbf: now + 600 }))],
      ['issued in the future', async () => bearer(await authority.issue({ sub: 'a', iat: now + 600 }))],
      ['a wrong audience', async () => bearer(await authority.issue({ aud: 'someone-else' }))],
      ['a wrong issuer', async () => bearer(await authority.issue({ iss: 'https://elsewhere.example' }))],
    ];
    for (const [what, init] of cases) {
      const reply = await call(new URL('/items/1', base), await init());
      expect(reply.status, what).toBe(401);
      expect(reply.body, what).toEqual({ message: 'Unauthorized' });
      expect(reply.headers.get('www-authenticate'), what).toMatch(/^Bearer .*error="invalid_token"/);
      expect(reply.reachedFunction, what).toBe(false);
    }
  });
});

describe('none mode: X-Local-Owner picks the local principal', () => {
  let base: string;
  beforeAll(async () => {
    base = await gateway(noneAuthorizer());
  });

  it('acts as `local` without the header and as the named user with it', async () => {
    expect((await call(new URL('/items/1', base))).body).toEqual(iamContext('local'));
    const carol = await call(new URL('/items/1', base), { headers: { 'x-local-owner': 'carol.b-2_x' } });
    expect(carol.body).toEqual(iamContext('carol.b-2_x'));
    expect(carol.body.iam).toMatchObject({ accessKey: 'LOCAL', userArn: 'arn:aws:iam::000000000000:user/carol.b-2_x' });
    expect(iamContext('carol.b-2_x').iam.userId).not.toBe(iamContext('local').iam.userId);
  });

  it('refuses a bad owner name with 400 in the contract’s shape', async () => {
    for (const name of ['', 'a b', 'x'.repeat(65), 'a/b']) {
      const reply = await call(new URL('/items/1', base), { headers: { 'x-local-owner': name } });
      expect(reply.status, name).toBe(400);
      expect(reply.body.error.code, name).toBe('VALIDATION_FAILED');
      expect(reply.reachedFunction, name).toBe(false);
    }
  });
});

describe('localAuthFromEnv', () => {
  it('reads LOCAL_AUTH, LOCAL_IAM_USERS and LOCAL_JWT_AUDIENCE, and refuses nonsense', () => {
    expect(localAuthFromEnv({})).toEqual({ mode: 'none' });
    expect(localAuthFromEnv({ LOCAL_AUTH: 'iam', LOCAL_IAM_USERS: JSON.stringify([ALICE]) })).toEqual({
      mode: 'iam',
      users: [ALICE],
    });
    expect(localAuthFromEnv({ LOCAL_AUTH: 'jwt', LOCAL_JWT_AUDIENCE: 'mine' })).toEqual({
      mode: 'jwt',
      audience: 'mine',
    });
    expect(() => localAuthFromEnv({ LOCAL_AUTH: 'open' })).toThrow();
    expect(() => localAuthFromEnv({ LOCAL_AUTH: 'iam', LOCAL_IAM_USERS: '[{"name":"a b"}]' })).toThrow();
  });
});

describe('the local stack in each mode', () => {
  let iam: LocalStack;
  let jwt: LocalStack;
  beforeAll(async () => {
    [iam, jwt] = await Promise.all([
      startTestStack({ startPollers: false, demo: false, auth: 'iam' }),
      startTestStack({ startPollers: false, demo: false, auth: { mode: 'jwt', audience: 'jobs-test' } }),
    ]);
  });
  afterAll(() => Promise.all([iam?.stop(), jwt?.stop()]));

  it('iam: the local cloud’s own credentials sign for user `local`; health, the OpenAPI document and /local stay open', async () => {
    expect(iam.info.auth).toEqual({ mode: 'iam', users: ['local'], region: LOCAL_REGION, service: 'execute-api' });
    const url = new URL('/v1/jobs', iam.info.api);
    expect((await fetch(url)).status).toBe(403);
    expect((await fetch(url, { headers: await sigv4(url, { credentials: LOCAL_CREDENTIALS }) })).status).toBe(200);
    expect((await fetch(`${iam.info.api}/v1/health`)).status).toBe(200);
    expect((await fetch(`${iam.info.api}/v1/health`, { method: 'HEAD' })).status).toBe(200);
    expect((await fetch(`${iam.info.api}/v1/openapi.json`)).status).toBe(200);
    expect((await fetch(`${iam.info.api}/local/info`)).status).toBe(200);
    await expect(iam.issueToken()).rejects.toThrow(/jwt/);
  });

  it('jwt: serves its JWKS, mints tokens at POST /local/token, and the API takes them', async () => {
    const { api } = jwt.info;
    expect(jwt.info.auth).toEqual({
      mode: 'jwt',
      issuer: api,
      audience: 'jobs-test',
      jwks: `${api}/local/jwks.json`,
      token: `${api}/local/token`,
    });
    const jwks = await (await fetch(`${api}/local/jwks.json`)).json();
    expect(jwks.keys).toEqual([expect.objectContaining({ kty: 'RSA', alg: 'RS256', use: 'sig' })]);
    expect(jwks.keys[0]).not.toHaveProperty('d');

    const minted = await fetch(`${api}/local/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sub: 'dev' }),
    });
    expect(minted.status).toBe(200);
    const { access_token: token, token_type: type, expires_in: expiresIn } = await minted.json();
    expect([type, expiresIn]).toEqual(['Bearer', 3600]);
    expect((await fetch(`${api}/v1/jobs`)).status).toBe(401);
    expect((await fetch(`${api}/v1/jobs`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    const issued = await jwt.issueToken({ sub: 'test' }, { expiresIn: 60 });
    expect((await fetch(`${api}/v1/jobs`, { headers: { authorization: `Bearer ${issued}` } })).status).toBe(200);
    expect((await fetch(`${api}/v1/health`)).status).toBe(200);
    expect((await fetch(`${api}/v1/openapi.json`)).status).toBe(200);

    const bad = await fetch(`${api}/local/token`, { method: 'POST', body: '[1]' });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.code).toBe('VALIDATION_FAILED');
  });
});
