import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localPrincipal } from '../../local/runtime/principals.js';
import type { LocalStack } from '../../local/stack.js';
import { createClients } from '../../shared/aws/clients.js';
import { installMeter, Meter, uninstallMeter } from '../../shared/aws/meter.js';
import { iamOwner, ownerKey } from '../../shared/core/owners.js';
import { apiClient, type Credentials, localOwner } from '../support/api.js';
import { eventually, startTestStack } from '../support/stack.js';

// biome-ignore lint/suspicious/noExplicitAny: replies are read as a user's script would
type Reply = any;

const ownerOf = (name: string) => iamOwner(localPrincipal(name).userId);
const MAX_INPUT_BYTES = 100_000;

let stack: LocalStack;

beforeAll(async () => {
  stack = await startTestStack({
    handlerEnv: {
      ADMIN_PRINCIPALS: localPrincipal('root').userArn,
      BATCH_INPUT_MAX_BYTES: String(MAX_INPUT_BYTES),
      TRUSTED_SUBMITTERS: ownerOf('local'),
    },
  });
});
afterAll(() => stack?.stop());

/**
 * The same scenarios for every way a caller proves who it is: the local owner header here; the
 * SigV4-signed and JWT variants add their own credentials below.
 */
function callers(as: (name: string) => Credentials) {
  return {
    alice: apiClient(stack, as('alice')),
    bob: apiClient(stack, as('bob')),
    root: apiClient(stack, as('root')),
  };
}

async function settle(api: ReturnType<typeof apiClient>, id: string): Promise<Reply> {
  for (const until = Date.now() + 60_000; ; ) {
    const { body } = await api.get<Reply>(id, 5);
    const done = ['SUCCEEDED', 'FAILED', 'ABORTED'].includes(body.status);
    if ((done && (body.kind !== 'batch' || body.batch.finalized)) || Date.now() > until) return body;
  }
}

