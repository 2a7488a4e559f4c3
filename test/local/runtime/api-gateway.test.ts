import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiGateway, Router } from '../../../local/runtime/api-gateway.js';
import { FunctionHost } from '../../../local/runtime/functions.js';
import { ValidationError } from '../../../shared/core/errors.js';

let server: Server;
let base: string;
const seen: APIGatewayProxyEventV2[] = [];
const logged: Record<string, unknown>[] = [];

beforeAll(async () => {
  const host = new FunctionHost('us-east-1');
  host.register({
    name: 'echo',
    timeoutSeconds: 1,
    memoryMb: 128,
    handler: async (event: APIGatewayProxyEventV2) => {
      seen.push(event);
      if (event.rawPath === '/boom') throw new Error('handler exploded');
      if (event.rawPath === '/slow') await new Promise((r) => setTimeout(r, 1500));
      if (event.rawPath === '/bare') return { bare: true };
      if (event.rawPath === '/binary') {
        return {
          statusCode: 201,
          headers: { 'content-type': 'image/png' },
          body: Buffer.from([1, 2, 3]).toString('base64'),
          isBase64Encoded: true,
          cookies: ['a=1'],
        };
      }
      return { statusCode: 200, body: 'ok' };
    },
  });
  server = createApiGateway({
    host,
    functionName: 'echo',
    routes: ['GET /items/{id}', 'GET /items/special', 'POST /files/{key+}', '$default'],
    log: (entry) => logged.push(entry),
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('local API Gateway (HTTP API, payload 2.0)', () => {
  it('hands the function path parameters, query, headers and body as AWS does', async () => {
    const response = await fetch(`${base}/items/a%20b?x=1&y=two&x=3`, {
      headers: { 'X-Trace': 'abc', cookie: 'c1=v1; c2=v2' },
    });
    expect(response.status).toBe(200);
    const event = seen.at(-1) as APIGatewayProxyEventV2;
    expect(event.version).toBe('2.0');
    expect(event.routeKey).toBe('GET /items/{id}');
    expect(event.requestContext.routeKey).toBe('GET /items/{id}');
    expect(event.rawPath).toBe('/items/a%20b');
    expect(event.pathParameters).toEqual({ id: 'a b' });
    expect(event.rawQueryString).toBe('x=1&y=two&x=3');
    // Repeated query parameters are joined with commas.
    expect(event.queryStringParameters).toEqual({ x: '1,3', y: 'two' });
    expect(event.headers['x-trace']).toBe('abc');
    expect(event.cookies).toEqual(['c1=v1', 'c2=v2']);
    expect(event.requestContext.http.method).toBe('GET');
    expect(event.requestContext.http.sourceIp).toMatch(/127\.0\.0\.1/);
    expect(event.body).toBeUndefined();
    expect(event.isBase64Encoded).toBe(false);
  });

  it('prefers a literal route over a parameter and supports greedy parameters', async () => {
    await fetch(`${base}/items/special`);
    expect(seen.at(-1)?.routeKey).toBe('GET /items/special');
    await fetch(`${base}/files/a/b/c.txt`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"k":1}',
    });
    const event = seen.at(-1) as APIGatewayProxyEventV2;
    expect(event.pathParameters).toEqual({ key: 'a/b/c.txt' });
    expect(event.body).toBe('{"k":1}');
    expect(event.isBase64Encoded).toBe(false);
  });

  it('base64-encodes binary bodies and decodes binary replies', async () => {
    const response = await fetch(`${base}/binary`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array([0xff, 0x00, 0x10]),
    });
    const event = seen.at(-1) as APIGatewayProxyEventV2;
    expect(event.routeKey).toBe('$default');
    expect(event.isBase64Encoded).toBe(true);
    expect(Buffer.from(event.body as string, 'base64')).toEqual(Buffer.from([0xff, 0x00, 0x10]));
    expect(response.status).toBe(201);
    expect(response.headers.get('set-cookie')).toBe('a=1');
    expect(Buffer.from(await response.arrayBuffer())).toEqual(Buffer.from([1, 2, 3]));
  });

  it('turns a bare return value into a 200 JSON answer', async () => {
    const response = await fetch(`${base}/bare`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/json/);
    expect(await response.json()).toEqual({ bare: true });
  });

  it('answers 500 in the contract shape when the function throws, logs the cause and stays up', async () => {
    const response = await fetch(`${base}/boom`);
    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({ error: { code: 'INTERNAL', message: 'Internal error' } });
    expect(logged.at(-1)).toMatchObject({ level: 'ERROR', errorMessage: 'handler exploded' });
    expect((await fetch(`${base}/items/1`)).status).toBe(200);
  });

  it('answers 500 when the function times out', async () => {
    const response = await fetch(`${base}/slow`);
    expect(response.status).toBe(500);
    expect(logged.at(-1)).toMatchObject({ errorType: 'Sandbox.Timedout' });
  });

  it('refuses a malformed percent-escape in a path parameter with 400 before invoking anything', async () => {
    const before = seen.length;
    for (const path of ['/items/%', '/items/%E0%A4%A', '/files/a/%zz']) {
      const response = await fetch(`${base}${path}`, { method: path.startsWith('/files') ? 'POST' : 'GET' });
      expect(response.status, path).toBe(400);
      expect((await response.json()).error.code, path).toBe('VALIDATION_FAILED');
    }
    expect(seen.length).toBe(before);
  });

  it('refuses bodies over API Gateway’s 10 MB with 413 before invoking anything', async () => {
    const before = seen.length;
    const response = await fetch(`${base}/files/big`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: 'x'.repeat(10 * 1024 * 1024 + 1),
    });
    expect(response.status).toBe(413);
    expect((await response.json()).error.code).toBe('PAYLOAD_TOO_LARGE');
    expect(seen.length).toBe(before);
  });
});

describe('Router', () => {
  it('answers no match without a $default route', () => {
    expect(new Router(['GET /a']).match('GET', '/b')).toBeUndefined();
    expect(new Router(['GET /a']).match('POST', '/a')).toBeUndefined();
  });

  it('decodes path parameters, and throws a ValidationError on a broken escape', () => {
    const router = new Router(['GET /a/{id}']);
    expect(router.match('GET', '/a/x%2Fy')?.pathParameters).toEqual({ id: 'x/y' });
    expect(() => router.match('GET', '/a/%')).toThrow(ValidationError);
  });
});
