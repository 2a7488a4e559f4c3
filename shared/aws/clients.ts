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

export function createClients(env: NodeJS.ProcessEnv = process.env): Clients {
  const dynamo = new DynamoDBClient({});
  const emulated = customS3Endpoint(env);
  const built: Clients = {
    dynamo,
    doc: DynamoDBDocumentClient.from(dynamo, {
      marshallOptions: { removeUndefinedValues: true, convertEmptyValues: false },
    }),
    sqs: new SQSClient({}),
    s3: new S3Client(
      emulated
        ? {
            // Emulators serve path-style only; and with default checksums a streamed body goes
            // aws-chunked, which s3rver would store with the chunk markers inside the object.
            forcePathStyle: true,
            requestChecksumCalculation: 'WHEN_REQUIRED',
            responseChecksumValidation: 'WHEN_REQUIRED',
          }
        : {},
    ),
    lambda: new LambdaClient({}),
  };
  // Counted by the request meter whenever one is installed (benchmarks, the fault suite); the IAM
  // recorder joins only while recording (tests), so deployed clients carry no extra middleware.
  const record = recordDir(env);
  for (const client of [built.dynamo, built.sqs, built.s3, built.lambda]) {
    meterClient(client);
    faultClient(client);
    if (record) recordClient(client, record);
  }
  return built;
}

let shared: { key: string; clients: Clients } | undefined;

/**
 * Clients reused across invocations of a warm Lambda (connection reuse is most of their cost);
 * rebuilt if the endpoints change, as when a local stack restarts in the same process.
 */
export function clients(): Clients {
  const key = Object.entries(process.env)
    .filter(([name]) => name.startsWith('AWS_ENDPOINT_URL') || name === 'AWS_REGION')
    .sort()
    .join(';');
  if (shared?.key !== key) shared = { key, clients: createClients() };
  return shared.clients;
}
