import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../../local/stack.js';
import { createClients } from '../../../shared/aws/clients.js';
import { Cursors } from '../../../shared/core/search.js';
import { apiClient } from '../../support/api.js';
import { startTestStack } from '../../support/stack.js';

/** A stack that keeps its state, as `npm start` does: its cursor key lives in the state folder. */
const stateDir = mkdtempSync(join(tmpdir(), 'jobs-cursors-test-'));
let stack: LocalStack;
let api: ReturnType<typeof apiClient>;
let held: string;

beforeAll(async () => {
  stack = await startTestStack({ stateDir });
  api = apiClient(stack);
  const submitted = await api.submit({
    type: 'cursors',
    batch: { processor: 'demo.rows', rows: [1, 2, 3], hold: true },
  });
  held = submitted.body.id;
  await api.submit({ type: 'cursors', tasks: [{ processor: 'demo.echo' }] });
  await api.submit({ type: 'cursors', tasks: [{ processor: 'demo.echo' }] });
});
afterAll(async () => {
  await stack?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

type Page = { items: { line?: number }[]; nextCursor: string | null; error?: { code: string; details: unknown[] } };
const get = (path: string, cursor: string) =>
  api.call<Page>('GET', `${path}${path.includes('?') ? '&' : '?'}cursor=${encodeURIComponent(cursor)}`);
const stateKey = () => readFileSync(join(stateDir, 'cursor-key'), 'utf8');
/** The key every local cursor used to be signed with: derivable by anyone from the table's name. */
const oldKey = () => createHash('sha256').update(`cursor:${stack.info.tables.jobs}`).digest('base64url');
const sealed = (key: string, payload: Record<string, unknown>, fingerprint: string) =>
  new Cursors(async () => key).seal(payload, fingerprint);

/**
 * A Find cursor for the same query as `real`, holding `position` instead, signed with `key`: it keeps
 * the real one's query digest, so only the position can be what is refused.
 */
function reposition(real: string, position: Record<string, unknown>, key: string): string {
  const { q } = JSON.parse(Buffer.from(real.split('.')[0] as string, 'base64url').toString('utf8'));
  const body = Buffer.from(JSON.stringify({ ...position, q })).toString('base64url');
  return `${body}.${createHmac('sha256', key).update(body).digest('base64url').slice(0, 22)}`;
}

async function findCursor(): Promise<string> {
  const page = await api.call<Page>('GET', '/v1/jobs?limit=1');
  expect(page.body.nextCursor).toEqual(expect.any(String));
  return page.body.nextCursor as string;
}

function expectRefused(reply: { status: number; body: Page }) {
  expect(reply.status).toBe(400);
  expect(reply.body.error?.code).toBe('VALIDATION_FAILED');
  expect(reply.body.error?.details).toContainEqual(expect.objectContaining({ path: 'cursor' }));
}

describe('cursors on a local stack', () => {
  it('are signed with a random key kept in the state folder, readable by its owner only', () => {
    expect(stateKey()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(stateKey()).not.toBe(oldKey());
    expect(statSync(join(stateDir, 'cursor-key')).mode & 0o077).toBe(0);
  });

  it('refuse a cursor sealed with the old derivable key, on every paged route', async () => {
    expectRefused(await get(`/v1/jobs/${held}/rows?limit=1`, await sealed(oldKey(), { l: 2 }, `rows|${held}|`)));
    expectRefused(await get(`/v1/jobs/${held}/events`, await sealed(oldKey(), { e: 1 }, `events|${held}`)));
    const o = '2026-01-01T00:00:00.000Z#j0';
    expectRefused(await get('/v1/jobs?limit=1', reposition(await findCursor(), { o }, oldKey())));
  });

  it('refuse a validly signed rows cursor whose line is not one of the job’s rows', async () => {
    for (const l of [-3, 0, 1.5, 4, 1e12, '2', null]) {
      const reply = await get(`/v1/jobs/${held}/rows?limit=1`, await sealed(stateKey(), { l }, `rows|${held}|`));
      expect(reply.body.items, `l = ${l}`).toBeUndefined();
      expectRefused(reply);
    }
  });

  it('refuse validly signed events and Find cursors that do not hold a position', async () => {
    for (const e of [-5, 1.5, '1']) {
      expectRefused(await get(`/v1/jobs/${held}/events`, await sealed(stateKey(), { e }, `events|${held}`)));
    }
    const real = await findCursor();
    // The real cursor's own position, re-signed, is accepted: the forgeries differ only in it.
    const { o } = JSON.parse(Buffer.from(real.split('.')[0] as string, 'base64url').toString('utf8'));
    expect((await get('/v1/jobs?limit=1', reposition(real, { o }, stateKey()))).status).toBe(200);
    for (const bad of ['~', '9', 'j0', 7]) {
      expectRefused(await get('/v1/jobs?limit=1', reposition(real, { o: bad }, stateKey())));
    }
  });

  it('go on across a restart of the stack on the same state', async () => {
    const first = await api.call<Page>('GET', `/v1/jobs/${held}/rows?limit=1`);
    expect(first.body.items.map((row) => row.line)).toEqual([1]);
    const cursor = first.body.nextCursor as string;
    expect((await get(`/v1/jobs/${held}/rows?limit=1`, cursor)).body.items.map((row) => row.line)).toEqual([2]);
    await stack.stop();
    stack = await startTestStack({ stateDir });
    api = apiClient(stack);
    const again = await get(`/v1/jobs/${held}/rows?limit=1`, cursor);
    expect(again.status).toBe(200);
    expect(again.body.items.map((row) => row.line)).toEqual([2]);
  });
});

describe('an input file row nested too deep', () => {
  it('is a BAD_ROW of its own; the batch runs on', async () => {
    const { s3 } = createClients();
    const bucket = stack.info.buckets.data as string;
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'incoming/deep.jsonl', Body: `1\n${deep}\n3\n` }));
    s3.destroy();
    const job = await api.run({
      type: 'deep-file',
      batch: { processor: 'demo.rows', input: { bucket, key: 'incoming/deep.jsonl' }, maxFailedRows: 1 },
    });
    expect(job.status).toBe('SUCCEEDED');
    const rows = await api.call<{ items: { line: number; status: string; error: unknown }[] }>(
      'GET',
      `/v1/jobs/${job.id}/rows`,
    );
    expect(rows.body.items.map((row) => row.status)).toEqual(['SUCCEEDED', 'FAILED', 'SUCCEEDED']);
    expect(rows.body.items[1]?.error).toMatchObject({
      code: 'BAD_ROW',
      message: 'row 2 (file line 2): the row must nest at most 64 levels deep',
    });
  });
});
