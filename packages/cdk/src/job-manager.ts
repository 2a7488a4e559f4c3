import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  aws_apigatewayv2 as apigw,
  aws_apigatewayv2_authorizers as authorizers,
  type CfnElement,
  aws_cloudwatch as cloudwatch,
  aws_cloudwatch_actions as cwActions,
  Duration,
  aws_dynamodb as dynamodb,
  aws_events as events,
  aws_iam as iam,
  aws_apigatewayv2_integrations as integrations,
  type aws_lambda as lambda,
  aws_logs as logs,
  RemovalPolicy,
  Stack,
  aws_s3 as s3,
  aws_secretsmanager as secretsmanager,
  aws_sns as sns,
  aws_lambda_event_sources as sources,
  aws_sqs as sqs,
  aws_sns_subscriptions as subscriptions,
  Token,
  aws_events_targets as targets,
  Validations,
} from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { OBJECT_PREFIXES } from '../../../shared/core/keys.js';
import {
  type BucketKey,
  type FunctionKey,
  physicalName,
  type QueueKey,
  resourceEnv,
  resources,
  type TableKey,
} from '../../../shared/resources.js';
import { type FunctionSource, jobsFunction } from './lambda.js';
import { type JobProcessor, registerProcessors } from './processors.js';
import { type JobManagerSettings, resolveSettings } from './settings.js';

/** Task payloads outlive their job items by this much: a job may run for a while before it ends. */
const PAYLOAD_MARGIN_DAYS = 30;

/** Where the job manager's own functions (API, worker, …) get their code. */
export class JobManagerCode {
  /** The bundles this package ships, built from the server's sources with the settings of ./bundling.ts. */
  static bundled(directory = fileURLToPath(new URL('../lambda/', import.meta.url))): JobManagerCode {
    return new JobManagerCode((key) => ({ type: 'bundle', directory: join(directory, key), export: 'handler' }));
  }

  /** The server's TypeScript sources in a checkout of its repository, bundled by NodejsFunction at synth. */
  static fromSource(projectRoot: string): JobManagerCode {
    return new JobManagerCode((key) => ({
      type: 'source',
      projectRoot,
      entry: resources.functions[key].entry,
      export: 'handler',
    }));
  }

  private constructor(
    /** @internal */
    readonly _source: (key: FunctionKey) => FunctionSource,
  ) {}
}

export interface JobManagerProps extends JobManagerSettings {
  /**
   * Part of every physical name (`jobs-{stage}-work`, `jobs-{stage}-api`, …) and the functions'
   * STAGE: two job managers in one account and region need two stages. [the stack's name]
   */
  stage?: string;
  /** The processors submitters may name, each a Lambda function or an HTTPS endpoint. */
  processors?: Record<string, JobProcessor>;
  /** [JobManagerCode.bundled()] */
  code?: JobManagerCode;
  /** Alarms notify this topic instead of one the construct creates. */
  alarmTopic?: sns.ITopic;
}

const STAGE = /^[A-Za-z0-9-]{1,40}$/;

/**
 * The job manager: everything in shared/resources.ts (tables, queues, bucket, functions, routes,
 * event sources, schedules) plus what only AWS has: IAM, alarms, a dashboard.
 */
export class JobManager extends Construct {
  readonly stage: string;
  readonly tables = {} as Record<TableKey, dynamodb.TableV2>;
  readonly queues = {} as Record<QueueKey, sqs.Queue>;
  readonly buckets = {} as Record<BucketKey, s3.Bucket>;
  readonly functions = {} as Record<FunctionKey, lambda.Function>;
  readonly api: apigw.HttpApi;
  /** The API's base URL (`https://{id}.execute-api.{region}.amazonaws.com`); routes are under /v1. */
  readonly apiUrl: string;
  /** Where services enqueue submissions (the queue contract); see grantSubmit. */
  readonly submitQueue: sqs.IQueue;
  /** The jobs table and the data bucket, for metrics and backups: reading them bypasses the API's owner checks. */
  readonly table: dynamodb.ITableV2;
  readonly bucket: s3.IBucket;
  readonly alarmTopic: sns.ITopic;
  /** The settings in force, defaults filled in. */
  readonly settings: Required<JobManagerSettings>;

