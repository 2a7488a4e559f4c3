import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { faultClient } from './faults.js';
import { recordClient, recordDir } from './iam-record.js';
import { meterClient } from './meter.js';

/**
 * One place that builds the AWS SDK clients. Endpoints come from the SDK's own conventions
 * (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`, …), so the same code reaches AWS, the embedded
 * cloud or LocalStack without knowing which.
 *
 * One builder per service, so a function's bundle holds only the SDK clients it calls (esbuild
 * drops the builders, and with them the SDK packages, that nothing reaches).
 */

function customS3Endpoint(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL);
}

export interface Clients {
  dynamo: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  sqs: SQSClient;
  s3: S3Client;
  lambda: LambdaClient;
}

type AnyClient = Parameters<typeof meterClient>[0] & Parameters<typeof recordClient>[0];

/**
 * Every client the project builds passes here: counted by the request meter whenever one is
 * installed (benchmarks, the fault suite); the IAM recorder joins only while recording (tests), so
 * deployed clients carry no extra middleware.
 */
function hooked<T extends AnyClient>(client: T, env: NodeJS.ProcessEnv): T {
  meterClient(client);
  faultClient(client);
  const record = recordDir(env);
  if (record) recordClient(client, record);
  return client;
}

function newDynamo(env: NodeJS.ProcessEnv): DynamoDBClient {
  return hooked(new DynamoDBClient({}), env);
}

/** Shares the low-level client's middleware stack, so the hooks above see its calls too. */
function newDoc(dynamo: DynamoDBClient): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(dynamo, {
    marshallOptions: { removeUndefinedValues: true, convertEmptyValues: false },
  });
}

function newSqs(env: NodeJS.ProcessEnv): SQSClient {
  return hooked(new SQSClient({}), env);
}

function newS3(env: NodeJS.ProcessEnv): S3Client {
  return hooked(
    new S3Client(
      customS3Endpoint(env)
        ? {
            // Emulators serve path-style only; and with default checksums a streamed body goes
            // aws-chunked, which s3rver would store with the chunk markers inside the object.
            forcePathStyle: true,
            requestChecksumCalculation: 'WHEN_REQUIRED',
            responseChecksumValidation: 'WHEN_REQUIRED',
          }
        : {},
    ),
    env,
  );
}

function newLambda(env: NodeJS.ProcessEnv): LambdaClient {
  return hooked(new LambdaClient({}), env);
}

/** Fresh clients of every service, not shared with anyone (tests that hook or meter their own). */
export function createClients(env: NodeJS.ProcessEnv = process.env): Clients {
  const dynamo = newDynamo(env);
  return { dynamo, doc: newDoc(dynamo), sqs: newSqs(env), s3: newS3(env), lambda: newLambda(env) };
}

const shared = new Map<keyof Clients, { key: string; client: unknown }>();

/** The variables a shared client is built from: when one changes, the clients (and what holds them) are built again. */
export function clientEnvKey(env: NodeJS.ProcessEnv = process.env): string {
  return Object.entries(env)
    .filter(([name]) => name.startsWith('AWS_ENDPOINT_URL') || name === 'AWS_REGION')
    .sort()
    .join(';');
}

/**
 * A client reused across invocations of a warm Lambda (connection reuse is most of its cost),
 * built on first use; rebuilt if the endpoints change, as when a local stack restarts in the same
 * process.
 */
function sharedClient<K extends keyof Clients>(service: K, build: () => Clients[K]): Clients[K] {
  const key = clientEnvKey();
  const hit = shared.get(service);
  if (hit?.key === key) return hit.client as Clients[K];
  const client = build();
  shared.set(service, { key, client });
  return client;
}

export const dynamoClient = (): DynamoDBClient => sharedClient('dynamo', () => newDynamo(process.env));
export const docClient = (): DynamoDBDocumentClient => sharedClient('doc', () => newDoc(dynamoClient()));
export const sqsClient = (): SQSClient => sharedClient('sqs', () => newSqs(process.env));
export const s3Client = (): S3Client => sharedClient('s3', () => newS3(process.env));
export const lambdaClient = (): LambdaClient => sharedClient('lambda', () => newLambda(process.env));

/** The shared clients of every service, each built when first read. */
export function clients(): Clients {
  return {
    get dynamo() {
      return dynamoClient();
    },
    get doc() {
      return docClient();
    },
    get sqs() {
      return sqsClient();
    },
    get s3() {
      return s3Client();
    },
    get lambda() {
      return lambdaClient();
    },
  };
}