describe('two owners over HTTP', () => {
  it("B cannot see, find, abort, append to, release, page rows of or replay into any of A's jobs", async () => {
    const { alice, bob } = callers(localOwner);
    const sleeping = { type: 'report', tasks: [{ processor: 'demo.sleep', input: { ms: 3000 } }] };
    const task = await alice.submit<Reply>(sleeping, { 'idempotency-key': 'shared-key' });
    const held = await alice.submit<Reply>(
      { type: 'import', batch: { processor: 'demo.rows', hold: true, rows: [{ n: 1 }] } },
      { 'idempotency-key': 'held-key' },
    );
    const uploadBody = { type: 'import', batch: { processor: 'demo.rows', upload: true } };
    const upload = await alice.submit<Reply>(uploadBody, { 'idempotency-key': 'upload-key' });
    expect([task.status, held.status, upload.status]).toEqual([202, 202, 202]);
    const ids = [task.body.id, held.body.id, upload.body.id];

    for (const id of ids) {
      for (const [method, path, body] of [
        ['GET', `/v1/jobs/${id}`],
        ['GET', `/v1/jobs/${id}?wait=1`],
        ['GET', `/v1/jobs/${id}/events`],
        ['GET', `/v1/jobs/${id}/rows`],
        ['POST', `/v1/jobs/${id}/abort`],
        ['POST', `/v1/jobs/${id}/rows`, { rows: [{ n: 'bob' }] }],
        ['POST', `/v1/jobs/${id}/release`],
      ] as const) {
        const reply = await bob.call<Reply>(method, path, body);
        expect({ method, path, status: reply.status, code: reply.body.error?.code }).toEqual({
          method,
          path,
          status: 404,
          code: 'NOT_FOUND',
        });
        // Exactly what an id nobody has answers: nothing tells B the job exists.
        expect(reply.body.error.message).toBe(`No job ${id}`);
      }
    }

    // B replays A's visible bodies with A's keys: B gets jobs of its own, never A's (nor A's upload URL).
    const replayTask = await bob.submit<Reply>(sleeping, { 'idempotency-key': 'shared-key' });
    const replayUpload = await bob.submit<Reply>(uploadBody, { 'idempotency-key': 'upload-key' });
    expect([replayTask.status, replayUpload.status]).toEqual([202, 202]);
    expect(replayTask.body.id).not.toBe(task.body.id);
    expect(replayUpload.body.id).not.toBe(upload.body.id);
    expect(replayUpload.body.batch.upload.url).not.toContain(upload.body.id);
    // A's own replay still finds A's job.
    const again = await alice.submit<Reply>(uploadBody, { 'idempotency-key': 'upload-key' });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(upload.body.id);

    // Nothing B did changed A's jobs.
    const heldNow = (await alice.get<Reply>(held.body.id)).body as Reply;
    expect(heldNow).toMatchObject({ status: 'HELD', counts: { total: 1 }, owner: ownerOf('alice') });
    expect(heldNow.idempotencyKey).toBe('held-key');
    expect((await alice.get<Reply>(task.body.id)).body.status).not.toBe('ABORTED');

    // B's searches list only B's jobs, and read no index entry of A's.
    const meter = new Meter();
    installMeter(meter);
    try {
      for (const query of ['', '?type=report', '?type=import&status=HELD', '?status=FAILED', '?meta.x=1']) {
        const page = await bob.call<Reply>('GET', `/v1/jobs${query}`);
        expect(page.status).toBe(200);
        for (const job of page.body.items) expect(job.owner).toBe(ownerOf('bob'));
      }
      const tasks = await bob.call<Reply>('GET', '/v1/tasks?processor=demo.sleep');
      expect(tasks.body.items.map((t: Reply) => t.jobId)).toEqual([replayTask.body.id]);
    } finally {
      uninstallMeter();
    }
    const bobKey = ownerKey(ownerOf('bob'));
    expect(meter.indexReads.length).toBeGreaterThan(0);
    for (const read of meter.indexReads) {
      expect(String(read.partition).startsWith(`${bobKey}#`)).toBe(true);
      for (const entry of read.items) expect(String(entry.sOwner ?? entry.sEnd).startsWith(`${bobKey}#`)).toBe(true);
    }
    // A's jobs are in the index all the same: A finds them.
    const mine = await alice.call<Reply>('GET', '/v1/jobs?type=import');
    expect(mine.body.items.map((j: Reply) => j.id).sort()).toEqual([held.body.id, upload.body.id].sort());

    // Naming another owner in a search is for admins only.
    const foreign = await bob.call<Reply>('GET', `/v1/jobs?owner=${encodeURIComponent(ownerOf('alice'))}`);
    expect(foreign.status).toBe(400);
    expect(foreign.body.error.details[0].path).toBe('owner');
  });

  it("an admin sees and finds every owner's jobs", async () => {
    const { alice, bob, root } = callers(localOwner);
    const a = await alice.run({ type: 'audit', tasks: [{ processor: 'demo.echo', input: 'a' }] });
    const b = await bob.run({ type: 'audit', tasks: [{ processor: 'demo.echo', input: 'b' }] });
    expect((await root.get<Reply>(a.id)).body).toMatchObject({ id: a.id, owner: ownerOf('alice') });
    expect((await root.get<Reply>(b.id)).body).toMatchObject({ id: b.id, owner: ownerOf('bob') });
    for (const [name, id] of [
      ['alice', a.id],
      ['bob', b.id],
    ] as const) {
      const page = await root.call<Reply>('GET', `/v1/jobs?type=audit&owner=${encodeURIComponent(ownerOf(name))}`);
      expect(page.body.items.map((j: Reply) => j.id)).toContain(id);
    }
    // The key is its owner's alone: an admin reading the job does not get it.
    const keyed = await alice.submit<Reply>(
      { type: 'audit', tasks: [{ processor: 'demo.echo' }] },
      { 'idempotency-key': 'k-a' },
    );
    expect((await alice.get<Reply>(keyed.body.id)).body.idempotencyKey).toBe('k-a');
    expect((await root.get<Reply>(keyed.body.id)).body).not.toHaveProperty('idempotencyKey');
    // Its own searches are its own jobs: an admin names the owner it looks into.
    expect((await root.call<Reply>('GET', '/v1/jobs?type=audit')).body.items).toEqual([]);
    const pageOfAlice = await root.call<Reply>(
      'GET',
      `/v1/jobs?owner=${encodeURIComponent(ownerOf('alice'))}&type=audit`,
    );
    expect(pageOfAlice.body.items.every((j: Reply) => j.idempotencyKey === undefined)).toBe(true);
  });
});

describe('stored references are not user values', () => {
  it('echoes an input shaped like a payload reference as the value it is, never an object of the bucket', async () => {
    const { alice, bob } = callers(localOwner);
    const batch = await alice.submit<Reply>({
      type: 'import',
      batch: { processor: 'demo.rows', rows: [{ secret: 'A1' }] },
    });
    const done = await settle(alice, batch.body.id);
    const resultsKey = done.batch.outputs.results.key as string;
    for (const key of [resultsKey, `payloads/${batch.body.id}/x/0/input.json`, 'no/such/key']) {
      const job = await bob.run({ type: 'probe', tasks: [{ processor: 'demo.echo', input: { $payload: key } }] });
      expect(job.status).toBe('SUCCEEDED');
      expect(job.tasks[0]?.result).toEqual({ echo: { $payload: key } });
    }
  });

  it('keeps a large value in S3 and gives it back as the value, shaped like a reference or not', async () => {
    const { alice } = callers(localOwner);
    const large = { $payload: 'outputs/x/results.jsonl', pad: 'p'.repeat(70_000) };
    const job = await alice.run({ type: 'large', tasks: [{ processor: 'demo.echo', input: large }] });
    expect(job.tasks[0]?.result).toEqual({ echo: large });
  });
});