  constructor(scope: Construct, id: string, props: JobManagerProps = {}) {
    super(scope, id);
    const stack = Stack.of(this);
    const { stage = stack.stackName, processors = {}, code = JobManagerCode.bundled(), alarmTopic, ...rest } = props;
    if (Token.isUnresolved(stage) || !STAGE.test(stage)) {
      throw new Error(`JobManager stage '${stage}': 1 to 40 letters, digits or hyphens (set the stage prop)`);
    }
    this.stage = stage;
    const config = resolveSettings(rest);
    this.settings = config;
    const name = (logical: string) => physicalName(stage, logical);
    const removalPolicy = config.removal === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;

    // --- Data -----------------------------------------------------------------------------------
    for (const [key, table] of Object.entries(resources.tables) as [TableKey, (typeof resources.tables)[TableKey]][]) {
      this.tables[key] = new dynamodb.TableV2(this, `Table-${key}`, {
        tableName: name(table.name),
        partitionKey: { name: table.partitionKey.name, type: attributeType(table.partitionKey.type) },
        sortKey: { name: table.sortKey.name, type: attributeType(table.sortKey.type) },
        billing: dynamodb.Billing.onDemand(),
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        encryption: dynamodb.TableEncryptionV2.awsManagedKey(),
        timeToLiveAttribute: table.ttlAttribute,
        globalSecondaryIndexes: table.indexes.map((index) => ({
          indexName: index.name,
          partitionKey: { name: index.partitionKey.name, type: attributeType(index.partitionKey.type) },
          sortKey: { name: index.sortKey.name, type: attributeType(index.sortKey.type) },
          projectionType: dynamodb.ProjectionType[index.projection],
          ...(index.include ? { nonKeyAttributes: index.include } : {}),
        })),
        removalPolicy,
      });
    }

    const queueEntries = Object.entries(resources.queues) as [QueueKey, (typeof resources.queues)[QueueKey]][];
    // Dead-letter queues first: the others name them.
    queueEntries.sort(([, a], [, b]) => Number('deadLetter' in a) - Number('deadLetter' in b));
    for (const [key, queue] of queueEntries) {
      this.queues[key] = new sqs.Queue(this, `Queue-${key}`, {
        queueName: name(queue.name),
        visibilityTimeout: Duration.seconds(queue.visibilityTimeoutSeconds),
        retentionPeriod: Duration.seconds(queue.retentionSeconds),
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        ...('deadLetter' in queue
          ? {
              deadLetterQueue: {
                queue: this.queues[queue.deadLetter.queue as QueueKey],
                maxReceiveCount: queue.deadLetter.maxReceiveCount,
              },
            }
          : {}),
      });
    }

    const accessLogs = new s3.Bucket(this, 'AccessLogs', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
      lifecycleRules: [{ expiration: Duration.days(config.logRetentionDays) }],
      removalPolicy,
      autoDeleteObjects: removalPolicy === RemovalPolicy.DESTROY,
    });
    Validations.of(accessLogs).acknowledge({
      id: 'AwsSolutions::AwsSolutions-S1',
      reason: 'This is the access-log bucket; logging it to itself would loop.',
    });
    for (const [key, bucket] of Object.entries(resources.buckets) as [
      BucketKey,
      (typeof resources.buckets)[BucketKey],
    ][]) {
      this.buckets[key] = new s3.Bucket(this, `Bucket-${key}`, {
        // No fixed name: bucket names are global across accounts, so CloudFormation picks a unique one.
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        encryption: s3.BucketEncryption.S3_MANAGED,
        enforceSSL: true,
        serverAccessLogsBucket: accessLogs,
        serverAccessLogsPrefix: `${bucket.name}/`,
        lifecycleRules: [
          { abortIncompleteMultipartUploadAfter: Duration.days(1) },
          ...bucket.expiringPrefixes.map(({ prefix, retention }) => ({
            prefix,
            expiration: Duration.days(
              retention === 'jobs'
                ? Math.max(config.jobRetentionDays, ...Object.values(config.jobRetentionDaysByType)) +
                    PAYLOAD_MARGIN_DAYS
                : config.objectRetentionDays,
            ),
          })),
        ],
        // Only browsers need CORS, and only for the presigned upload (PUT) and download (GET) URLs.
        ...(config.corsOrigins.length
          ? {
              cors: [
                {
                  allowedMethods: [s3.HttpMethods.PUT, s3.HttpMethods.GET],
                  allowedOrigins: config.corsOrigins,
                  // A typed body (text/csv) makes the browser ask to send Content-Type.
                  allowedHeaders: ['content-type'],
                  maxAge: 3600,
                },
              ],
            }
          : {}),
        removalPolicy,
        autoDeleteObjects: removalPolicy === RemovalPolicy.DESTROY,
      });
    }

