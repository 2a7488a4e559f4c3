import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { classifyReply, isPrivateAddress, TargetInvoker } from '../../../shared/aws/processor-invoker.js';
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
  });

  it('refuses loopback and private addresses unless the processor is allowed them', async () => {
    const before = received.length;
    expect(await call('/ok', false)).toMatchObject({
      status: 'error',
      error: { code: 'PRIVATE_ADDRESS' },
      retryable: false,
    });
    expect(received.length).toBe(before);
    for (const address of [
      '127.0.0.1',
      '10.1.2.3',
      '172.20.0.1',
      '192.168.1.1',
      '169.254.169.254',
      '::1',
      'fd00::1',
      '::ffff:127.0.0.1',
    ]) {
      expect(isPrivateAddress(address), address).toBe(true);
    }
    for (const address of ['8.8.8.8', '172.32.0.1', '2606:4700::1111'])
      expect(isPrivateAddress(address), address).toBe(false);
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
    for (const reply of [null, 'hello', 42, {}, { status: 'done' }, { status: 'error', error: 'x' }]) {
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
    const bad = await api.run({ type: 'bad', tasks: [{ processor: 'test.badreply' }] });
    expect(bad.tasks[0]).toMatchObject({
      status: 'FAILED',
      attempts: 2,
      error: { kind: 'crash', message: 'processor reply does not match the contract' },
    });
  });
});
