import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { startTestStack } from '../../support/stack.js';

let stack: LocalStack;
let api: string;

beforeAll(async () => {
  stack = await startTestStack({ startPollers: false, demo: false });
  api = stack.info.api;
});
afterAll(() => stack?.stop());

describe('API routes: wrong methods, HEAD, broken escapes', () => {
  it('answers a wrong method on a known path with 405, its Allow header and the contract’s shape', async () => {
    const response = await fetch(`${api}/v1/jobs`, { method: 'DELETE' });
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('GET, POST');
    expect(await response.json()).toEqual({
      error: { code: 'METHOD_NOT_ALLOWED', message: 'DELETE is not allowed on /v1/jobs (allowed: GET, POST)' },
    });

    const abort = await fetch(`${api}/v1/jobs/j-1/abort`, { method: 'GET' });
    expect(abort.status).toBe(405);
    expect(abort.headers.get('allow')).toBe('POST');

    const rows = await fetch(`${api}/v1/jobs/j-1/rows`, { method: 'PUT', body: '{}' });
    expect(rows.status).toBe(405);
    expect(rows.headers.get('allow')).toBe('GET, POST');
  });

  it('still answers 404 on a path no route declares', async () => {
    const response = await fetch(`${api}/v1/nothing`, { method: 'DELETE' });
    expect(response.status).toBe(404);
    expect((await response.json()).error.code).toBe('NOT_FOUND');
  });

  it('answers HEAD /v1/health with 200 and no body', async () => {
    const response = await fetch(`${api}/v1/health`, { method: 'HEAD' });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('');
  });

  it('refuses malformed percent-escapes in the path with 400, not 500', async () => {
    for (const path of ['/v1/jobs/%', '/v1/jobs/%E0%A4%A', '/v1/jobs/%zz/events']) {
      const response = await fetch(`${api}${path}`);
      expect(response.status, path).toBe(400);
      expect((await response.json()).error.code, path).toBe('VALIDATION_FAILED');
    }
  });
});
