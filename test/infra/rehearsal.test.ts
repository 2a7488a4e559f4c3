import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetBucketEncryptionCommand, S3Client } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Rehearsal, rehearse } from '../../infra/rehearsal.js';
import { type EngineProcess, startMoto } from '../../local/engines.js';
import { physicalName, resources } from '../../shared/resources.js';

/**
 * Deploys the dev stack to moto's CloudFormation and reads what it created back through the AWS
 * APIs. What moto cannot create or ignores (API Gateway v2, alarms, queue/bucket/topic policies;
 * TTL, PITR, table SSE and bucket lifecycle settings) is covered by test/infra/jobs-stack.test.ts.
 */
describe.runIf(process.env.TEST_PROFILE === 'aws-local')('deploy rehearsal on moto', () => {
  let moto: EngineProcess;
  let result: Rehearsal;
  const aws = () => ({
    endpoint: moto.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });

  beforeAll(async () => {
    moto = await startMoto();
    result = await rehearse('dev', moto.endpoint);
  }, 180_000);
  afterAll(() => moto?.stop());

  it('reaches CREATE_COMPLETE with the functions’ bundled code', () => {
    expect(result.status).toBe('CREATE_COMPLETE');
    expect(result.outputs.TableName).toBe(physicalName('dev', resources.tables.jobs.name));
    expect(result.skippedTypes).toEqual([
      'AWS::ApiGatewayV2::Api',
      'AWS::ApiGatewayV2::Integration',
      'AWS::ApiGatewayV2::Route',
      'AWS::ApiGatewayV2::Stage',
      'AWS::CloudWatch::Alarm',
      'AWS::S3::BucketPolicy',
      'AWS::SNS::TopicPolicy',
      'AWS::SQS::QueuePolicy',
    ]);
  });

  it('created the declared table: keys and indexes', async () => {
    const dynamo = new DynamoDBClient(aws());
    const declared = resources.tables.jobs;
    const { Table } = await dynamo.send(new DescribeTableCommand({ TableName: result.outputs.TableName }));
    expect(Table?.KeySchema).toEqual([
      { AttributeName: declared.partitionKey.name, KeyType: 'HASH' },
      { AttributeName: declared.sortKey.name, KeyType: 'RANGE' },
    ]);
    expect(Table?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
    expect(
      (Table?.GlobalSecondaryIndexes ?? []).map((index) => ({
        name: index.IndexName,
        keys: index.KeySchema,
        projection: index.Projection?.ProjectionType,
      })),
    ).toEqual(
      declared.indexes.map((index) => ({
        name: index.name,
        keys: [
          { AttributeName: index.partitionKey.name, KeyType: 'HASH' },
          { AttributeName: index.sortKey.name, KeyType: 'RANGE' },
        ],
        projection: index.projection,
      })),
    );
    dynamo.destroy();
  });

  it('created the declared queues: visibility, retention, encryption and redrive', async () => {
    const sqs = new SQSClient(aws());
    for (const queue of Object.values(resources.queues)) {
      const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: physicalName('dev', queue.name) }));
      const { Attributes = {} } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['All'] }));
      expect(Number(Attributes.VisibilityTimeout), queue.name).toBe(queue.visibilityTimeoutSeconds);
      expect(Number(Attributes.MessageRetentionPeriod), queue.name).toBe(queue.retentionSeconds);
      expect(Attributes.SqsManagedSseEnabled, queue.name).toBe('true');
      if ('deadLetter' in queue) {
        const redrive = JSON.parse(Attributes.RedrivePolicy ?? '{}');
        const dlqName = physicalName(
          'dev',
          resources.queues[queue.deadLetter.queue as keyof typeof resources.queues].name,
        );
        expect(redrive.deadLetterTargetArn).toMatch(new RegExp(`:${dlqName}$`));
        expect(Number(redrive.maxReceiveCount)).toBe(queue.deadLetter.maxReceiveCount);
      }
    }
    sqs.destroy();
  });

  it('created the data bucket, encrypted', async () => {
    const s3 = new S3Client({ ...aws(), forcePathStyle: true });
    const { ServerSideEncryptionConfiguration } = await s3.send(
      new GetBucketEncryptionCommand({ Bucket: result.outputs.BucketName }),
    );
    expect(ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault?.SSEAlgorithm).toBe(
      'AES256',
    );
    s3.destroy();
  });
});
