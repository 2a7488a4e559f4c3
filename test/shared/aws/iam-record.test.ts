import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, describe, expect, it } from 'vitest';
import { createClients } from '../../../shared/aws/clients.js';
import { asFunction, iamCalls, queueArn } from '../../../shared/aws/iam-record.js';

const where = { region: 'us-east-1', account: '000000000000' };
const table = 'arn:aws:dynamodb:us-east-1:000000000000:table/jobs-local-jobs';

describe('the IAM action and resource of an SDK command', () => {
  it('names the index a Query reads, and every table of a batch or a transaction', () => {
    expect(
      iamCalls('DynamoDBClient', 'QueryCommand', { TableName: 'jobs-local-jobs', IndexName: 'byOwner' }, where),
    ).toEqual([{ action: 'dynamodb:Query', resource: `${table}/index/byOwner` }]);
    expect(iamCalls('DynamoDBClient', 'QueryCommand', { TableName: 'jobs-local-jobs' }, where)).toEqual([
      { action: 'dynamodb:Query', resource: table },
    ]);
    expect(
      iamCalls('DynamoDBClient', 'BatchGetItemCommand', { RequestItems: { 'jobs-local-jobs': {}, other: {} } }, where),
    ).toEqual([
      { action: 'dynamodb:BatchGetItem', resource: table },
      { action: 'dynamodb:BatchGetItem', resource: 'arn:aws:dynamodb:us-east-1:000000000000:table/other' },
    ]);
    expect(
      iamCalls(
        'DynamoDBClient',
        'TransactWriteItemsCommand',
        {
          TransactItems: [
            { Put: { TableName: 'jobs-local-jobs' } },
            { ConditionCheck: { TableName: 'jobs-local-jobs' } },
          ],
        },
        where,
      ).map((c) => c.action),
    ).toEqual(['dynamodb:PutItem', 'dynamodb:ConditionCheckItem']);
  });

  it('turns a queue URL into its ARN, from AWS and from an emulator', () => {
    expect(queueArn('https://sqs.eu-west-1.amazonaws.com/123456789012/jobs-dev-work', where)).toBe(
      'arn:aws:sqs:eu-west-1:123456789012:jobs-dev-work',
    );
    expect(queueArn('http://127.0.0.1:9324/queue/jobs-local-work', where)).toBe(
      'arn:aws:sqs:us-east-1:000000000000:jobs-local-work',
    );
    expect(iamCalls('SQSClient', 'DeleteMessageBatchCommand', { QueueUrl: 'http://h/000000000000/q' }, where)).toEqual([
      { action: 'sqs:DeleteMessage', resource: 'arn:aws:sqs:us-east-1:000000000000:q' },
    ]);
  });

  it('maps S3 object calls to the key and bucket calls to the bucket, multipart parts to PutObject', () => {
    expect(iamCalls('S3Client', 'UploadPartCommand', { Bucket: 'b', Key: 'outputs/j/x' }, where)).toEqual([
      { action: 's3:PutObject', resource: 'arn:aws:s3:::b/outputs/j/x' },
    ]);
    expect(iamCalls('S3Client', 'HeadObjectCommand', { Bucket: 'b', Key: 'k' }, where)).toEqual([
      { action: 's3:GetObject', resource: 'arn:aws:s3:::b/k' },
    ]);
    expect(iamCalls('S3Client', 'ListObjectsV2Command', { Bucket: 'b', Prefix: 'p/' }, where)).toEqual([
      { action: 's3:ListBucket', resource: 'arn:aws:s3:::b' },
    ]);
  });

  it('names Lambda functions and secrets by ARN, and flags what it cannot map', () => {
    expect(iamCalls('LambdaClient', 'InvokeCommand', { FunctionName: 'jobs-local-demo-echo' }, where)).toEqual([
      {
        action: 'lambda:InvokeFunction',
        resource: 'arn:aws:lambda:us-east-1:000000000000:function:jobs-local-demo-echo',
      },
    ]);
    expect(iamCalls('SecretsManagerClient', 'GetSecretValueCommand', { SecretId: 'jobs/crm' }, where)).toEqual([
      {
        action: 'secretsmanager:GetSecretValue',
        resource: 'arn:aws:secretsmanager:us-east-1:000000000000:secret:jobs/crm-xxxxxx',
      },
    ]);
    expect(iamCalls('KinesisClient', 'PutRecordCommand', {}, where)[0]?.unmapped).toBe(true);
  });
});

describe('recording', () => {
  const dir = mkdtempSync(join(tmpdir(), 'iam-record-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('records presigned URLs as the calls they sign, for the function that signed them, and nothing outside one', async () => {
    // Presigning is local: no request is sent.
    Object.assign(process.env, {
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9',
    });
    const { s3 } = createClients({ ...process.env, IAM_RECORD_DIR: dir });
    await getSignedUrl(s3, new PutObjectCommand({ Bucket: 'jobs-local-data', Key: 'outside' }));
    await asFunction('jobs-local-api', async () => {
      await getSignedUrl(s3, new PutObjectCommand({ Bucket: 'jobs-local-data', Key: 'inputs/j/upload' }));
      await getSignedUrl(s3, new GetObjectCommand({ Bucket: 'jobs-local-data', Key: 'outputs/j/results.jsonl' }));
    });
    const lines = readdirSync(dir).flatMap((f) =>
      readFileSync(join(dir, f), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    );
    expect(lines.map((l) => [l.function, l.action, l.resource, l.presigned])).toEqual([
      ['jobs-local-api', 's3:PutObject', 'arn:aws:s3:::jobs-local-data/inputs/j/upload', true],
      ['jobs-local-api', 's3:GetObject', 'arn:aws:s3:::jobs-local-data/outputs/j/results.jsonl', true],
    ]);
  });
});