    // --- Processors -------------------------------------------------------------------------------
    const registered = registerProcessors(this, processors, {
      workerTimeoutSeconds: resources.functions.worker.timeoutSeconds,
      maxReceiveCount: resources.queues.work.deadLetter.maxReceiveCount,
    });

    // --- Functions ----------------------------------------------------------------------------------
    const environment: Record<string, string> = {
      STAGE: stage,
      PROCESSORS: JSON.stringify(registered.registry),
      JOB_RETENTION_DAYS: String(config.jobRetentionDays),
      JOB_RETENTION_DAYS_BY_TYPE: JSON.stringify(config.jobRetentionDaysByType),
      SEARCH_INDEX: config.searchIndex ? 'on' : 'off',
      POWERTOOLS_LOG_LEVEL: config.logLevel,
      BATCH_INPUT_BUCKETS: config.batchInputBuckets.join(','),
      BATCH_INPUT_PREFIX: config.batchInputPrefix,
      BATCH_INPUT_MAX_BYTES: String(config.batchInputMaxBytes),
      ADMIN_PRINCIPALS: config.adminPrincipals.join(','),
      TRUSTED_SUBMITTERS: config.trustedSubmitters.join(','),
      ...(config.auth.mode === 'jwt'
        ? {
            JWT_OWNER_CLAIM: config.auth.ownerClaim,
            ...(config.auth.adminScope ? { ADMIN_SCOPE: config.auth.adminScope } : {}),
          }
        : {}),
    };
    for (const [key, table] of Object.entries(this.tables))
      environment[resourceEnv.table(key as TableKey)] = table.tableName;
    for (const [key, queue] of Object.entries(this.queues))
      environment[resourceEnv.queueUrl(key as QueueKey)] = queue.queueUrl;
    for (const [key, bucket] of Object.entries(this.buckets))
      environment[resourceEnv.bucket(key as BucketKey)] = bucket.bucketName;

    const reserved: Partial<Record<FunctionKey, number | null>> = {
      api: config.apiReservedConcurrency,
      worker: config.workerReservedConcurrency,
    };
    for (const [key, fn] of Object.entries(resources.functions) as [
      FunctionKey,
      (typeof resources.functions)[FunctionKey],
    ][]) {
      this.functions[key] = jobsFunction(this, `Fn-${key}`, {
        functionName: name(key),
        source: code._source(key),
        timeoutSeconds: fn.timeoutSeconds,
        memoryMb: config.memoryMb[key] ?? fn.memoryMb,
        reservedConcurrency: reserved[key] ?? undefined,
        logRetentionDays: config.logRetentionDays,
        removalPolicy,
        environment: { ...environment, POWERTOOLS_SERVICE_NAME: `jobs-${key}` },
      });
    }

