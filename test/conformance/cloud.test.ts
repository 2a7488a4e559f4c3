import { Readable } from 'node:stream';
import { ConditionalCheckFailedException, CreateTableCommand, DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import {
  ChangeMessageVisibilityCommand,
  CreateQueueCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
} from '@aws-sdk/client-sqs';
import { BatchWriteCommand, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalStack } from '../../local/stack.js';
import { createClients } from '../../shared/aws/clients.js';
import { eventually, startTestStack } from '../support/stack.js';

/**
 * The exact behaviours of DynamoDB, SQS and S3 the adapters rely on, run against whichever local
 * cloud the profile selects (TEST_PROFILE=embedded | aws-local). Where an engine differs, the
 * product must be right on all of them; docs/local.md's "Local cloud fidelity" lists the differences.
 */
let stack: LocalStack;
let c: ReturnType<typeof createClients>;
const TABLE = 'conformance';

beforeAll(async () => {
  stack = await startTestStack({ startPollers: false, demo: false });
  c = createClients();
  await c.dynamo.send(
    new CreateTableCommand({
      TableName: TABLE,
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
        { AttributeName: 'g', AttributeType: 'S' },
        { AttributeName: 'at', AttributeType: 'S' },
      ],
      GlobalSecondaryIndexes: [
        {
          IndexName: 'byG',
          KeySchema: [
            { AttributeName: 'g', KeyType: 'HASH' },
            { AttributeName: 'at', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'KEYS_ONLY' },
        },
      ],
    }),
  );
}, 60_000);

afterAll(async () => {
  await c?.dynamo.send(new DeleteTableCommand({ TableName: TABLE })).catch(() => undefined);
  await stack?.stop();
});

describe(`DynamoDB (${process.env.TEST_PROFILE ?? 'embedded'})`, () => {
  it('refuses a conditional write that names a stale version, and the current item can be read', async () => {
    await c.doc.send(new PutCommand({ TableName: TABLE, Item: { pk: 'a', sk: 'x', version: 2, attempt: 2 } }));
    const refused = await c.doc
      .send(
        new PutCommand({
          TableName: TABLE,
          Item: { pk: 'a', sk: 'x', version: 2, attempt: 1 },
          ConditionExpression: 'version = :v',
          ExpressionAttributeValues: { ':v': 1 },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      )
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ConditionalCheckFailedException);
    // AWS and DynamoDB Local return the old item with the refusal, and it must be the right one;
    // dynalite returns none, so the store falls back to reading it — which must then give it.
    const old = (refused as ConditionalCheckFailedException).Item;
    if (process.env.TEST_PROFILE === 'aws-local') expect(old).toBeDefined();
    if (old) expect(unmarshall(old)).toMatchObject({ version: 2, attempt: 2 });
    const { Item: current } = await c.doc.send(
      new GetCommand({ TableName: TABLE, Key: { pk: 'a', sk: 'x' }, ConsistentRead: true }),
    );
    expect(current).toMatchObject({ version: 2, attempt: 2 });
  });

  it('refuses every write to an item whose status is terminal', async () => {
    await c.doc.send(new PutCommand({ TableName: TABLE, Item: { pk: 't', sk: 'x', status: 'SUCCEEDED' } }));
    for (const status of ['RUNNING', 'FAILED', 'SUCCEEDED']) {
      await expect(
        c.doc.send(
          new PutCommand({
            TableName: TABLE,
            Item: { pk: 't', sk: 'x', status },
            ConditionExpression: 'NOT #s IN (:a, :b, :c)',
            ExpressionAttributeNames: { '#s': 'status' },
            ExpressionAttributeValues: { ':a': 'SUCCEEDED', ':b': 'FAILED', ':c': 'ABORTED' },
          }),
        ),
      ).rejects.toBeInstanceOf(ConditionalCheckFailedException);
    }
  });

  it('adds to counters atomically', async () => {
    await Promise.all(
      Array.from({ length: 20 }, () =>
        c.doc.send(
          new UpdateCommand({
            TableName: TABLE,
            Key: { pk: 'counter', sk: 'x' },
            UpdateExpression: 'ADD done :one',
            ExpressionAttributeValues: { ':one': 1 },
          }),
        ),
      ),
    );
    const { Attributes } = await c.doc.send(
      new UpdateCommand({
        TableName: TABLE,
        Key: { pk: 'counter', sk: 'x' },
        UpdateExpression: 'ADD done :zero',
        ExpressionAttributeValues: { ':zero': 0 },
        ReturnValues: 'ALL_NEW',
      }),
    );
    expect(Attributes?.done).toBe(20);
  });

  it('pages an index query in both orders without skipping or repeating', async () => {
    const items = Array.from({ length: 23 }, (_, i) => ({
      pk: `p${i}`,
      sk: 'x',
      g: 'G',
      at: `2026-01-01T00:00:${String(i % 7).padStart(2, '0')}Z`,
    }));
    for (let i = 0; i < items.length; i += 25) {
      await c.doc.send(
        new BatchWriteCommand({
          RequestItems: { [TABLE]: items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } })) },
        }),
      );
    }
    for (const forward of [true, false]) {
      const seen: string[] = [];
      let cursor: Record<string, unknown> | undefined;
      do {
        const page = await c.doc.send(
          new QueryCommand({
            TableName: TABLE,
            IndexName: 'byG',
            KeyConditionExpression: 'g = :g',
            ExpressionAttributeValues: { ':g': 'G' },
            ScanIndexForward: forward,
            Limit: 5,
            ExclusiveStartKey: cursor,
          }),
        );
        seen.push(...(page.Items ?? []).map((i) => String(i.pk)));
        cursor = page.LastEvaluatedKey;
      } while (cursor);
      expect(seen).toHaveLength(23);
      expect(new Set(seen).size).toBe(23);
    }
  });

  it('refuses an item over 400 KB', async () => {
    await expect(
      c.doc.send(new PutCommand({ TableName: TABLE, Item: { pk: 'big', sk: 'x', pad: 'x'.repeat(410 * 1024) } })),
    ).rejects.toThrow();
  });
});

