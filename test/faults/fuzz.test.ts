import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../local/stack.js';
import { queueDepth, tableItems } from '../support/api.js';
import { eventually, startTestStack } from '../support/stack.js';

/**
 * Fault suite, scenario 6: thousands of generated bad bodies to `POST /v1/jobs` and to the submit
 * queue. Each gets the contract's error (or the dead-letter queue), nothing is written, and the
 * server stays up.
 */
const CODES = new Set(['VALIDATION_FAILED', 'UNKNOWN_PROCESSOR', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE']);

const valid = { type: 'fuzz', tasks: [{ processor: 'demo.echo', input: 1 }] };

/** Any JSON value but one of this kind (so a field expecting that kind is always wrong). */
function notA(kind: 'string' | 'array' | 'boolean' | 'object'): fc.Arbitrary<unknown> {
  return fc.jsonValue({ maxDepth: 2 }).filter((v) => {
    if (kind === 'array') return !Array.isArray(v);
    if (kind === 'object') return v === null || typeof v !== 'object' || Array.isArray(v);
    return typeof v !== kind;
  });
}

/** Bodies that are wrong on purpose: every one must be refused. */
const badBody: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }).filter((v) => !(v && typeof v === 'object' && 'tasks' in v && 'type' in v)),
  // A valid body with one field broken.
  fc.oneof(
    notA('string').map((type) => ({ ...valid, type })),
    fc.string({ minLength: 129, maxLength: 400 }).map((type) => ({ ...valid, type })),
    notA('array').map((tasks) => ({ ...valid, tasks })),
    fc
      .jsonValue()
      .filter((v) => v !== 'sequential' && v !== 'concurrent')
      .map((strategy) => ({ ...valid, strategy })),
    notA('boolean').map((failFast) => ({ ...valid, failFast })),
    notA('object').map((meta) => ({ ...valid, meta })),
    fc.oneof(notA('string'), fc.string({ minLength: 257, maxLength: 2000 })).map((name) => ({ ...valid, name })),
    fc
      .oneof(notA('string'), fc.string({ minLength: 257, maxLength: 600 }))
      .map((idempotencyKey) => ({ ...valid, idempotencyKey })),
    fc.jsonValue({ maxDepth: 2 }).map((batch) => ({ ...valid, batch })),
  ),
  // Tasks broken: unknown processors, wrong types, too many.
  fc.oneof(
    fc.string({ minLength: 1, maxLength: 40 }).map((p) => ({ ...valid, tasks: [{ processor: `x-${p}` }] })),
    notA('object').map((t) => ({ ...valid, tasks: [t] })),
    fc.constant({ ...valid, tasks: Array.from({ length: 1001 }, () => ({ processor: 'demo.echo' })) }),
    fc.constant({ ...valid, tasks: [] }),
  ),
  // Deep nesting and unknown fields.
  fc
    .integer({ min: 200, max: 3000 })
    .map((depth) => ({ ...valid, meta: JSON.parse(`${'['.repeat(depth)}${']'.repeat(depth)}`) })),
  fc.string({ minLength: 1, maxLength: 20 }).map((name) => ({ ...valid, [`zz${name}`]: true })),
  // Batches broken.
  fc
    .record({ rows: fc.jsonValue({ maxDepth: 1 }), chunkSize: fc.integer({ min: -5, max: 5000 }) })
    .map(({ rows, chunkSize }) => ({
      type: 'fuzz',
      batch: { processor: 'demo.rows', rows: Array.isArray(rows) ? 'nope' : rows, chunkSize },
    })),
);

let stack: LocalStack;
beforeAll(async () => {
  stack = await startTestStack();
});
afterAll(() => stack?.stop());

async function post(body: string | Buffer, contentType = 'application/json') {
  const response = await fetch(`${stack.info.api}/v1/jobs`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body: typeof body === 'string' ? body : new Uint8Array(body),
  });
  return {
    status: response.status,
    body: (await response.json()) as { error?: { code: string; details?: unknown[] } },
  };
}

describe('fuzzed bad input', () => {
  it("answers thousands of generated bad bodies with the contract's error and writes nothing", async () => {
    const before = (await tableItems(stack)).length;
    const depth = await queueDepth(stack, 'work');
    const samples = fc.sample(badBody, { numRuns: 2000, seed: 4242 });
    const extras: [string | Buffer, string?][] = [
      [Buffer.from([0x7b, 0x22, 0x74, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])], // invalid UTF-8
      ['{"type": "x", "tasks": ['], // truncated
      [JSON.stringify({ ...valid, name: 'x'.repeat(2 * 1024 * 1024) })], // oversized → 413
      [JSON.stringify(valid), 'text/plain'], // wrong media type → 415
      [''],
    ];
    const seen = new Map<number, number>();
    let i = 0;
    const all: [string | Buffer, string?][] = [...samples.map((s) => [JSON.stringify(s)] as [string]), ...extras];
    const worker = async () => {
      while (i < all.length) {
        const [body, type] = all[i++] as [string | Buffer, string?];
        const reply = await post(body, type);
        seen.set(reply.status, (seen.get(reply.status) ?? 0) + 1);
        expect([400, 413, 415], String(body).slice(0, 200)).toContain(reply.status);
        expect(CODES.has(reply.body.error?.code ?? '')).toBe(true);
        if (reply.status === 400) expect(Array.isArray(reply.body.error?.details)).toBe(true);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    console.log(`FUZZ http: ${all.length} bodies, statuses ${JSON.stringify(Object.fromEntries(seen))}, 0 violations`);
    expect((await tableItems(stack)).length).toBe(before);
    expect(await queueDepth(stack, 'work')).toBe(depth);
    expect((await fetch(`${stack.info.api}/v1/health`)).status).toBe(200);
  }, 180_000);

  it('moves bad queue messages to the submit dead-letter queue and creates nothing', async () => {
    const before = (await tableItems(stack)).length;
    const bodies = fc.sample(badBody, { numRuns: 300, seed: 7 }).map((b) => JSON.stringify(b));
    const sqs = new SQSClient({});
    try {
      for (let i = 0; i < bodies.length; i += 10) {
        await sqs.send(
          new SendMessageBatchCommand({
            QueueUrl: stack.info.queues.submit?.url,
            // SQS itself refuses bodies over 256 KiB; those never reach us.
            Entries: bodies
              .slice(i, i + 10)
              .map((MessageBody, j) => ({ Id: String(j), MessageBody: MessageBody.slice(0, 200_000) || '""' })),
          }),
        );
      }
    } finally {
      sqs.destroy();
    }
    await eventually(async () => (await queueDepth(stack, 'submitDlq')) === bodies.length || undefined, 60_000);
    expect(await queueDepth(stack, 'submit')).toBe(0);
    expect((await tableItems(stack)).length).toBe(before);
    console.log(`FUZZ queue: ${bodies.length} messages, all dead-lettered with a reason, 0 jobs`);
  }, 120_000);
});
