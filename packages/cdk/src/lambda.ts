import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  Duration,
  aws_iam as iam,
  aws_lambda as lambda,
  aws_logs as logs,
  aws_lambda_nodejs as nodejs,
  type RemovalPolicy,
  Stack,
} from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { BUNDLING } from './bundling.js';

/**
 * Where a function's code comes from: the bundles the package ships (built from `functions/*` by
 * its build), or the repository's TypeScript sources, bundled by NodejsFunction at synth.
 */
export type FunctionSource =
  | { type: 'bundle'; directory: string; export: string }
  | { type: 'source'; projectRoot: string; entry: string; export: string };

export interface JobsFunctionOptions {
  functionName: string;
  source: FunctionSource;
  timeoutSeconds: number;
  memoryMb: number;
  reservedConcurrency?: number;
  logRetentionDays: number;
  removalPolicy: RemovalPolicy;
  environment: Record<string, string>;
}

/**
 * One function as the job manager deploys each of its own: Node 24 on arm64, JSON logs to a log
 * group of its own, and a role of its own that may write only there (grants are added by the caller).
 */
export function jobsFunction(scope: Construct, id: string, options: JobsFunctionOptions): lambda.Function {
  const logGroup = new logs.LogGroup(scope, `${id}-Logs`, {
    logGroupName: `/aws/lambda/${options.functionName}`,
    retention: options.logRetentionDays as logs.RetentionDays,
    removalPolicy: options.removalPolicy,
  });
  // Our own role instead of AWSLambdaBasicExecutionRole: logs go to this function's group only.
  const role = new iam.Role(scope, `${id}-Role`, {
    roleName: `${options.functionName}-${Stack.of(scope).region}`.slice(0, 64),
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
  });
  role.addToPolicy(
    new iam.PolicyStatement({
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [logGroup.logGroupArn],
    }),
  );
  const common = {
    role,
    functionName: options.functionName,
    runtime: lambda.Runtime.NODEJS_24_X,
    architecture: lambda.Architecture.ARM_64,
    memorySize: options.memoryMb,
    ...(options.reservedConcurrency ? { reservedConcurrentExecutions: options.reservedConcurrency } : {}),
    timeout: Duration.seconds(options.timeoutSeconds),
    logGroup,
    loggingFormat: lambda.LoggingFormat.JSON,
    environment: { NODE_OPTIONS: '--enable-source-maps', ...options.environment },
  };
  const { source } = options;
  if (source.type === 'bundle') {
    if (!existsSync(join(source.directory, BUNDLING.outfile))) {
      throw new Error(
        `No function bundle in ${source.directory}: build the package (npm run build) or build from sources`,
      );
    }
    return new lambda.Function(scope, id, {
      ...common,
      code: lambda.Code.fromAsset(source.directory),
      handler: `index.${source.export}`,
    });
  }
  return new nodejs.NodejsFunction(scope, id, {
    ...common,
    entry: join(source.projectRoot, source.entry),
    handler: source.export,
    projectRoot: source.projectRoot,
    depsLockFilePath: join(source.projectRoot, 'package-lock.json'),
    bundling: {
      format: BUNDLING.format as nodejs.OutputFormat,
      minify: BUNDLING.minify,
      sourceMap: BUNDLING.sourceMap,
      target: BUNDLING.target,
      mainFields: [...BUNDLING.mainFields],
      externalModules: [...BUNDLING.externalModules],
      banner: BUNDLING.banner,
      // No alias option of its own: esbuild's flag, resolved in projectRoot as esbuildOptions does.
      esbuildArgs: { '--alias': Object.entries(BUNDLING.alias).map(([from, to]) => `${from}=${to}`) },
      logLevel: nodejs.LogLevel.ERROR,
    },
  });
}
