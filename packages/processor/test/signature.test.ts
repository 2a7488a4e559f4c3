import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod';
import { sign, TargetInvoker } from '../../../shared/aws/processor-invoker.js';
import type { Processor } from '../../../shared/core/processors.js';
import {
  defineRowProcessor,
  defineTaskProcessor,
  fetchHandler,
  nodeListener,
  ProcessorError,
  type TaskRequest,
  verifyFetchRequest,
  verifyNodeRequest,
  verifySignature,
} from '../src/index.js';

const SECRET = 'kit-signing-secret';
const NOW = 1_800_000_000_000;
const now = () => NOW;
const seconds = (ms: number) => String(Math.floor(ms / 1000));

describe('verifySignature', () => {
  const body = '{"job":{"id":"j"},"task":{"input":{"amount":10}}}';
  const signed = (timestamp: string, text = body, secret = SECRET) => ({
    timestamp,
    signature: sign(secret, timestamp, text),
    body,
  });

  it('accepts what the worker signs, as text or as the received bytes', () => {
    expect(verifySignature(signed(seconds(NOW)), { secret: SECRET, now })).toEqual({ ok: true });
    const bytes = { ...signed(seconds(NOW)), body: new TextEncoder().encode(body) };
    expect(verifySignature(bytes, { secret: SECRET, now })).toEqual({ ok: true });
  });

  it('refuses a tampered body, a wrong secret and a malformed signature', () => {
    const tampered = { ...signed(seconds(NOW)), body: body.replace('10', '1000') };
    expect(verifySignature(tampered, { secret: SECRET, now })).toEqual({ ok: false, reason: 'bad signature' });
    expect(verifySignature(signed(seconds(NOW), body, 'other'), { secret: SECRET, now })).toEqual({
      ok: false,
      reason: 'bad signature',
    });
    const short = { ...signed(seconds(NOW)), signature: 'sha256=abc' };
    expect(verifySignature(short, { secret: SECRET, now })).toEqual({ ok: false, reason: 'bad signature' });
  });

  it('refuses a timestamp outside the tolerance, either way, and one that is missing', () => {
    const old = signed(seconds(NOW - 301_000));
    expect(verifySignature(old, { secret: SECRET, now })).toEqual({ ok: false, reason: 'stale timestamp' });
    expect(verifySignature(signed(seconds(NOW + 301_000)), { secret: SECRET, now })).toMatchObject({ ok: false });
    expect(verifySignature(signed(seconds(NOW - 299_000)), { secret: SECRET, now }).ok).toBe(true);
    expect(verifySignature(old, { secret: SECRET, now, toleranceSeconds: 600 }).ok).toBe(true);
    // Milliseconds are not seconds: 13 digits is not a timestamp of the contract.
    expect(verifySignature(signed(String(NOW)), { secret: SECRET, now })).toEqual({
      ok: false,
      reason: 'no timestamp',
    });
    expect(verifySignature({ ...signed(seconds(NOW)), signature: undefined }, { secret: SECRET, now })).toEqual({
      ok: false,
      reason: 'no signature',
    });
  });

  it('accepts any of several secrets while one is rotated', () => {
    const request = signed(seconds(NOW), body, 'new-secret');
    expect(verifySignature(request, { secret: [SECRET, 'new-secret'], now })).toEqual({ ok: true });
    expect(verifySignature(request, { secret: [SECRET], now }).ok).toBe(false);
  });
});

const request: TaskRequest = {
  job: { id: 'j1', type: 't' },
  task: { id: 'j1.0', processor: 'hook', attempt: 1, input: { amount: 10 } },
};

const hook = defineTaskProcessor({
  input: z.object({ amount: z.number() }),
  run: ({ amount }) => {
    if (amount < 0) throw new ProcessorError('NEGATIVE', 'amount is negative');
    if (amount === 0) throw new ProcessorError('BUSY', 'try again', { retryable: true });
    if (amount > 1000) throw new Error('overflow');
    return { booked: amount };
  },
});