    // --- Least privilege: each function gets exactly the calls its code makes ---------------------
    const table = this.tables.jobs;
    const bucket = this.buckets.data;
    const allow = (fn: FunctionKey, actions: string[], resourceArns: string[]) =>
      this.functions[fn].addToRolePolicy(new iam.PolicyStatement({ actions, resources: resourceArns }));
    // What each function calls is recorded while the suites run and checked against these roles
    // (infra/iam-check.ts, part of `npm test`); grants the suites cannot exercise are listed there.
    const jobItems = [table.tableArn];
    // Find (GET /v1/jobs, /v1/tasks): a Query per index for keys, then BatchGetItem for the jobs.
    const findIndexes = resources.tables.jobs.indexes.map((index) => `${table.tableArn}/index/${index.name}`);
    const objects = (...kinds: (keyof typeof OBJECT_PREFIXES)[]) =>
      kinds.map((kind) => bucket.arnForObjects(`${OBJECT_PREFIXES[kind]}*`));
    const inputBuckets = config.batchInputBuckets.map((b) => `arn:${stack.partition}:s3:::${b}/*`);
    // Job items are read and replaced by every function that moves a job; tallies (UpdateItem,
    // Query) are a batch's chunk counts, committed by chunks, read by job views and the sweeper.
    allow('api', ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query'], jobItems);
    allow('api', ['dynamodb:Query'], findIndexes);
    allow('api', ['dynamodb:BatchGetItem'], jobItems);
    // The two that submit take back (DeleteItem, conditioned on its version) a job just written
    // whose first messages could not be sent.
    allow('api', ['dynamodb:DeleteItem'], jobItems);
    allow('worker', ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query'], jobItems);
    allow('deadLetters', ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query'], jobItems);
    // Submits only: creates jobs (and their idempotency items), reads the one a duplicate names.
    allow('submitConsumer', ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:DeleteItem'], jobItems);
    // Reads unfinished jobs (and a stalled batch's tallies) to re-send lost messages, writing the
    // tasks' new tickets first (and, after a restart, lapsing the leases of workers that are gone).
    allow('sweeper', ['dynamodb:Scan', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'], jobItems);
    for (const fn of ['api', 'worker', 'submitConsumer', 'deadLetters', 'sweeper'] as const) {
      allow(fn, ['sqs:SendMessage'], [this.queues.work.queueArn]);
    }
    // Reads: our own batch files and payloads, and the input files batches may name — the
    // construct's bucket under its input prefix (checked at submit with HeadObject, read by the plan
    // and by chunks, a dead-lettered chunk's too) and the listed buckets.
    const ownInputs = config.batchInputPrefix ? [bucket.arnForObjects(`${config.batchInputPrefix}*`)] : [];
    for (const fn of ['api', 'worker', 'deadLetters'] as const) {
      allow(fn, ['s3:GetObject'], [...objects('inputs', 'outputs', 'payloads'), ...ownInputs, ...inputBuckets]);
    }
    // The submit consumer only checks a named input file (HeadObject) before it writes the batch.
    allow('submitConsumer', ['s3:GetObject'], [...ownInputs, ...inputBuckets]);
    // Writes: appended rows and uploads under inputs/ (the worker's plan spills big chunks there
    // too), chunk outcomes and outputs under outputs/, large values under payloads/.
    allow('api', ['s3:PutObject'], objects('inputs', 'payloads'));
    allow('submitConsumer', ['s3:PutObject'], objects('inputs', 'payloads'));
    allow('worker', ['s3:PutObject'], objects('inputs', 'outputs', 'payloads'));
    allow('deadLetters', ['s3:PutObject'], objects('outputs', 'payloads'));

    // Signs the rows route's cursors; read once per warm API function (see shared/aws/wiring.ts).
    const cursorKey = new secretsmanager.Secret(this, 'CursorKey', {
      description: 'HMAC key of the jobs API cursors',
      generateSecretString: { passwordLength: 48, excludePunctuation: true },
      removalPolicy,
    });
    // Powertools' getSecret calls GetSecretValue only (grantRead would add DescribeSecret).
    allow('api', ['secretsmanager:GetSecretValue'], [cursorKey.secretArn]);
    this.functions.api.addEnvironment('CURSOR_SECRET_ARN', cursorKey.secretArn);
    Validations.of(cursorKey).acknowledge({
      id: 'AwsSolutions::AwsSolutions-SMG4',
      reason: 'A cursor-signing key: rotating it only invalidates open cursors; no rotation Lambda is worth its cost.',
    });
    // The worker extends a long task's lease; the event source mapping deletes what it finished.
    allow('worker', ['sqs:ChangeMessageVisibility'], [this.queues.work.queueArn]);
    allow('submitConsumer', ['sqs:SendMessage'], [this.queues.submitDlq.queueArn]);
    // Backs a failed submission off (seconds) instead of leaving it to the queue's visibility timeout.
    allow('submitConsumer', ['sqs:ChangeMessageVisibility'], [this.queues.submit.queueArn]);
    allow('sweeper', ['dynamodb:Scan'], [table.tableArn]);
    // Exactly the processors' functions (no qualifier wildcard: the registry names functions, not
    // versions) and their signing secrets.
    if (registered.functionArns.length) allow('worker', ['lambda:InvokeFunction'], registered.functionArns);
    if (registered.secretArns.length) allow('worker', ['secretsmanager:GetSecretValue'], registered.secretArns);

    // --- Event sources and schedules ----------------------------------------------------------------
    for (const source of resources.eventSources) {
      this.functions[source.function].addEventSource(
        new sources.SqsEventSource(this.queues[source.queue], {
          batchSize: source.batchSize,
          // Always stated, 0 too: a window an environment drops must go back to 0 on update.
          maxBatchingWindow: Duration.seconds(config.batchingWindowSeconds[source.queue]),
          reportBatchItemFailures: true,
          maxConcurrency: source.queue === 'work' ? config.workerMaxConcurrency : Math.max(2, source.maxConcurrency),
        }),
      );
    }
    for (const [scheduleName, schedule] of Object.entries(resources.schedules)) {
      new events.Rule(this, `Schedule-${scheduleName}`, {
        ruleName: name(scheduleName),
        schedule: events.Schedule.rate(Duration.seconds(schedule.rateSeconds)),
        targets: [new targets.LambdaFunction(this.functions[schedule.function as FunctionKey])],
      });
    }

    // --- HTTP API -------------------------------------------------------------------------------
    const accessLogGroup = new logs.LogGroup(this, 'ApiAccessLogs', {
      logGroupName: `/aws/apigateway/${name('api')}`,
      retention: config.logRetentionDays as logs.RetentionDays,
      removalPolicy,
    });
    const authorizer =
      config.auth.mode === 'jwt'
        ? new authorizers.HttpJwtAuthorizer('Jwt', config.auth.issuer, { jwtAudience: config.auth.audience })
        : new authorizers.HttpIamAuthorizer();
    this.api = new apigw.HttpApi(this, 'Api', {
      apiName: name('api'),
      createDefaultStage: false,
      defaultAuthorizer: authorizer,
    });
    new apigw.HttpStage(this, 'ApiStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle: config.apiThrottle,
      accessLogSettings: { destination: new apigw.LogGroupLogDestination(accessLogGroup) },
    });
    const integration = new integrations.HttpLambdaIntegration(
      'ApiIntegration',
      this.functions[resources.api.function],
      {
        payloadFormatVersion: apigw.PayloadFormatVersion.VERSION_2_0,
      },
    );
    for (const routeKey of resources.api.routes) {
      const [method, path] = routeKey === '$default' ? ['ANY', '$default'] : routeKey.split(' ');
      if (routeKey === '$default') {
        new apigw.HttpRoute(this, 'Route-default', {
          httpApi: this.api,
          routeKey: apigw.HttpRouteKey.DEFAULT,
          integration,
          authorizer,
        });
        continue;
      }
      const open = resources.api.publicRoutes.includes(routeKey);
      const [route] = this.api.addRoutes({
        path: path as string,
        methods: [method as apigw.HttpMethod],
        integration,
        // Health and the OpenAPI document answer without credentials: uptime checks and API tools have none.
        ...(open ? { authorizer: new apigw.HttpNoneAuthorizer() } : {}),
      });
      if (open && route) {
        Validations.of(route).acknowledge({
          id: 'AwsSolutions::AwsSolutions-APIG4',
          reason: `${routeKey} is public on purpose: it holds no job or caller data, and uptime checks and API tools carry no credentials.`,
        });
      }
    }

    // --- Operations -----------------------------------------------------------------------------------
    if (alarmTopic) {
      this.alarmTopic = alarmTopic;
    } else {
      const topic = new sns.Topic(this, 'Alarms', {
        topicName: name('alarms'),
        enforceSSL: true,
        masterKey: undefined,
      });
      Validations.of(topic).acknowledge({
        id: 'AwsSolutions::AwsSolutions-SNS2',
        reason: 'Alarm notifications carry no job data (metric names and thresholds only); SSL is enforced.',
      });
      this.alarmTopic = topic;
    }
    if (config.alarmEmail) this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(config.alarmEmail));
    const alarm = (id: string, metric: cloudwatch.IMetric, threshold: number, description: string) => {
      const created = new cloudwatch.Alarm(this, id, {
        alarmName: name(id),
        alarmDescription: description,
        metric,
        threshold,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      created.addAlarmAction(new cwActions.SnsAction(this.alarmTopic));
      return created;
    };
    alarm(
      'WorkDlqNotEmpty',
      this.queues.workDlq.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5) }),
      1,
      'Task messages were dead-lettered: their tasks end FAILED (poison).',
    );
    alarm(
      'SubmitDlqNotEmpty',
      this.queues.submitDlq.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5) }),
      1,
      'Queued submissions were refused; each message carries its reason.',
    );
    alarm(
      'WorkerErrors',
      this.functions.worker.metricErrors({ period: Duration.minutes(5) }),
      5,
      'The worker function itself is failing (not processors).',
    );
    alarm(
      'WorkQueueAge',
      this.queues.work.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(5) }),
      900,
      'Tasks wait more than 15 minutes to start.',
    );
    alarm(
      'Api5xx',
      new cloudwatch.Metric({
        namespace: 'AWS/ApiGateway',
        metricName: '5xx',
        dimensionsMap: { ApiId: this.api.apiId },
        statistic: 'Sum',
        period: Duration.minutes(5),
      }),
      5,
      'The API answered 5xx: always a bug or an outage.',
    );
    new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: name('dashboard'),
      widgets: [
        [
          new cloudwatch.GraphWidget({
            title: 'Work queue',
            left: [
              this.queues.work.metricApproximateNumberOfMessagesVisible(),
              this.queues.work.metricApproximateNumberOfMessagesNotVisible(),
            ],
          }),
          new cloudwatch.GraphWidget({
            title: 'Oldest task message (s)',
            left: [this.queues.work.metricApproximateAgeOfOldestMessage()],
          }),
          new cloudwatch.GraphWidget({
            title: 'Dead letters',
            left: [
              this.queues.workDlq.metricApproximateNumberOfMessagesVisible(),
              this.queues.submitDlq.metricApproximateNumberOfMessagesVisible(),
            ],
          }),
        ],
        Object.values(this.functions).map(
          (fn) =>
            new cloudwatch.GraphWidget({
              title: fn.node.id,
              left: [fn.metricInvocations(), fn.metricErrors()],
              right: [fn.metricDuration()],
            }),
        ),
      ],
    });

    this.apiUrl = this.api.apiEndpoint;
    this.submitQueue = this.queues.submit;
    this.table = table;
    this.bucket = bucket;
    this.suppressFindings();
  }

  /**
   * Lets `grantee` enqueue submissions (SendMessage on the submit queue). Their owner is the
   * sender's identity, unless the sender is one of `trustedSubmitters`.
   */
  grantSubmit(grantee: iam.IGrantable): iam.Grant {
    return this.submitQueue.grantSendMessages(grantee);
  }

  /** Lets `grantee` call every route of the API (execute-api:Invoke); with `auth.mode: 'jwt'` IAM grants mean nothing. */
  grantApi(grantee: iam.IGrantable): iam.Grant {
    if (this.settings.auth.mode !== 'iam') {
      throw new Error('grantApi: this API authorizes JWTs, not IAM principals');
    }
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['execute-api:Invoke'],
      resourceArns: [this.api.arnForExecuteApi()],
    });
  }

  /**
   * Lets `grantee` drop batch input files into the bucket under `batchInputPrefix` (PutObject
   * only), where a batch may then name them as its input.
   */
  grantBatchInputUpload(grantee: iam.IGrantable): iam.Grant {
    if (!this.settings.batchInputPrefix) {
      throw new Error("grantBatchInputUpload: batchInputPrefix is '' (no input prefix in the construct's bucket)");
    }
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:PutObject'],
      resourceArns: [this.bucket.arnForObjects(`${this.settings.batchInputPrefix}*`)],
    });
  }

  /** Every acknowledged finding says why a reviewer can accept it. */
  private suppressFindings(): void {
    const bucketArn = `<${Stack.of(this).getLogicalId(this.buckets.data.node.defaultChild as CfnElement)}.Arn>`;
    const inputPrefix = this.settings.batchInputPrefix;
    for (const fn of Object.values(this.functions)) {
      if (inputPrefix) {
        Validations.of(fn.role as iam.IRole).acknowledge({
          id: `AwsSolutions::AwsSolutions-IAM5[Resource::${bucketArn}/${inputPrefix}*]`,
          reason:
            'Read only: batches may name the files services drop under the input prefix (README, security model).',
        });
      }
      const { inputs, outputs, payloads } = OBJECT_PREFIXES;
      Validations.of(fn.role as iam.IRole).acknowledge({
        id: `AwsSolutions::AwsSolutions-IAM5[Resource::${bucketArn}/${payloads}*]`,
        reason: `Task payload objects are keyed by job and task id under ${payloads}, known only at run time.`,
      });
      for (const prefix of [inputs, outputs]) {
        Validations.of(fn.role as iam.IRole).acknowledge({
          id: `AwsSolutions::AwsSolutions-IAM5[Resource::${bucketArn}/${prefix}*]`,
          reason: `Batch files are keyed by job id under ${prefix}, known only at run time.`,
        });
      }
    }
  }
}

function attributeType(type: 'S' | 'N'): dynamodb.AttributeType {
  return type === 'S' ? dynamodb.AttributeType.STRING : dynamodb.AttributeType.NUMBER;
}
