import { join } from 'node:path';
import {
  aws_apigatewayv2 as apigw,
  aws_apigatewayv2_authorizers as authorizers,
  type CfnElement,
  CfnOutput,
  aws_cloudwatch as cloudwatch,
  aws_cloudwatch_actions as cwActions,
  Duration,
  aws_dynamodb as dynamodb,
  aws_events as events,
  aws_iam as iam,
  aws_apigatewayv2_integrations as integrations,
  aws_lambda as lambda,
  aws_logs as logs,
  aws_lambda_nodejs as nodejs,
  RemovalPolicy,
  Stack,
  type StackProps,
  aws_s3 as s3,
  aws_secretsmanager as secretsmanager,
  aws_sns as sns,
  aws_lambda_event_sources as sources,
  aws_sqs as sqs,
  aws_sns_subscriptions as subscriptions,
  aws_events_targets as targets,
  Validations,
} from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { DEMO_MEMORY_MB, demoFunction, demoProcessors, demoRegistry } from '../examples/processors/catalog.js';
import { OBJECT_PREFIXES } from '../shared/core/keys.js';
import { ProcessorRegistry, type ProcessorTarget } from '../shared/core/processors.js';
import {
  type BucketKey,
  type FunctionKey,
  physicalName,
  type QueueKey,
  resourceEnv,
  resources,
  type TableKey,
} from '../shared/resources.js';
import type { EnvironmentConfig } from './config.js';

const ROOT = join(import.meta.dirname, '..');

/** Task payloads outlive their job items by this much: a job may run for a while before it ends. */
const PAYLOAD_MARGIN_DAYS = 30;

export interface JobsStackProps extends StackProps {
  envName: string;
  config: EnvironmentConfig;
}

/**
 * One environment of the job manager: everything in shared/resources.ts (tables, queues, bucket,
 * functions, routes, event sources, schedules) plus what only AWS has: IAM, alarms, a dashboard.
 */
export class JobsStack extends Stack {
  readonly tables = {} as Record<TableKey, dynamodb.TableV2>;
  readonly queues = {} as Record<QueueKey, sqs.Queue>;
  readonly buckets = {} as Record<BucketKey, s3.Bucket>;
  readonly functions = {} as Record<FunctionKey, nodejs.NodejsFunction>;
  readonly api: apigw.HttpApi;
  readonly alarmTopic: sns.Topic;
  private readonly batchInputPrefix: string;

