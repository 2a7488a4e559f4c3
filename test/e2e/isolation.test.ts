import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localPrincipal } from '../../local/runtime/principals.js';
import type { LocalStack } from '../../local/stack.js';
import { createClients } from '../../shared/aws/clients.js';
import { iamOwner } from '../../shared/core/owners.js';
import { apiClient, localOwner } from '../support/api.js';
import { callers, twoOwners } from '../support/isolation.js';
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

async function settle(api: ReturnType<typeof apiClient>, id: string): Promise<Reply> {
  for (const until = Date.now() + 60_000; ; ) {
    const { body } = await api.get<Reply>(id, 5);
    const done = ['SUCCEEDED', 'FAILED', 'ABORTED'].includes(body.status);
    if ((done && (body.kind !== 'batch' || body.batch.finalized)) || Date.now() > until) return body;
  }
}

describe('two owners over HTTP (X-Local-Owner)', () => twoOwners(() => callers(stack, localOwner), ownerOf));

describe('stored references are not user values', () => {
  it('echoes an input shaped like a payload reference as the value it is, never an object of the bucket', async () => {
    const { alice, bob } = callers(stack, localOwner);
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
    const { alice } = callers(stack, localOwner);
    const large = { $payload: 'outputs/x/results.jsonl', pad: 'p'.repeat(70_000) };
    const job = await alice.run({ type: 'large', tasks: [{ processor: 'demo.echo', input: large }] });
    expect(job.tasks[0]?.result).toEqual({ echo: large });
  });
});

describe('batch inputs a caller may name', () => {
  it("refuses another job's outputs, keys outside the input prefix and unlisted buckets, writing nothing", async () => {
    const { alice, bob } = callers(stack, localOwner);
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
    const { alice } = callers(stack, localOwner);
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
    const { alice } = callers(stack, localOwner);
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
    const { alice } = callers(stack, localOwner);
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
