import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceInUseException,
} from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import dynalite from 'dynalite';
import { createSqsServer } from 'local-aws-sqs';
import S3rver from 's3rver';
import {
  type BucketKey,
  physicalName,
  type QueueKey,
  resources,
  type TableDeclaration,
  type TableKey,
} from '../shared/resources.js';
import { startDynamoDbLocal, startMoto } from './engines.js';
import { close, freePort, listen } from './net.js';

/** Where the local cloud's services answer, as the AWS SDK's endpoint variables name them. */
export interface CloudEndpoints {
  dynamodb: string;
  sqs: string;
  s3: string;
}

export interface ProvisionedQueue {
  name: string;
  url: string;
  arn: string;
}

export interface ProvisionedResources {
  tables: Record<TableKey, string>;
  queues: Record<QueueKey, ProvisionedQueue>;
  buckets: Record<BucketKey, string>;
}

export type Profile = 'embedded' | 'aws-local';

export interface Cloud {
  mode: 'embedded' | 'aws-local' | 'external';
  endpoints: CloudEndpoints;
  /** Whether a long poll returns on the first message (as in AWS); the embedded SQS waits for a full batch. */
  longPolls: boolean;
  /** Engine processes this cloud runs (their pids), so tests can prove none outlives it. */
  processes: { name: string; pid: number | undefined }[];
  stop(): Promise<void>;
}

export const LOCAL_REGION = 'us-east-1';
/** s3rver accepts only this key pair by default; the other emulators accept any. */
export const LOCAL_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

/**
 * Starts DynamoDB (dynalite), SQS (local-aws-sqs) and S3 (s3rver) in this process on free
 * 127.0.0.1 ports. With `stateDir`, tables and objects survive a restart; SQS keeps messages in
 * memory only (the engine's sweeper re-drives work from DynamoDB, as it would after any lost message).
 */
export async function startEmbeddedCloud(options: { stateDir?: string } = {}): Promise<Cloud> {
  const { stateDir } = options;
  if (stateDir) {
    mkdirSync(join(stateDir, 's3'), { recursive: true });
  }
  const dynamo: Server = dynalite({
    path: stateDir ? join(stateDir, 'dynamodb') : undefined,
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
  });
  const dynamoPort = await listen(dynamo);

  // The SQS emulator builds queue URLs from the port it is told, so reserve one first.
  const sqsPort = await freePort();
  const sqs = await createSqsServer({
    port: sqsPort,
    hostname: '127.0.0.1',
    region: LOCAL_REGION,
    emulateQueueCreationLifecycle: false,
  });

  // Without a state directory, a fresh one per cloud: s3rver's default (one shared folder under
  // the OS temp dir, wiped on close) let two stacks in one machine — parallel test files, a
  // benchmark beside a test run — overwrite and delete each other's objects.
  const s3Directory = stateDir ? join(stateDir, 's3') : mkdtempSync(join(tmpdir(), 'jobs-s3-'));
  const s3 = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: s3Directory,
  } as ConstructorParameters<typeof S3rver>[0]);
  const s3Address = (await s3.run()) as unknown as AddressInfo;

  return {
    mode: 'embedded',
    longPolls: false,
    processes: [],
    endpoints: {
      dynamodb: `http://127.0.0.1:${dynamoPort}`,
      sqs: `http://127.0.0.1:${sqsPort}`,
      s3: `http://127.0.0.1:${s3Address.port}`,
    },
    async stop() {
      await Promise.all([close(dynamo), close(sqs), s3.close()]);
      if (!stateDir) rmSync(s3Directory, { recursive: true, force: true });
    },
  };
}

/**
 * The higher-fidelity profile: AWS's own DynamoDB Local (Java) for DynamoDB, moto (Python) for SQS
 * and S3. Slower to start (seconds) and to serve, but nothing works only because an emulator is
 * lenient. Tables persist under `stateDir`; moto keeps SQS and S3 in memory only.
 */
export async function startAwsLocalCloud(options: { stateDir?: string } = {}): Promise<Cloud> {
  const dynamoDir = options.stateDir ? join(options.stateDir, 'dynamodb-local') : undefined;
  if (dynamoDir) mkdirSync(dynamoDir, { recursive: true });
  const [dynamo, moto] = await Promise.allSettled([startDynamoDbLocal(dynamoDir), startMoto()]);
  if (dynamo.status === 'rejected' || moto.status === 'rejected') {
    await Promise.all([dynamo, moto].map((p) => (p.status === 'fulfilled' ? p.value.stop() : undefined)));
    throw (dynamo.status === 'rejected' ? dynamo.reason : (moto as PromiseRejectedResult).reason) as Error;
  }
  return {
    mode: 'aws-local',
    longPolls: true,
    processes: [dynamo.value, moto.value].map(({ name, pid }) => ({ name, pid })),
    endpoints: { dynamodb: dynamo.value.endpoint, sqs: moto.value.endpoint, s3: moto.value.endpoint },
    async stop() {
      await Promise.all([dynamo.value.stop(), moto.value.stop()]);
    },
  };
}

