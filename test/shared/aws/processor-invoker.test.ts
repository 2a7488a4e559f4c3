import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { classifyReply, type Resolver, TargetInvoker } from '../../../shared/aws/processor-invoker.js';
import { isSpecialAddress, SPECIAL_BLOCKS } from '../../../shared/aws/special-addresses.js';
import type { TaskRequest } from '../../../shared/core/ports.js';
import type { Processor } from '../../../shared/core/processors.js';
import { apiClient } from '../../support/api.js';
import { startTestStack } from '../../support/stack.js';

const SECRET = 'test-signing-secret';
let server: Server;
let base: string;
const received: { headers: IncomingMessage['headers']; body: string }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      const reply = (status: number, text: string) =>
        res.writeHead(status, { 'content-type': 'application/json' }).end(text);
      switch (req.url) {
        case '/ok':
          return reply(200, JSON.stringify({ echoed: JSON.parse(body).task.input }));
        case '/empty':
          return reply(204, '');
        case '/not-json':
          return reply(200, '<html>');
        case '/refuse':
          return reply(422, JSON.stringify({ error: { code: 'BAD_ACCOUNT', message: 'account closed' } }));
        case '/busy':
          return reply(429, '{}');
        case '/broken':
          return reply(503, 'down');
        case '/deep':
          return reply(200, `${'['.repeat(100_000)}${']'.repeat(100_000)}`);
        case '/slow':
          return void setTimeout(() => reply(200, '{}'), 3000);
        default:
          return reply(404, '{}');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const request: TaskRequest = {
  job: { id: 'j1', type: 't' },
  task: { id: 'j1.0', processor: 'h', attempt: 1, input: { n: 1 } },
};

function httpProcessor(path: string, allowPrivateNetwork = true): Processor {
  return {
    name: 'h',
    kind: 'tasks',
    target: { type: 'http', url: `${base}${path}`, secretEnv: 'HOOK_SECRET', allowPrivateNetwork },
    timeoutSeconds: 1,
    maxAttempts: 3,
    backoff: { type: 'fixed', delaySeconds: 1 },
  };
}

const invoker = () => new TargetInvoker({} as never, { HOOK_SECRET: SECRET });
const call = (path: string, allow = true, timeoutMs = 5000) =>
  invoker().invoke(httpProcessor(path, allow), request, AbortSignal.timeout(timeoutMs));

describe('HTTP processors', () => {
  it('POSTs the task signed with HMAC-SHA256 over timestamp.body', async () => {
    expect(await call('/ok')).toEqual({ status: 'ok', result: { echoed: { n: 1 } } });
    const { headers, body } = received.at(-1)!;
    expect(JSON.parse(body)).toEqual(request);
    const timestamp = headers['x-jobs-timestamp'] as string;
    expect(Math.abs(Number(timestamp) - Date.now() / 1000)).toBeLessThan(5);
    const expected = `sha256=${createHmac('sha256', SECRET).update(`${timestamp}.${body}`).digest('hex')}`;
    expect(headers['x-jobs-signature']).toBe(expected);
  });

  it('classifies replies as the contract says', async () => {
    expect(await call('/empty')).toEqual({ status: 'ok', result: null });
    expect(await call('/not-json')).toMatchObject({ status: 'error', error: { kind: 'crash' }, retryable: true });
    expect(await call('/refuse')).toEqual({
      status: 'error',
      error: { kind: 'error', code: 'BAD_ACCOUNT', message: 'account closed' },
      retryable: false,
    });
    expect(await call('/busy')).toMatchObject({ error: { kind: 'crash', message: 'HTTP 429' }, retryable: true });
    expect(await call('/broken')).toMatchObject({ error: { kind: 'crash', message: 'HTTP 503' }, retryable: true });
    expect(await call('/slow', true, 300)).toMatchObject({ error: { kind: 'timeout' }, retryable: true });
    expect(await call('/deep')).toEqual({
      status: 'error',
      error: { kind: 'crash', message: 'processor reply must nest at most 64 levels deep' },
      retryable: true,
    });
  });
});

describe('HTTP processors without allowPrivateNetwork', () => {
  const port = () => (server.address() as AddressInfo).port;
  const at = (host: string, allowPrivateNetwork: boolean, resolve?: Resolver) => {
    const processor: Processor = {
      ...httpProcessor('/ok', allowPrivateNetwork),
      target: { type: 'http', url: `http://${host}:${port()}/ok`, secretEnv: 'HOOK_SECRET', allowPrivateNetwork },
    };
    return new TargetInvoker({} as never, { HOOK_SECRET: SECRET }, resolve).invoke(
      processor,
      request,
      AbortSignal.timeout(5000),
    );
  };

  // Every spelling of the loopback server the URL parser accepts: it must never be reached.
  const loopback = [
    '127.0.0.1',
    '127.1',
    '2130706433',
    '0x7f.1',
    '0177.0.0.1',
    '0x7f000001',
    'localhost',
    '[::ffff:127.0.0.1]',
    '[::ffff:7f00:1]',
    '[0:0:0:0:0:ffff:127.0.0.1]',
    '[::FFFF:7F00:0001]',
  ];

  it.each(loopback)('refuses %s and never reaches the server', async (host) => {
    const before = received.length;
    expect(await at(host, false)).toMatchObject({
      status: 'error',
      error: { kind: 'error', code: 'PRIVATE_ADDRESS' },
      retryable: false,
    });
    expect(received.length).toBe(before);
  });

  it.each(loopback.filter((host) => host !== 'localhost'))(
    'reaches %s with allowPrivateNetwork: true',
    async (host) => {
      expect(await at(host, true)).toEqual({ status: 'ok', result: { echoed: { n: 1 } } });
    },
  );

  it('refuses other special IPv6 forms of loopback and metadata, without connecting', async () => {
    const before = received.length;
    for (const host of ['[::1]', '[::]', '[::127.0.0.1]', '[64:ff9b::7f00:1]', '[2002:7f00:1::1]', '[fe80::1]']) {
      expect(await at(host, false), host).toMatchObject({ error: { code: 'PRIVATE_ADDRESS' } });
    }
    expect(received.length).toBe(before);
  });

  it('refuses a host name when any of its addresses is special, and connects only to checked ones', async () => {
    const before = received.length;
    const mixed: Resolver = async () => [
      { address: '192.0.2.1', family: 4 },
      { address: '127.0.0.1', family: 4 },
    ];
    expect(await at('mixed.example', false, mixed)).toMatchObject({ error: { code: 'PRIVATE_ADDRESS' } });
    const v6: Resolver = async () => [{ address: '::ffff:a9fe:a9fe', family: 6 }];
    expect(await at('metadata.example', false, v6)).toMatchObject({ error: { code: 'PRIVATE_ADDRESS' } });
    expect(received.length).toBe(before);
    // The connection goes to the address the resolver gave, whatever the name (no second lookup).
    const pinned: Resolver = async () => [{ address: '127.0.0.1', family: 4 }];
    expect(await at('pinned.example', true, pinned)).toEqual({ status: 'ok', result: { echoed: { n: 1 } } });
    expect(received.at(-1)?.headers.host).toBe(`pinned.example:${port()}`);
  });
});

describe('special-purpose addresses', () => {
  it('covers every block of the table and its forms inside the IPv6 blocks that carry IPv4', () => {
    // A carrier's own first address carries 0.0.0.0, special too.
    for (const block of SPECIAL_BLOCKS) expect(isSpecialAddress(block.cidr.split('/')[0] ?? ''), block.cidr).toBe(true);
    const special = [
      // IPv4 ends of ranges the old check missed
      '100.127.255.255',
      '198.18.0.0',
      '198.19.255.255',
      '224.0.0.1',
      '239.255.255.255',
      '240.0.0.1',
      '255.255.255.255',
      '192.0.0.171',
      '192.88.99.1',
      // the metadata address in every IPv6 form
      '::ffff:169.254.169.254',
      '::ffff:a9fe:a9fe',
      '::a9fe:a9fe',
      '64:ff9b::a9fe:a9fe',
      '64:ff9b::169.254.169.254',
      '2002:a9fe:a9fe::1',
      '64:ff9b:1::808:808',
      // IPv4-mapped and -compatible addresses are refused whatever they carry
      '::ffff:8.8.8.8',
      '::8.8.8.8',
      // Teredo, ORCHID, benchmarking, documentation, discard
      '2001::1',
      '2001:0:4136:e378:8000:63bf:3fff:fdd2',
      '2001:2::1',
      '2001:10::1',
      '2001:db8::1',
      '3fff:fff::1',
      '100::1',
      // link-local beyond fe8x, site-local, ULA, multicast, reserved
      'fe80::1',
      'fe9f::1',
      'febf:ffff::1',
      'fec0::1',
      'feff::1',
      'fc00::1',
      'fdff::1',
      'ff02::1',
      '4000::1',
      '1000::1',
      // not an address at all
      'example.com',
      '',
    ];
    for (const address of special) expect(isSpecialAddress(address), address).toBe(true);
    const ordinary = [
      '8.8.8.8',
      '1.1.1.1',
      '100.63.255.255',
      '100.128.0.0',
      '172.32.0.1',
      '198.20.0.0',
      '223.255.255.255',
      '2606:4700::1111',
      '2600:1f18::1',
      '2001:200::1',
      // NAT64 and 6to4 of a public address are ordinary routes
      '64:ff9b::808:808',
      '64:ff9b::8.8.8.8',
      '2002:808:808::1',
    ];
    for (const address of ordinary) expect(isSpecialAddress(address), address).toBe(false);
  });
});

describe('Lambda processor replies', () => {
  it('treats anything off the contract as a crash', () => {
    expect(classifyReply({ status: 'ok', result: 1 })).toEqual({ status: 'ok', result: 1 });
    expect(classifyReply({ status: 'error', error: { code: 'C', message: 'm', retryable: true } })).toEqual({
      status: 'error',
      error: { kind: 'error', code: 'C', message: 'm' },
      retryable: true,
    });
    const deep = (depth: number) => JSON.parse(`${'['.repeat(depth)}${']'.repeat(depth)}`);
    for (const reply of [
      null,
      'hello',
      42,
      {},
      { status: 'done' },
      { status: 'error', error: 'x' },
      { status: 'ok', result: deep(65) },
      { status: 'ok', result: deep(100_000) },
      { status: 'ok', result: 1, log: [{ message: 'm', data: { d: deep(2500) } }] },
    ]) {
      expect(classifyReply(reply)).toMatchObject({ status: 'error', error: { kind: 'crash' }, retryable: true });
    }
  });
});

describe('processors end to end', () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startTestStack({
      handlerEnv: { HOOK_SECRET: SECRET },
      processors: {
        'test.http': {
          target: { type: 'http', url: `${base}/ok`, secretEnv: 'HOOK_SECRET', allowPrivateNetwork: true },
          timeoutSeconds: 5,
          maxAttempts: 1,
        },
        'test.deep': {
          target: { type: 'http', url: `${base}/deep`, secretEnv: 'HOOK_SECRET', allowPrivateNetwork: true },
          timeoutSeconds: 5,
          maxAttempts: 2,
          backoff: { type: 'fixed', delaySeconds: 0 },
        },
        'test.badreply': {
          target: { type: 'lambda', functionName: 'bad-reply' },
          timeoutSeconds: 5,
          maxAttempts: 2,
          backoff: { type: 'fixed', delaySeconds: 0 },
        },
      },
      extraFunctions: [
        { name: 'bad-reply', timeoutSeconds: 5, memoryMb: 128, handler: async () => 'not the contract' },
      ],
    });
  });
  afterAll(() => stack?.stop());

  it('runs a task on an HTTP processor and records a bad Lambda reply as a crash', async () => {
    const api = apiClient(stack);
    const http = await api.run({ type: 'hook', tasks: [{ processor: 'test.http', input: { k: 'v' } }] });
    expect(http.tasks[0]).toMatchObject({ status: 'SUCCEEDED', result: { echoed: { k: 'v' } } });
    // A reply too deep to copy is that attempt's crash: the job goes on to fail, not stay PENDING.
    const deep = await api.run({ type: 'deep', tasks: [{ processor: 'test.deep' }] });
    expect(deep.tasks[0]).toMatchObject({
      status: 'FAILED',
      attempts: 2,
      error: { kind: 'crash', message: 'processor reply must nest at most 64 levels deep' },
    });
    const bad = await api.run({ type: 'bad', tasks: [{ processor: 'test.badreply' }] });
    expect(bad.tasks[0]).toMatchObject({
      status: 'FAILED',
      attempts: 2,
      error: { kind: 'crash', message: 'processor reply does not match the contract' },
    });
  });
});
