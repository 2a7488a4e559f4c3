import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { Upload } from '@aws-sdk/lib-storage';
import { afterAll, describe, expect, it } from 'vitest';
import { startLocalStack } from '../../local/stack.js';
import { createClients } from '../../shared/aws/clients.js';
import { physicalName, resources } from '../../shared/resources.js';

const stateDir = mkdtempSync(join(tmpdir(), 'jobs-cloud-test-'));
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

describe('embedded cloud', () => {
  it('creates every declared table, queue and bucket with the declared settings', async () => {
    const stack = await startLocalStack({ port: 0, stateDir, startPollers: false });
    try {
      const dynamo = new DynamoDBClient({});
      for (const table of Object.values(resources.tables)) {
        const { Table } = await dynamo.send(new DescribeTableCommand({ TableName: physicalName('local', table.name) }));
        expect(Table?.KeySchema).toEqual([
          { AttributeName: table.partitionKey.name, KeyType: 'HASH' },
          { AttributeName: table.sortKey.name, KeyType: 'RANGE' },
        ]);
        expect((Table?.GlobalSecondaryIndexes ?? []).map((i) => i.IndexName).sort()).toEqual(
          table.indexes.map((i: { name: string }) => i.name).sort(),
        );
      }
      dynamo.destroy();

      const sqs = new SQSClient({});
      for (const [key, queue] of Object.entries(resources.queues)) {
        const { Attributes = {} } = await sqs.send(
          new GetQueueAttributesCommand({
            QueueUrl: stack.info.queues[key as keyof typeof stack.info.queues]?.url,
            AttributeNames: ['All'],
          }),
        );
        expect(Number(Attributes.VisibilityTimeout)).toBe(queue.visibilityTimeoutSeconds);
        expect(Number(Attributes.MessageRetentionPeriod)).toBe(queue.retentionSeconds);
        if ('deadLetter' in queue) {
          const redrive = JSON.parse(Attributes.RedrivePolicy ?? '{}');
          expect(redrive.deadLetterTargetArn).toBe(stack.info.queues[queue.deadLetter.queue]?.arn);
          expect(Number(redrive.maxReceiveCount)).toBe(queue.deadLetter.maxReceiveCount);
        }
      }
      sqs.destroy();
      expect(Object.values(stack.info.buckets)).toEqual(
        Object.values(resources.buckets).map((b) => physicalName('local', b.name)),
      );
    } finally {
      await stack.stop();
    }
  });

  it('round-trips a streamed S3 upload byte for byte (no aws-chunked markers stored)', async () => {
    const stack = await startLocalStack({ port: 0, startPollers: false });
    try {
      const { s3 } = createClients();
      const bucket = stack.info.buckets.data;
      const bytes = Buffer.alloc(6 * 1024 * 1024 + 123);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) % 251;
      // A stream of unknown length: the SDK would send it aws-chunked under default checksums.
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: 'streamed.bin',
          Body: Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000, 5000)]),
          ContentLength: 5000,
        }),
      );
      const small = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'streamed.bin' }));
      expect(Buffer.from(await small.Body!.transformToByteArray())).toEqual(bytes.subarray(0, 5000));

      // Multipart through lib-storage, as batch outputs will be written.
      await new Upload({
        client: s3,
        params: { Bucket: bucket, Key: 'multipart.bin', Body: Readable.from([bytes]) },
        partSize: 5 * 1024 * 1024,
      }).done();
      const big = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'multipart.bin' }));
      expect(Buffer.from(await big.Body!.transformToByteArray()).equals(bytes)).toBe(true);
      s3.destroy();
    } finally {
      await stack.stop();
    }
  });

  it('keeps tables and objects across a restart with the same state folder', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jobs-restart-'));
    try {
      const first = await startLocalStack({ port: 0, stateDir: dir, startPollers: false });
      const c1 = createClients();
      await c1.doc.send(
        new PutCommand({ TableName: first.info.tables.jobs, Item: { pk: 'JOB#1', sk: 'JOB', kept: true } }),
      );
      await c1.s3.send(new PutObjectCommand({ Bucket: first.info.buckets.data, Key: 'kept.txt', Body: 'still here' }));
      c1.doc.destroy();
      c1.s3.destroy();
      await first.stop();

      const second = await startLocalStack({ port: 0, stateDir: dir, startPollers: false });
      const c2 = createClients();
      const { Item } = await c2.doc.send(
        new GetCommand({ TableName: second.info.tables.jobs, Key: { pk: 'JOB#1', sk: 'JOB' } }),
      );
      expect(Item?.kept).toBe(true);
      const object = await c2.s3.send(new GetObjectCommand({ Bucket: second.info.buckets.data, Key: 'kept.txt' }));
      expect(await object.Body!.transformToString()).toBe('still here');
      c2.doc.destroy();
      c2.s3.destroy();
      await second.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
