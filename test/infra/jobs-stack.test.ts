import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { demoFunction, demoProcessors } from '../../examples/processors/catalog.js';
import { buildApp } from '../../infra/app.js';
import { type Template as CfnTemplate, check, readDeployment } from '../../infra/iam-check.js';
import { physicalName, resources } from '../../shared/resources.js';

const context = JSON.parse(readFileSync(join(import.meta.dirname, '../../cdk.json'), 'utf8')).context;

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation properties of any shape.
type Resource = { Type: string; Properties: Record<string, any> };

function synth(env: string, overrides: Record<string, unknown> = {}) {
  // Skip esbuild bundling here: `npm run synth` bundles; these tests read the template.
  const environments = { ...context.environments, [env]: { ...context.environments[env], ...overrides } };
  const app = new App({ context: { ...context, environments, env, 'aws:cdk:bundling-stacks': [] } });
  const stack = buildApp(app, env);
  // Runs cdk-nag's AwsSolutions checks: any unacknowledged finding throws.
  app.synth({ validateOnSynthesis: true });
  const template = Template.fromStack(stack);
  const all = template.toJSON().Resources as Record<string, Resource>;
  const ofType = (type: string) => Object.entries(all).filter(([, r]) => r.Type === type);
  return { template, all, ofType };
}

let dev: ReturnType<typeof synth>;
let prod: ReturnType<typeof synth>;
/** dev with the optional settings flipped: no reserved concurrency, CORS for one origin, a work-queue window. */
let devUnset: ReturnType<typeof synth>;

beforeAll(() => {
  dev = synth('dev');
  prod = synth('prod');
  devUnset = synth('dev', {
    apiReservedConcurrency: null,
    workerReservedConcurrency: null,
    corsOrigins: ['https://app.example.com'],
    batchingWindowSeconds: { work: 2 },
  });
}, 90_000);

// biome-ignore lint/suspicious/noExplicitAny: a Ref or GetAtt.
const refId = (value: any): string | undefined => value?.['Fn::GetAtt']?.[0] ?? value?.Ref;

