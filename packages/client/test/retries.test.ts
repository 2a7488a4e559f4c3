import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { startTestStack } from '../../../test/support/stack.js';
import { type AnyJobView, JobsApiError, JobsClient, NotFoundError } from '../src/index.js';

/**
 * A proxy in front of the local API that misbehaves as told, the way a load balancer or a flaky
 * network does: it answers 503 after passing the request on (the job is made, its reply is lost),
 * throttles, or drops the connection.
 */
type Fault = 'lose-reply' | 'throttle' | 'drop' | 'always-503';
let stack: LocalStack;
let proxy: Server;
let faults: Fault[] = [];
let seen: { method: string; url: string; key: string | undefined }[] = [];

async function forward(request: IncomingMessage, body: Buffer): Promise<Response> {
  const headers = Object.fromEntries(
    Object.entries(request.headers).filter(([name]) => !['host', 'connection', 'content-length'].includes(name)),
  ) as Record<string, string>;
  return fetch(`${stack.info.api}${request.url}`, {
    method: request.method ?? 'GET',
    headers,
    ...(body.length ? { body: new Uint8Array(body) } : {}),
  });
}

async function handle(request: IncomingMessage, response: ServerResponse) {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  seen.push({
    method: request.method ?? '',
    url: request.url ?? '',
    key: request.headers['idempotency-key'] as string,
  });
  const fault = faults.shift();
  if (fault === 'drop') return request.socket.destroy();
  if (fault === 'throttle') {
    response.writeHead(429, { 'content-type': 'application/json', 'retry-after': '0' });
    return response.end(JSON.stringify({ message: 'Too Many Requests' }));
  }
  if (fault === 'always-503') faults.unshift('always-503');
  const reply = fault === 'always-503' ? undefined : await forward(request, body);
  if (fault === 'lose-reply' || fault === 'always-503') {
    await reply?.arrayBuffer();
    response.writeHead(503, { 'content-type': 'application/json' });
    return response.end(JSON.stringify({ message: 'Service Unavailable' }));
  }
  response.writeHead(reply!.status, { 'content-type': reply!.headers.get('content-type') ?? 'application/json' });
  response.end(Buffer.from(await reply!.arrayBuffer()));
}

beforeAll(async () => {
  stack = await startTestStack();
  proxy = createServer((request, response) => void handle(request, response));
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
});
afterAll(async () => {
  await new Promise((resolve) => proxy?.close(resolve));
  await stack?.stop();
});
beforeEach(() => {
  faults = [];
  seen = [];
});

const client = (retries?: number) =>
  new JobsClient({
    endpoint: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    retries: { attempts: retries ?? 3, baseDelayMs: 10 },
  });

const jobsOfType = async (type: string) => {
  const direct = new JobsClient({ endpoint: stack.info.api });
  const jobs: AnyJobView[] = [];
  for await (const job of direct.find({ type })) jobs.push(job as AnyJobView);
  return jobs;
};

describe('retries', () => {
  it('makes one job when a submit reply is lost (503) and the client tries again with the same key', async () => {
    faults = ['lose-reply'];
    const type = `retried-${Date.now()}`;
    const job = await client().submit({ type, tasks: [{ processor: 'demo.echo' }] });
    expect(seen).toHaveLength(2);
    expect(seen[0]?.key).toBeDefined();
    expect(seen[1]?.key).toBe(seen[0]?.key);
    const jobs = await jobsOfType(type);
    expect(jobs.map((j) => j.id)).toEqual([job.id]);
  });

  it('tries again after a throttle and after a dropped connection', async () => {
    faults = ['throttle', 'drop'];
    const job = await client().submit({ type: 'bumpy', tasks: [{ processor: 'demo.echo' }] });
    expect(seen).toHaveLength(3);
    expect((await client().get(job.id)).id).toBe(job.id);
  });

  it('answers a release whose reply was lost with the released batch, not a conflict', async () => {
    const held = await client().submitBatch({ type: 'held', batch: { processor: 'demo.rows', rows: [1], hold: true } });
    faults = ['lose-reply'];
    const released = await client().release(held.id);
    expect(released.status).not.toBe('HELD');
  });

  it('stops after its retries with the last error, and never retries a refusal', async () => {
    faults = ['always-503'];
    const error = await client(2)
      .get('anything')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JobsApiError);
    expect(error).toMatchObject({ status: 503, code: 'UNEXPECTED_RESPONSE' });
    expect(seen).toHaveLength(3);
    faults = [];
    seen = [];
    await expect(client().get('missing')).rejects.toBeInstanceOf(NotFoundError);
    expect(seen).toHaveLength(1);
  });
});
