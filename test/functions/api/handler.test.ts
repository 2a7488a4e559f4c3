import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPENAPI_FILE } from '../../../functions/api/openapi.js';
import type { LocalStack } from '../../../local/stack.js';
import { startTestStack } from '../../support/stack.js';

let stack: LocalStack;
let api: string;

beforeAll(async () => {
  stack = await startTestStack({ startPollers: false });
  api = stack.info.api;
});
afterAll(() => stack?.stop());

const post = (path: string, body: BodyInit, type = 'application/json') =>
  fetch(`${api}${path}`, { method: 'POST', headers: { 'content-type': type }, body });

describe('API function over the local API Gateway', () => {
  it('answers health', async () => {
    const response = await fetch(`${api}/v1/health`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('serves the OpenAPI document as docs/openapi.json holds it', async () => {
    const response = await fetch(`${api}/v1/openapi.json`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await response.json()).toEqual(JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')));
  });

  it('answers unknown routes with the contract’s 404', async () => {
    const response = await fetch(`${api}/v2/anything?x=1`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({
      error: { code: 'NOT_FOUND', message: 'No route for GET /v2/anything' },
    });
  });

  it('refuses a body that is not JSON with 415', async () => {
    const response = await post('/v1/jobs', 'type=x', 'text/plain');
    expect(response.status).toBe(415);
    expect((await response.json()).error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('refuses a body over the configured limit with 413', async () => {
    const response = await post('/v1/jobs', JSON.stringify({ pad: 'x'.repeat(1024 * 1024) }));
    expect(response.status).toBe(413);
    expect((await response.json()).error.code).toBe('PAYLOAD_TOO_LARGE');
  });

  it('refuses malformed JSON and invalid UTF-8 with 400', async () => {
    const broken = await post('/v1/jobs', '{"type": ');
    expect(broken.status).toBe(400);
    expect((await broken.json()).error.code).toBe('VALIDATION_FAILED');

    const latin1 = await post('/v1/jobs', new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xe9, 0x22, 0x7d]));
    expect(latin1.status).toBe(400);
    expect((await latin1.json()).error.message).toMatch(/UTF-8/);
  });

  it('accepts application/json with a charset', async () => {
    // Past the media-type check to the submission's own validation.
    const response = await post('/v1/jobs', '{}', 'application/json; charset=utf-8');
    expect(response.status).toBe(400);
    expect((await response.json()).error.code).toBe('VALIDATION_FAILED');
  });

  it('serves /local/info with endpoints, queues and buckets', async () => {
    const info = await (await fetch(`${api}/local/info`)).json();
    expect(info.mode).toBe(process.env.TEST_PROFILE === 'aws-local' ? 'aws-local' : 'embedded');
    expect(info.endpoints.dynamodb).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(info.queues.work.url).toContain('jobs-local-work');
    expect(info.buckets.data).toBe('jobs-local-data');
  });
});
