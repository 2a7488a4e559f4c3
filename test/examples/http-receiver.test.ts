import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReceiver, TOLERANCE_SECONDS } from '../../examples/http-receiver.js';
import { sign, TargetInvoker } from '../../shared/aws/processor-invoker.js';
import type { TaskRequest } from '../../shared/core/ports.js';
import type { Processor } from '../../shared/core/processors.js';

const SECRET = 'receiver-test-secret';
let server: Server;
let url: string;

beforeAll(async () => {
  server = createReceiver(SECRET);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const request: TaskRequest = {
  job: { id: 'j1', type: 't' },
  task: { id: 'j1.0', processor: 'hook', attempt: 1, input: { amount: 10 } },
};

/** The job manager's own invoker, signing as it does in production. */
function invokeWith(secret: string) {
  const processor: Processor = {
    name: 'hook',
    kind: 'tasks',
    target: { type: 'http', url, secretEnv: 'HOOK_SECRET', allowPrivateNetwork: true },
    timeoutSeconds: 5,
    maxAttempts: 1,
    backoff: { type: 'fixed', delaySeconds: 1 },
  };
  return new TargetInvoker({} as never, { HOOK_SECRET: secret }).invoke(processor, request, AbortSignal.timeout(5000));
}

/** A hand-made request: signed over `signedBody` at `timestamp`, carrying `body`. */
async function post(body: string, timestamp: number, signature: string) {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-jobs-timestamp': String(timestamp),
      'x-jobs-signature': signature,
    },
    body,
  });
  return { status: response.status, body: (await response.json()) as { error?: { message: string } } };
}

const now = () => Math.floor(Date.now() / 1000);

describe('the example HTTP processor', () => {
  it('accepts a task the invoker signed', async () => {
    expect(await invokeWith(SECRET)).toEqual({ status: 'ok', result: { echoed: { amount: 10 } } });
  });

  it('refuses a task signed with another secret, as a final error', async () => {
    expect(await invokeWith('not-the-secret')).toEqual({
      status: 'error',
      error: { kind: 'error', code: 'BAD_SIGNATURE', message: 'bad signature' },
      retryable: false,
    });
  });

  it('refuses an edited body, a stale or future timestamp, and a malformed signature', async () => {
    const body = JSON.stringify(request);
    const t = now();
    expect((await post(body, t, sign(SECRET, String(t), body))).status).toBe(200);
    const edited = body.replace('"amount":10', '"amount":1000');
    expect(await post(edited, t, sign(SECRET, String(t), body))).toEqual({
      status: 401,
      body: { error: { code: 'BAD_SIGNATURE', message: 'bad signature' } },
    });
    for (const stale of [t - TOLERANCE_SECONDS - 5, t + TOLERANCE_SECONDS + 5]) {
      expect(await post(body, stale, sign(SECRET, String(stale), body))).toEqual({
        status: 401,
        body: { error: { code: 'BAD_SIGNATURE', message: 'stale timestamp' } },
      });
    }
    // Milliseconds are not seconds: a timestamp in the wrong unit is far outside the window.
    expect((await post(body, t * 1000, sign(SECRET, String(t * 1000), body))).status).toBe(401);
    expect((await post(body, t, 'sha256=abc')).body.error?.message).toBe('bad signature');
  });
});