/**
 * Uses an emulator someone else runs (LocalStack, moto…) when `AWS_ENDPOINT_URL` or the
 * per-service variables point at one.
 */
export function externalCloud(env: NodeJS.ProcessEnv): Cloud | undefined {
  const base = env.AWS_ENDPOINT_URL;
  const dynamodb = env.AWS_ENDPOINT_URL_DYNAMODB ?? base;
  const sqs = env.AWS_ENDPOINT_URL_SQS ?? base;
  const s3 = env.AWS_ENDPOINT_URL_S3 ?? base;
  if (!dynamodb && !sqs && !s3) return undefined;
  if (!dynamodb || !sqs || !s3) {
    throw new Error(
      'Set AWS_ENDPOINT_URL (or all of AWS_ENDPOINT_URL_DYNAMODB, _SQS and _S3) to use an external emulator.',
    );
  }
  return { mode: 'external', endpoints: { dynamodb, sqs, s3 }, longPolls: true, processes: [], stop: async () => {} };
}

function awsConfig(endpoint: string) {
  return { endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS };
}

export function tableInput(table: TableDeclaration, tableName: string): CreateTableCommandInput {
  const attributes = new Map<string, string>();
  const keySchema = (pk: { name: string; type: string }, sk?: { name: string; type: string }) => {
    attributes.set(pk.name, pk.type);
    if (sk) attributes.set(sk.name, sk.type);
    return [
      { AttributeName: pk.name, KeyType: 'HASH' as const },
      ...(sk ? [{ AttributeName: sk.name, KeyType: 'RANGE' as const }] : []),
    ];
  };
  const input: CreateTableCommandInput = {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema: keySchema(table.partitionKey, table.sortKey),
  };
  if (table.indexes.length > 0) {
    input.GlobalSecondaryIndexes = table.indexes.map((index) => ({
      IndexName: index.name,
      KeySchema: keySchema(index.partitionKey, index.sortKey),
      Projection: {
        ProjectionType: index.projection,
        ...(index.include ? { NonKeyAttributes: index.include } : {}),
      },
    }));
  }
  input.AttributeDefinitions = [...attributes].map(([AttributeName, AttributeType]) => ({
    AttributeName,
    AttributeType: AttributeType as 'S' | 'N',
  }));
  return input;
}

/** Creates every declared table, queue and bucket that does not exist yet. Safe to run on every start. */
export async function provision(endpoints: CloudEndpoints, stage: string): Promise<ProvisionedResources> {
  const dynamo = new DynamoDBClient(awsConfig(endpoints.dynamodb));
  const sqs = new SQSClient(awsConfig(endpoints.sqs));
  const s3 = new S3Client({ ...awsConfig(endpoints.s3), forcePathStyle: true });
  try {
    const tables = {} as Record<TableKey, string>;
    for (const [key, table] of Object.entries(resources.tables)) {
      const name = physicalName(stage, table.name);
      try {
        await dynamo.send(new CreateTableCommand(tableInput(table, name)));
      } catch (error) {
        if (!(error instanceof ResourceInUseException)) throw error;
      }
      await waitForTable(dynamo, name);
      tables[key as TableKey] = name;
    }

    const queues = {} as Record<QueueKey, ProvisionedQueue>;
    // Dead-letter queues first: a redrive policy must name an existing queue.
    const ordered = (Object.keys(resources.queues) as QueueKey[]).sort(
      (a, b) => Number('deadLetter' in resources.queues[a]) - Number('deadLetter' in resources.queues[b]),
    );
    for (const key of ordered) {
      const queue = resources.queues[key];
      const name = physicalName(stage, queue.name);
      const attributes: Record<string, string> = {
        VisibilityTimeout: String(queue.visibilityTimeoutSeconds),
        MessageRetentionPeriod: String(queue.retentionSeconds),
      };
      if ('deadLetter' in queue) {
        attributes.RedrivePolicy = JSON.stringify({
          deadLetterTargetArn: queues[queue.deadLetter.queue as QueueKey]?.arn,
          maxReceiveCount: queue.deadLetter.maxReceiveCount,
        });
      }
      const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
      if (!QueueUrl) throw new Error(`CreateQueue returned no URL for ${name}`);
      const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }));
      queues[key] = { name, url: QueueUrl, arn: Attributes?.QueueArn ?? '' };
    }

    const buckets = {} as Record<BucketKey, string>;
    for (const [key, bucket] of Object.entries(resources.buckets)) {
      const name = physicalName(stage, bucket.name);
      try {
        await s3.send(new CreateBucketCommand({ Bucket: name }));
      } catch (error) {
        const code = (error as { name?: string }).name;
        if (code !== 'BucketAlreadyOwnedByYou' && code !== 'BucketAlreadyExists') throw error;
      }
      buckets[key as BucketKey] = name;
    }
    return { tables, queues, buckets };
  } finally {
    dynamo.destroy();
    sqs.destroy();
    s3.destroy();
  }
}

async function waitForTable(dynamo: DynamoDBClient, name: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const { Table } = await dynamo.send(new DescribeTableCommand({ TableName: name }));
    if (Table?.TableStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Table ${name} did not become ACTIVE`);
}