describe('nodeListener: a kit processor as an HTTP target, called by the worker', () => {
  let server: Server;
  let url: string;
  let received: Awaited<ReturnType<typeof verifyNodeRequest>>[] = [];

  beforeAll(async () => {
    const listener = nodeListener(hook, { secret: SECRET });
    server = createServer((req, res) => {
      if (req.url === '/verify') {
        verifyNodeRequest(req, { secret: SECRET, maxBytes: 1024 }).then((verified) => {
          received.push(verified);
          res.end('{}');
        });
        return;
      }
      listener(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** The worker's own invoker, signing as in production. */
  const invoke = (input: unknown, secret = SECRET, path = '/') => {
    const processor: Processor = {
      name: 'hook',
      kind: 'tasks',
      target: { type: 'http', url: `${url}${path}`, secretEnv: 'HOOK_SECRET', allowPrivateNetwork: true },
      timeoutSeconds: 5,
      maxAttempts: 1,
      backoff: { type: 'fixed', delaySeconds: 1 },
    };
    return new TargetInvoker({} as never, { HOOK_SECRET: secret }).invoke(
      processor,
      { ...request, task: { ...request.task, input } },
      AbortSignal.timeout(5000),
    );
  };

  it('answers with the result', async () => {
    expect(await invoke({ amount: 10 })).toEqual({ status: 'ok', result: { booked: 10 } });
  });

  it('turns errors into the statuses the worker reads: final, retried, crash', async () => {
    expect(await invoke({ amount: -1 })).toEqual({
      status: 'error',
      error: { kind: 'error', code: 'NEGATIVE', message: 'amount is negative' },
      retryable: false,
    });
    expect(await invoke({ amount: 'ten' })).toMatchObject({
      status: 'error',
      error: { code: 'INVALID_INPUT' },
      retryable: false,
    });
    expect(await invoke({ amount: 0 })).toEqual({
      status: 'error',
      error: { kind: 'crash', message: 'HTTP 503' },
      retryable: true,
    });
    expect(await invoke({ amount: 5000 })).toEqual({
      status: 'error',
      error: { kind: 'crash', message: 'HTTP 500' },
      retryable: true,
    });
  });

  it('refuses a request signed with another secret, finally', async () => {
    expect(await invoke({ amount: 10 }, 'not-the-secret')).toEqual({
      status: 'error',
      error: { kind: 'error', code: 'BAD_SIGNATURE', message: 'bad signature' },
      retryable: false,
    });
  });

  it('verifyNodeRequest hands over the verified body, and refuses one over maxBytes', async () => {
    received = [];
    await invoke({ amount: 10 }, SECRET, '/verify');
    await invoke({ amount: 'x'.repeat(2000) }, SECRET, '/verify');
    expect(received[0]).toEqual({ ok: true, body: JSON.stringify({ ...request }) });
    expect(received[1]).toEqual({ ok: false, status: 413, reason: 'body over 1024 bytes' });
  });
});

describe('fetchHandler and verifyFetchRequest', () => {
  const post = (body: string, headers: Record<string, string>) =>
    new Request('http://processor.test/', { method: 'POST', body, headers });
  const signedPost = (body: string, timestamp = seconds(Date.now()), secret = SECRET) =>
    post(body, { 'x-jobs-timestamp': timestamp, 'x-jobs-signature': sign(secret, timestamp, body) });

  it('serves a task processor: the result as the body', async () => {
    const response = await fetchHandler(hook, { secret: SECRET })(signedPost(JSON.stringify(request)));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ booked: 10 });
  });

  it('serves a row processor: the chunk reply as the body', async () => {
    const rows = defineRowProcessor({ row: z.string(), run: (row) => row.toUpperCase() });
    const chunk = {
      job: { id: 'j', type: 't' },
      chunk: { index: 0, attempt: 1, context: {}, rows: [{ line: 1, input: 'a' }] },
    };
    const response = await fetchHandler(rows, { secret: SECRET })(signedPost(JSON.stringify(chunk)));
    expect(await response.json()).toEqual({ rows: [{ line: 1, status: 'ok', result: 'A' }] });
  });

  it('refuses a stale or unsigned request with 401, a body that is not JSON with 400', async () => {
    const handler = fetchHandler(hook, { secret: SECRET });
    const stale = await handler(signedPost(JSON.stringify(request), seconds(Date.now() - 3_600_000)));
    expect(stale.status).toBe(401);
    expect(await stale.json()).toEqual({ error: { code: 'BAD_SIGNATURE', message: 'stale timestamp' } });
    expect((await handler(post('{}', {}))).status).toBe(401);
    expect((await handler(signedPost('not json'))).status).toBe(400);
  });

  it('verifyFetchRequest refuses a body over maxBytes: by its declared length unread, or as it reads', async () => {
    const declared = signedPost('x'.repeat(100));
    declared.headers.set('content-length', '100');
    const tooLarge = { ok: false, status: 413, reason: 'body over 10 bytes' };
    expect(await verifyFetchRequest(declared, { secret: SECRET, maxBytes: 10 })).toEqual(tooLarge);
    expect(declared.bodyUsed).toBe(false);
    expect(await verifyFetchRequest(signedPost('x'.repeat(100)), { secret: SECRET, maxBytes: 10 })).toEqual(tooLarge);
    expect(await verifyFetchRequest(signedPost('{}'), { secret: SECRET, maxBytes: 10 })).toEqual({
      ok: true,
      body: '{}',
    });
  });
});