  constructor(scope: Construct, id: string, props: JobsStackProps) {
    super(scope, id, props);
    const { envName, config } = props;
    this.batchInputPrefix = config.batchInputPrefix;
    const name = (logical: string) => physicalName(envName, logical);
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
    const processors: Record<string, unknown> = { ...config.processors };
    if (config.demoProcessors) {
      const functions = new Map(
        demoProcessors.map((demo) => [
          demo.name,
          this.nodeFunction(`Demo-${demo.export}`, {
            functionName: name(demoFunction(demo)),
            entry: join(ROOT, demo.module),
            handler: demo.export,
            timeoutSeconds: demo.timeoutSeconds,
            memoryMb: DEMO_MEMORY_MB,
            config,
            environment: {},
          }),
        ]),
      );
      Object.assign(
        processors,
        demoRegistry((demo) => functions.get(demo.name)?.functionName as string),
      );
    }
    // The same validation the worker runs at cold start, now at synth time.
    const registry = ProcessorRegistry.fromJson(JSON.stringify(processors), {
      workerTimeoutSeconds: resources.functions.worker.timeoutSeconds,
      maxReceiveCount: resources.queues.work.deadLetter.maxReceiveCount,
    });
    const processorTargets = registry.names().map((n) => registry.get(n)?.target as ProcessorTarget);

    // --- Functions ----------------------------------------------------------------------------------
    const environment: Record<string, string> = {
      STAGE: envName,
      PROCESSORS: JSON.stringify(processors),
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
      this.functions[key] = this.nodeFunction(`Fn-${key}`, {
        functionName: name(key),
        entry: join(ROOT, fn.entry),
        handler: 'handler',
        timeoutSeconds: fn.timeoutSeconds,
        memoryMb: config.memoryMb[key] ?? fn.memoryMb,
        reservedConcurrency: reserved[key] ?? undefined,
        config,
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
    const inputBuckets = config.batchInputBuckets.map((b) => `arn:${this.partition}:s3:::${b}/*`);
    // Job items are read and replaced by every function that moves a job; tallies (UpdateItem,
    // Query) are a batch's chunk counts, committed by chunks, read by job views and the sweeper.
    allow('api', ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query'], jobItems);
    allow('api', ['dynamodb:Query'], findIndexes);
    allow('api', ['dynamodb:BatchGetItem'], jobItems);
    allow('worker', ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query'], jobItems);
    allow('deadLetters', ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query'], jobItems);
    // Submits only: creates jobs (and their idempotency items), reads the one a duplicate names.
    allow('submitConsumer', ['dynamodb:GetItem', 'dynamodb:PutItem'], jobItems);
    // Reads unfinished jobs (and a stalled batch's tallies) to re-send lost messages, writing the
    // tasks' new tickets first (and, after a restart, lapsing the leases of workers that are gone).
    allow('sweeper', ['dynamodb:Scan', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'], jobItems);
    for (const fn of ['api', 'worker', 'submitConsumer', 'deadLetters', 'sweeper'] as const) {
      allow(fn, ['sqs:SendMessage'], [this.queues.work.queueArn]);
    }
    // Reads: our own batch files and payloads, and the input files batches may name — the stack's
    // bucket under its input prefix (checked at submit with HeadObject, read by the plan and by
    // chunks, a dead-lettered chunk's too) and the listed buckets.
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
    const lambdaTargets = processorTargets.filter((t) => t.type === 'lambda');
    if (lambdaTargets.length) {
      allow(
        'worker',
        ['lambda:InvokeFunction'],
        lambdaTargets.map((t) =>
          t.functionName.startsWith('arn:')
            ? t.functionName
            : `arn:${this.partition}:lambda:${this.region}:${this.account}:function:${t.functionName}`,
        ),
      );
    }
    const secretNames = processorTargets.flatMap((t) => (t.type === 'http' && t.secretName ? [t.secretName] : []));
    if (secretNames.length) {
      allow(
        'worker',
        ['secretsmanager:GetSecretValue'],
        // Secrets Manager appends six random characters to a secret's ARN.
        secretNames.map(
          (s) => `arn:${this.partition}:secretsmanager:${this.region}:${this.account}:secret:${s}-??????`,
        ),
      );
    }

    // --- Event sources and schedules ----------------------------------------------------------------
    for (const source of resources.eventSources) {
      this.functions[source.function].addEventSource(
        new sources.SqsEventSource(this.queues[source.queue], {
          batchSize: source.batchSize,
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
    this.alarmTopic = new sns.Topic(this, 'Alarms', {
      topicName: name('alarms'),
      enforceSSL: true,
      masterKey: undefined,
    });
    if (config.alarmEmail) this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(config.alarmEmail));
    Validations.of(this.alarmTopic).acknowledge({
      id: 'AwsSolutions::AwsSolutions-SNS2',
      reason: 'Alarm notifications carry no job data (metric names and thresholds only); SSL is enforced.',
    });
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

    new CfnOutput(this, 'ApiUrl', { value: this.api.apiEndpoint });
    new CfnOutput(this, 'SubmitQueueUrl', { value: this.queues.submit.queueUrl });
    new CfnOutput(this, 'BucketName', { value: bucket.bucketName });
    new CfnOutput(this, 'TableName', { value: table.tableName });

    this.suppressFindings();
  }

  private nodeFunction(
    id: string,
    options: {
      functionName: string;
      entry: string;
      handler: string;
      timeoutSeconds: number;
      memoryMb: number;
      reservedConcurrency?: number;
      config: EnvironmentConfig;
      environment: Record<string, string>;
    },
  ): nodejs.NodejsFunction {
    const logGroup = new logs.LogGroup(this, `${id}-Logs`, {
      logGroupName: `/aws/lambda/${options.functionName}`,
      retention: options.config.logRetentionDays as logs.RetentionDays,
      removalPolicy: options.config.removal === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
    });
    // Our own role instead of AWSLambdaBasicExecutionRole: logs go to this function's group only.
    const role = new iam.Role(this, `${id}-Role`, {
      roleName: `${options.functionName}-${this.region}`.slice(0, 64),
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
    );
    return new nodejs.NodejsFunction(this, id, {
      role,
      functionName: options.functionName,
      entry: options.entry,
      handler: options.handler,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: options.memoryMb,
      ...(options.reservedConcurrency ? { reservedConcurrentExecutions: options.reservedConcurrency } : {}),
      timeout: Duration.seconds(options.timeoutSeconds),
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      environment: { NODE_OPTIONS: '--enable-source-maps', ...options.environment },
      projectRoot: ROOT,
      depsLockFilePath: join(ROOT, 'package-lock.json'),
      bundling: {
        format: nodejs.OutputFormat.ESM,
        minify: true,
        sourceMap: true,
        target: 'node24',
        mainFields: ['module', 'main'],
        // Bundle the AWS SDK too: tree-shaken and pinned, rather than the runtime's copy.
        externalModules: [],
        banner: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);",
        logLevel: nodejs.LogLevel.ERROR,
      },
    });
  }

  /** Every acknowledged finding says why a reviewer can accept it. */
  private suppressFindings(): void {
    const bucketArn = `<${this.getLogicalId(this.buckets.data.node.defaultChild as CfnElement)}.Arn>`;
    for (const fn of Object.values(this.functions)) {
      if (this.batchInputPrefix) {
        Validations.of(fn.role as iam.IRole).acknowledge({
          id: `AwsSolutions::AwsSolutions-IAM5[Resource::${bucketArn}/${this.batchInputPrefix}*]`,
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
