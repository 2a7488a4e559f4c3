import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../local/stack.js';
import { createClients } from '../../shared/aws/clients.js';
import { installMeter, Meter, uninstallMeter } from '../../shared/aws/meter.js';
import { apiClient } from '../support/api.js';
import { eventually, startTestStack } from '../support/stack.js';

// biome-ignore lint/suspicious/noExplicitAny: replies are read as a user's script would
type Any = any;

// 5,000 on the embedded cloud; DynamoDB Local and moto are several times slower, so fewer there.
const JOBS = Number(process.env.FIND_JOBS ?? (process.env.TEST_PROFILE === 'aws-local' ? 1000 : 5000));
const TYPES = ['t0', 't1', 't2', 't3', 't4'];
let stack: LocalStack;
let api: ReturnType<typeof apiClient>;
/** Ground truth: every job item, read straight from the table. */
let truth: { id: string; type: string; status: string; createdAt: string; meta: Record<string, string> }[];

/** A mix that ends in every status a job can rest in: SUCCEEDED, FAILED, HELD (batches), ABORTED (some of those). */
function body(i: number) {
  const type = TYPES[i % 5];
  const meta = { shard: String(i % 7), group: `g${i % 3}` };
  if (i % 10 === 9) return { type, meta, batch: { processor: 'demo.rows', hold: true } };
  if (i % 10 === 8) return { type, meta, tasks: [{ processor: 'demo.fail' }] };
  return { type, meta, tasks: [{ processor: 'demo.echo', input: i }] };
}

async function readTruth() {
  const { doc } = createClients();
  const items: Any[] = [];
  let cursor: Any;
  do {
    const page = await doc.send(new ScanCommand({ TableName: stack.info.tables.jobs, ExclusiveStartKey: cursor }));
    items.push(...(page.Items ?? []).filter((item) => item.sk === 'JOB'));
    cursor = page.LastEvaluatedKey;
  } while (cursor);
  doc.destroy();
  return items.map((item) => ({
    id: String(item.id),
    type: String(item.type),
    status: String(item.status),
    createdAt: String(item.createdAt),
    meta: JSON.parse(item.meta ?? '{}'),
  }));
}

function ordered(jobs: typeof truth, order: 'asc' | 'desc') {
  const sorted = [...jobs].sort((a, b) => {
    const x = `${a.createdAt}#${a.id}`;
    const y = `${b.createdAt}#${b.id}`;
    return x < y ? -1 : x > y ? 1 : 0;
  });
  return (order === 'asc' ? sorted : sorted.reverse()).map((j) => j.id);
}