describe(`SQS (${process.env.TEST_PROFILE ?? 'embedded'})`, () => {
  it('hides a received message for its visibility, then redelivers it with a higher receive count', async () => {
    const { QueueUrl } = await c.sqs.send(
      new CreateQueueCommand({ QueueName: 'conformance-vis', Attributes: { VisibilityTimeout: '30' } }),
    );
    await c.sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'm' }));
    const receive = () =>
      c.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl,
          WaitTimeSeconds: 0,
          AttributeNames: ['All'],
          MessageSystemAttributeNames: ['All'],
        }),
      );
    const first = await eventually(async () => (await receive()).Messages?.[0]);
    expect(first.Attributes?.ApproximateReceiveCount).toBe('1');
    expect((await receive()).Messages ?? []).toHaveLength(0);
    // Visibility is the lease: shortening it hands the message back.
    await c.sqs.send(
      new ChangeMessageVisibilityCommand({ QueueUrl, ReceiptHandle: first.ReceiptHandle, VisibilityTimeout: 1 }),
    );
    const again = await eventually(async () => (await receive()).Messages?.[0], 5000);
    expect(again.MessageId).toBe(first.MessageId);
    // AWS and moto count receives only (2 here); local-aws-sqs also counts the visibility change.
    expect(Number(again.Attributes?.ApproximateReceiveCount)).toBeGreaterThanOrEqual(2);
  });
});

describe(`S3 (${process.env.TEST_PROFILE ?? 'embedded'})`, () => {
  const bytes = Buffer.from(Array.from({ length: 6 * 1024 * 1024 + 17 }, (_, i) => (i * 7) % 256));

  it('round-trips a streamed upload and a multipart upload byte for byte', async () => {
    const bucket = stack.info.buckets.data;
    await c.s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'conf/streamed',
        Body: Readable.from([bytes.subarray(0, 3000)]),
        ContentLength: 3000,
      }),
    );
    const streamed = await c.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'conf/streamed' }));
    expect(Buffer.from(await streamed.Body!.transformToByteArray()).equals(bytes.subarray(0, 3000))).toBe(true);
    await new Upload({
      client: c.s3,
      params: { Bucket: bucket, Key: 'conf/multipart', Body: Readable.from([bytes]) },
      partSize: 5 * 1024 * 1024,
    }).done();
    const multipart = await c.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'conf/multipart' }));
    expect(Buffer.from(await multipart.Body!.transformToByteArray()).equals(bytes)).toBe(true);
  });

  it('accepts a presigned PUT and serves a presigned GET', async () => {
    const bucket = stack.info.buckets.data;
    const put = await getSignedUrl(c.s3, new PutObjectCommand({ Bucket: bucket, Key: 'conf/presigned' }), {
      expiresIn: 300,
    });
    expect((await fetch(put, { method: 'PUT', body: 'a,b\n1,2\n' })).status).toBe(200);
    const get = await getSignedUrl(c.s3, new GetObjectCommand({ Bucket: bucket, Key: 'conf/presigned' }), {
      expiresIn: 300,
    });
    expect(await (await fetch(get)).text()).toBe('a,b\n1,2\n');
  });
});