describe('batch inputs a caller may name', () => {
  it("refuses another job's outputs, keys outside the input prefix and unlisted buckets, writing nothing", async () => {
    const { alice, bob } = callers(localOwner);
    const batch = await alice.submit<Reply>({
      type: 'import',
      batch: { processor: 'demo.rows', rows: [{ secret: 'A1' }] },
    });
    const done = await settle(alice, batch.body.id);
    const data = stack.info.buckets.data;
    for (const [input, path] of [
      [{ bucket: data, key: done.batch.outputs.results.key }, 'batch.input.key'],
      [{ bucket: data, key: `inputs/${batch.body.id}/rows-0.jsonl` }, 'batch.input.key'],
      [{ bucket: data, key: 'incoming/../outputs/x/results.jsonl' }, 'batch.input.key'],
      [{ bucket: 'some-other-bucket', key: 'incoming/a.jsonl' }, 'batch.input.bucket'],
    ] as const) {
      const reply = await bob.submit<Reply>({ type: 'steal', batch: { processor: 'demo.rows', input } });
      expect({
        status: reply.status,
        code: reply.body.error?.code,
        path: reply.body.error?.details?.[0]?.path,
      }).toEqual({ status: 400, code: 'VALIDATION_FAILED', path });
    }
    expect((await bob.call<Reply>('GET', '/v1/jobs?type=steal')).body.items).toEqual([]);
  });

  it('caps the size of an input file at submit and of an upload at release (the job stays HELD)', async () => {
    const { alice } = callers(localOwner);
    const { s3 } = createClients();
    const big = `${Array.from({ length: 3000 }, (_, n) => JSON.stringify({ n, pad: 'x'.repeat(40) })).join('\n')}\n`;
    expect(Buffer.byteLength(big)).toBeGreaterThan(MAX_INPUT_BYTES);
    await s3.send(new PutObjectCommand({ Bucket: stack.info.buckets.data, Key: 'incoming/big.jsonl', Body: big }));
    const named = await alice.submit<Reply>({
      type: 'big',
      batch: { processor: 'demo.rows', input: { bucket: stack.info.buckets.data, key: 'incoming/big.jsonl' } },
    });
    expect(named.status).toBe(413);
    expect(named.body.error.code).toBe('PAYLOAD_TOO_LARGE');

    const upload = await alice.submit<Reply>({ type: 'big', batch: { processor: 'demo.rows', upload: true } });
    expect((await fetch(upload.body.batch.upload.url, { method: 'PUT', body: big })).status).toBe(200);
    const release = await alice.call<Reply>('POST', `/v1/jobs/${upload.body.id}/release`);
    expect(release.status).toBe(413);
    expect((await alice.get<Reply>(upload.body.id)).body.status).toBe('HELD');
  });

  it('leaves no object behind when a held batch is refused for reusing a key', async () => {
    const { alice } = callers(localOwner);
    const first = await alice.submit<Reply>(
      { type: 'held', batch: { processor: 'demo.rows', hold: true, rows: [1, 2] } },
      { 'idempotency-key': 'held-once' },
    );
    const other = await alice.submit<Reply>(
      { type: 'held', batch: { processor: 'demo.rows', hold: true, rows: [3] } },
      { 'idempotency-key': 'held-once' },
    );
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe('IDEMPOTENCY_MISMATCH');
    const { s3 } = createClients();
    const listed = await s3.send(
      new ListObjectsV2Command({ Bucket: stack.info.buckets.data, Prefix: `inputs/${first.body.id}/` }),
    );
    expect((listed.Contents ?? []).length).toBe(1);
  });
});

describe('owners of queued submissions', () => {
  it("makes the sender's job, or the named owner's when the sender is trusted", async () => {
    const { alice } = callers(localOwner);
    const local = apiClient(stack);
    const sqs = new SQSClient({});
    try {
      const send = (type: string, owner?: string) =>
        sqs.send(
          new SendMessageCommand({
            QueueUrl: stack.info.queues.submit?.url,
            MessageBody: JSON.stringify({ type, tasks: [{ processor: 'demo.echo', input: 1 }] }),
            ...(owner ? { MessageAttributes: { Owner: { DataType: 'String', StringValue: owner } } } : {}),
          }),
        );
      await send('queued-plain');
      await send('queued-for-alice', ownerOf('alice'));
      const mineOf = (api: ReturnType<typeof apiClient>, type: string) =>
        eventually(async () => {
          const items = (await api.call<Reply>('GET', `/v1/jobs?type=${type}`)).body.items;
          return items.length > 0 ? items : undefined;
        }, 20_000);
      expect((await mineOf(local, 'queued-plain'))[0].owner).toBe(ownerOf('local'));
      expect((await mineOf(alice, 'queued-for-alice'))[0].owner).toBe(ownerOf('alice'));
      expect((await local.call<Reply>('GET', '/v1/jobs?type=queued-for-alice')).body.items).toEqual([]);
    } finally {
      sqs.destroy();
    }
  });
});