async function all(query: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 500; pages++) {
    const reply: { status: number; body: Any } = await api.call(
      'GET',
      `/v1/jobs?${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    expect(reply.status).toBe(200);
    ids.push(...reply.body.items.map((job: Any) => job.id));
    cursor = reply.body.nextCursor;
    if (!cursor) return ids;
  }
  throw new Error('too many pages');
}

beforeAll(async () => {
  stack = await startTestStack();
  api = apiClient(stack);
  const sqs = new SQSClient({});
  for (let i = 0; i < JOBS; i += 10) {
    await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: stack.info.queues.submit?.url,
        Entries: Array.from({ length: 10 }, (_, j) => ({ Id: String(j), MessageBody: JSON.stringify(body(i + j)) })),
      }),
    );
  }
  sqs.destroy();
  await eventually(async () => {
    const jobs = await readTruth();
    return jobs.length === JOBS && jobs.every((j) => ['SUCCEEDED', 'FAILED', 'HELD'].includes(j.status));
  }, 240_000);
  const held = (await readTruth()).filter((j) => j.status === 'HELD').map((j) => j.id);
  for (const id of held.slice(0, 25)) expect((await api.abort(id)).status).toBe(202);
  truth = await readTruth();
}, 300_000);
afterAll(() => stack?.stop());

describe('finding jobs among 5,000 of 5 types and mixed statuses', () => {
  it('has the mix it claims', () => {
    const statuses = new Set(truth.map((j) => j.status));
    expect([...statuses].sort()).toEqual(['ABORTED', 'FAILED', 'HELD', 'SUCCEEDED']);
    expect(new Set(truth.map((j) => j.type)).size).toBe(5);
  });

  it('returns exactly the matching jobs for every type × status filter, pages chaining without gaps or duplicates', async () => {
    for (const type of [undefined, ...TYPES]) {
      for (const status of [undefined, 'SUCCEEDED', 'FAILED', 'HELD', 'RUNNING', 'ABORTED', 'PENDING']) {
        if (type === undefined && status === undefined) continue;
        const query = [type && `type=${type}`, status && `status=${status}`, 'limit=100', 'order=asc']
          .filter(Boolean)
          .join('&');
        const expected = ordered(
          truth.filter((j) => (!type || j.type === type) && (!status || j.status === status)),
          'asc',
        );
        expect(await all(query), query).toEqual(expected);
      }
    }
  }, 240_000);

  it('lists everything, newest first and oldest first', async () => {
    expect(await all('limit=100&order=desc')).toEqual(ordered(truth, 'desc'));
    expect(await all('limit=97&order=asc')).toEqual(ordered(truth, 'asc'));
  }, 120_000);

  it('filters by creation time and by meta, alone and with type and status', async () => {
    const asc = ordered(truth, 'asc');
    const byId = new Map(truth.map((j) => [j.id, j]));
    const from = byId.get(asc[JOBS / 5] as string)!.createdAt;
    const to = byId.get(asc[(2 * JOBS) / 5] as string)!.createdAt;
    const inRange = truth.filter((j) => j.createdAt >= from && j.createdAt < to);
    expect(await all(`createdAfter=${from}&createdBefore=${to}&order=asc&limit=100`)).toEqual(ordered(inRange, 'asc'));
    const metaMatch = truth.filter((j) => j.meta.shard === '3' && j.meta.group === 'g1');
    expect(await all('meta.shard=3&meta.group=g1&limit=50&order=desc')).toEqual(ordered(metaMatch, 'desc'));
    const narrow = truth.filter((j) => j.type === 't2' && j.status === 'SUCCEEDED' && j.meta.shard === '5');
    expect(await all('type=t2&status=SUCCEEDED&meta.shard=5&order=asc')).toEqual(ordered(narrow, 'asc'));
  }, 120_000);

  it('answers type and status queries from the indexes: no Scan', async () => {
    const meter = new Meter();
    installMeter(meter);
    try {
      await all('type=t1&limit=100');
      await all('status=FAILED&limit=100');
      await all('type=t3&status=HELD&limit=100');
    } finally {
      uninstallMeter();
    }
    const operations = Object.keys(meter.byOperation());
    expect(operations).toContain('DynamoDB.Query');
    expect(operations.filter((op) => op.includes('Scan'))).toEqual([]);
  }, 60_000);

  it('finds tasks by processor, status and job type', async () => {
    const failed: Any[] = [];
    let cursor: string | null = null;
    do {
      const reply: { body: Any } = await api.call(
        'GET',
        `/v1/tasks?processor=demo.fail&jobType=t3&limit=40${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      failed.push(...reply.body.items);
      cursor = reply.body.nextCursor;
    } while (cursor);
    const expected = truth.filter((j) => j.type === 't3' && j.status === 'FAILED');
    expect(failed.map((t) => t.jobId).sort()).toEqual(expected.map((j) => j.id).sort());
    expect(failed[0]).toMatchObject({
      processor: 'demo.fail',
      status: 'FAILED',
      jobType: 't3',
      error: { kind: 'error' },
    });
  }, 120_000);
});

describe('bad find queries get 400 with details and change nothing', () => {
  const bad = [
    'colour=red',
    'status=DONE',
    'limit=0',
    'limit=101',
    'createdAfter=2026-02-01T00:00:00Z&createdBefore=2026-01-01T00:00:00Z',
    'createdAfter=yesterday',
    'cursor=nonsense',
    'order=sideways',
  ];
  for (const query of bad) {
    it(`refuses ${query}`, async () => {
      const reply = await api.call<Any>('GET', `/v1/jobs?${query}`);
      expect(reply.status).toBe(400);
      expect(reply.body.error.code).toBe('VALIDATION_FAILED');
      expect(reply.body.error.details.length).toBeGreaterThan(0);
    });
  }

  it('refuses a tampered cursor and a cursor from another query', async () => {
    const first = await api.call<Any>('GET', '/v1/jobs?type=t1&limit=2');
    const cursor = first.body.nextCursor as string;
    const [payload, mac] = cursor.split('.');
    const forged = `${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), o: '0' })).toString('base64url')}.${mac}`;
    expect((await api.call('GET', `/v1/jobs?type=t1&limit=2&cursor=${forged}`)).status).toBe(400);
    expect((await api.call('GET', `/v1/jobs?type=t2&limit=2&cursor=${cursor}`)).status).toBe(400);
    expect((await api.call('GET', `/v1/tasks?cursor=${cursor}`)).status).toBe(400);
    expect((await api.call('GET', '/v1/tasks?kind=x')).status).toBe(400);
  });
});