describe('the CDK stack', () => {
  it('creates exactly the declared tables: keys, indexes, TTL, on demand, PITR, encryption', () => {
    for (const table of Object.values(resources.tables)) {
      dev.template.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
        TableName: physicalName('dev', table.name),
        KeySchema: [
          { AttributeName: table.partitionKey.name, KeyType: 'HASH' },
          { AttributeName: table.sortKey.name, KeyType: 'RANGE' },
        ],
        BillingMode: 'PAY_PER_REQUEST',
        TimeToLiveSpecification: { AttributeName: table.ttlAttribute, Enabled: true },
        SSESpecification: { SSEEnabled: true, SSEType: 'KMS' },
        GlobalSecondaryIndexes: table.indexes.length
          ? table.indexes.map((index) => ({
              IndexName: index.name,
              KeySchema: [
                { AttributeName: index.partitionKey.name, KeyType: 'HASH' },
                { AttributeName: index.sortKey.name, KeyType: 'RANGE' },
              ],
              Projection: {
                ProjectionType: index.projection,
                ...(index.include ? { NonKeyAttributes: index.include } : {}),
              },
            }))
          : Match.absent(),
        Replicas: [Match.objectLike({ PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true } })],
      });
    }
    expect(dev.ofType('AWS::DynamoDB::GlobalTable')).toHaveLength(Object.keys(resources.tables).length);
  });

  it('creates exactly the declared queues, encrypted, TLS-only, each working queue with its DLQ', () => {
    const queues = dev.ofType('AWS::SQS::Queue');
    expect(queues).toHaveLength(Object.keys(resources.queues).length);
    const byName = new Map<string, Record<string, unknown>>(
      queues.map(([id, q]) => [q.Properties.QueueName, { id, ...q.Properties }]),
    );
    for (const queue of Object.values(resources.queues)) {
      const created = byName.get(physicalName('dev', queue.name));
      expect(created, queue.name).toBeDefined();
      expect(created?.VisibilityTimeout).toBe(queue.visibilityTimeoutSeconds);
      expect(created?.MessageRetentionPeriod).toBe(queue.retentionSeconds);
      expect(created?.SqsManagedSseEnabled).toBe(true);
      if ('deadLetter' in queue) {
        const dlq = byName.get(
          physicalName('dev', resources.queues[queue.deadLetter.queue as keyof typeof resources.queues].name),
        );
        expect(created?.RedrivePolicy).toEqual({
          deadLetterTargetArn: { 'Fn::GetAtt': [dlq?.id, 'Arn'] },
          maxReceiveCount: queue.deadLetter.maxReceiveCount,
        });
        expect(queue.deadLetter.maxReceiveCount).toBeGreaterThanOrEqual(5);
      }
    }
    for (const [, policy] of dev.ofType('AWS::SQS::QueuePolicy')) {
      expect(JSON.stringify(policy.Properties.PolicyDocument)).toContain('"aws:SecureTransport":"false"');
    }
    expect(dev.ofType('AWS::SQS::QueuePolicy')).toHaveLength(queues.length);
  });

  it('feeds each queue to its function with partial batch responses and a visibility ≥ 6× the timeout', () => {
    const mappings = dev.ofType('AWS::Lambda::EventSourceMapping');
    expect(mappings).toHaveLength(resources.eventSources.length);
    for (const [, mapping] of mappings) {
      expect(mapping.Properties.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
      const queue = dev.all[refId(mapping.Properties.EventSourceArn) as string]!;
      const fn = dev.all[refId(mapping.Properties.FunctionName) as string]!;
      expect(queue.Properties.VisibilityTimeout).toBeGreaterThanOrEqual(6 * fn.Properties.Timeout);
    }
  });

  it('gives each event source its declared batching window unless cdk.json overrides it, always stated', () => {
    const windows = (synthed: typeof dev) =>
      Object.fromEntries(
        synthed.ofType('AWS::Lambda::EventSourceMapping').map(([, mapping]) => {
          const queueName = synthed.all[refId(mapping.Properties.EventSourceArn) as string]!.Properties.QueueName;
          const source = resources.eventSources.find(
            (s) => physicalName('dev', resources.queues[s.queue].name) === queueName,
          );
          return [source?.queue, mapping.Properties.MaximumBatchingWindowInSeconds];
        }),
      );
    const declared = Object.fromEntries(resources.eventSources.map((s) => [s.queue, s.maximumBatchingWindowSeconds]));
    expect(windows(dev)).toEqual(declared);
    expect(windows(devUnset)).toEqual({ ...declared, work: 2 });
  });

  it('blocks public access to the bucket, encrypts it, enforces TLS and expires old objects', () => {
    dev.template.hasResourceProperties('AWS::S3::Bucket', {
      LoggingConfiguration: Match.objectLike({ LogFilePrefix: 'data/' }),
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }),
          Match.objectLike({ Prefix: 'inputs/', ExpirationInDays: 7 }),
          // Batch outputs live as long as the jobs linking to them (7 days) plus the 30-day margin.
          Match.objectLike({ Prefix: 'outputs/', ExpirationInDays: 37 }),
        ]),
      },
    });
  });

  it('runs every function on Node 24, arm64, with the declared timeouts', () => {
    for (const [key, fn] of Object.entries(resources.functions)) {
      dev.template.hasResourceProperties('AWS::Lambda::Function', {
        FunctionName: physicalName('dev', key),
        Runtime: 'nodejs24.x',
        Architectures: ['arm64'],
        Timeout: fn.timeoutSeconds,
      });
    }
  });

  it('serves every declared route, with IAM auth in dev and JWT in prod (health and the OpenAPI document stay open)', () => {
    const open = ['GET /v1/health', 'HEAD /v1/health', 'GET /v1/openapi.json'];
    for (const env of [dev, prod]) {
      const routes = env.ofType('AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties);
      expect(routes.map((r) => r.RouteKey).sort()).toEqual([...resources.api.routes].sort());
      for (const route of routes) {
        const expected = open.includes(route.RouteKey) ? 'NONE' : env === dev ? 'AWS_IAM' : 'JWT';
        expect(route.AuthorizationType, route.RouteKey).toBe(expected);
      }
    }
    prod.template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'JWT',
      JwtConfiguration: { Issuer: 'https://auth.example.com/', Audience: ['jobs-api'] },
    });
    dev.template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      DefaultRouteSettings: { ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 },
      AccessLogSettings: Match.objectLike({ DestinationArn: Match.anyValue() }),
    });
  });

  it('grants no IAM action on every resource, and lets the worker invoke only the configured processors', () => {
    for (const env of [dev, prod]) {
      const statements = env
        .ofType('AWS::IAM::Policy')
        .flatMap(
          ([, p]) => p.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown }[],
        );
      expect(statements.length).toBeGreaterThan(0);
      for (const statement of statements) {
        const resourcesOf = ([] as unknown[]).concat(statement.Resource);
        expect(resourcesOf, JSON.stringify(statement.Action)).not.toContain('*');
        expect(([] as string[]).concat(statement.Action).some((a) => a.endsWith(':*'))).toBe(false);
      }
    }
    const invoke = prod
      .ofType('AWS::IAM::Policy')
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown }[])
      .filter((s) => ([] as string[]).concat(s.Action).includes('lambda:InvokeFunction'));
    expect(invoke).toHaveLength(1);
    expect(JSON.stringify(invoke[0]?.Resource)).toContain(':function:ledger-post');
    // Only the daily sweeper may Scan; nothing on a request path does.
    const scanners = prod
      .ofType('AWS::IAM::Policy')
      .filter(([, p]) => JSON.stringify(p.Properties.PolicyDocument).includes('dynamodb:Scan'))
      .map(([id]) => id);
    expect(scanners).toHaveLength(1);
    expect(scanners[0]).toMatch(/^Fnsweeper/);
  });

  it("lets the API function make Find's calls: Query on each declared index, BatchGetItem on the table", () => {
    const table = `arn:aws:dynamodb:us-east-1:000000000000:table/${physicalName('local', resources.tables.jobs.name)}`;
    const find = [
      ...resources.tables.jobs.indexes.map((index) => `dynamodb:Query ${table}/index/${index.name}`),
      `dynamodb:BatchGetItem ${table}`,
    ].map((call) => {
      const [action, resource] = call.split(' ') as [string, string];
      return { function: physicalName('local', 'api'), action, resource };
    });
    for (const env of [dev, prod]) {
      const deployment = readDeployment(env.template.toJSON() as CfnTemplate, {
        env: env === dev ? 'dev' : 'prod',
        stage: 'local',
        region: 'us-east-1',
        account: '000000000000',
      });
      expect(check(deployment, find).denied.map((d) => `${d.call.action} ${d.call.resource}`)).toEqual([]);
    }
  });

  it('reserves concurrency for the API (a cap) and the worker (a guarantee), as cdk.json says, or none', () => {
    const reserved = (env: typeof dev, key: string) =>
      env
        .ofType('AWS::Lambda::Function')
        .find(([, f]) => f.Properties.FunctionName === physicalName(env === prod ? 'prod' : 'dev', key))?.[1].Properties
        .ReservedConcurrentExecutions;
    expect([reserved(dev, 'api'), reserved(dev, 'worker')]).toEqual([20, 5]);
    expect([reserved(prod, 'api'), reserved(prod, 'worker')]).toEqual([200, 100]);
    // The others share the account's unreserved pool.
    expect(reserved(dev, 'submitConsumer')).toBeUndefined();
    for (const [, fn] of devUnset.ofType('AWS::Lambda::Function')) {
      expect(fn.Properties.ReservedConcurrentExecutions).toBeUndefined();
    }
    // Fewer reserved than the event source may start would throttle it.
    expect(() => synth('dev', { workerReservedConcurrency: 4 })).toThrow(/workerReservedConcurrency/);
  });

  it('has no CORS rule on the bucket unless origins are configured, then PUT/GET for those only', () => {
    const cors = (env: ReturnType<typeof synth>) =>
      env
        .ofType('AWS::S3::Bucket')
        .map(([, b]) => b.Properties.CorsConfiguration)
        .filter(Boolean);
    expect(cors(dev)).toEqual([]);
    expect(cors(prod)).toEqual([]);
    expect(cors(devUnset)).toEqual([
      {
        CorsRules: [
          {
            AllowedMethods: ['PUT', 'GET'],
            AllowedOrigins: ['https://app.example.com'],
            AllowedHeaders: ['content-type'],
            MaxAge: 3600,
          },
        ],
      },
    ]);
    expect(() => synth('dev', { corsOrigins: ['*'] })).toThrow(/origin/);
  });

  it('differs between environments as cdk.json says', () => {
    const worker = (env: typeof dev) =>
      env.ofType('AWS::Lambda::Function').find(([, f]) => String(f.Properties.FunctionName).endsWith('-worker'))?.[1];
    expect(worker(dev)?.Properties.MemorySize).toBe(512);
    expect(worker(prod)?.Properties.MemorySize).toBe(1024);
    expect(worker(dev)?.Properties.Environment.Variables.POWERTOOLS_LOG_LEVEL).toBe('DEBUG');
    expect(
      dev.ofType('AWS::Lambda::Function').some(([, f]) => String(f.Properties.FunctionName).includes('demo-echo')),
    ).toBe(true);
    expect(
      prod.ofType('AWS::Lambda::Function').some(([, f]) => String(f.Properties.FunctionName).includes('demo-')),
    ).toBe(false);
    prod.template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'oncall@example.com',
    });
    expect(dev.ofType('AWS::SNS::Subscription')).toHaveLength(0);
  });

  it('deploys every demo processor as the local stack runs it: function, kind, timeout, attempts, backoff', () => {
    const worker = dev
      .ofType('AWS::Lambda::Function')
      .find(([, f]) => String(f.Properties.FunctionName).endsWith('-worker'))?.[1];
    // PROCESSORS names each demo function by reference: put the referenced names back in.
    const value = worker?.Properties.Environment.Variables.PROCESSORS;
    const parts: (string | { Ref: string })[] = typeof value === 'string' ? [value] : value['Fn::Join'][1];
    const text = parts
      .map((part) => (typeof part === 'string' ? part : dev.all[part.Ref]?.Properties.FunctionName))
      .join('');
    const registry = JSON.parse(text) as Record<string, Record<string, unknown>>;
    for (const demo of demoProcessors) {
      const functionName = physicalName('dev', demoFunction(demo));
      expect(registry[demo.name], demo.name).toEqual({
        target: { type: 'lambda', functionName },
        kind: demo.kind,
        timeoutSeconds: demo.timeoutSeconds,
        maxAttempts: demo.maxAttempts,
        backoff: demo.backoff,
      });
      dev.template.hasResourceProperties('AWS::Lambda::Function', {
        FunctionName: functionName,
        Handler: `index.${demo.export}`,
        Timeout: demo.timeoutSeconds,
      });
    }
  });

  it('alarms on dead letters, worker errors, message age and API 5xx, and outputs what callers need', () => {
    const alarms = dev.ofType('AWS::CloudWatch::Alarm').map(([, a]) => a.Properties.AlarmName);
    expect(alarms.sort()).toEqual(
      ['Api5xx', 'SubmitDlqNotEmpty', 'WorkDlqNotEmpty', 'WorkQueueAge', 'WorkerErrors']
        .map((n) => `jobs-dev-${n}`)
        .sort(),
    );
    for (const [, alarm] of dev.ofType('AWS::CloudWatch::Alarm')) expect(alarm.Properties.AlarmActions).toHaveLength(1);
    const outputs = Object.keys(dev.template.toJSON().Outputs);
    for (const output of ['ApiUrl', 'SubmitQueueUrl', 'BucketName', 'TableName']) expect(outputs).toContain(output);
  });
});
