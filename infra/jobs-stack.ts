import { join } from 'node:path';
import { CfnOutput, aws_lambda as lambda, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { DEMO_MEMORY_MB, demoFunction, demoProcessors } from '../examples/processors/catalog.js';
import { JobManager, JobManagerCode } from '../packages/cdk/src/job-manager.js';
import { jobsFunction } from '../packages/cdk/src/lambda.js';
import type { JobProcessor } from '../packages/cdk/src/processors.js';
import { type ProcessorConfig, ProcessorRegistry } from '../shared/core/processors.js';
import { physicalName, resources } from '../shared/resources.js';
import type { EnvironmentConfig } from './config.js';

const ROOT = join(import.meta.dirname, '..');

export interface JobsStackProps extends StackProps {
  envName: string;
  config: EnvironmentConfig;
}

/**
 * One environment of the job manager: the JobManager construct (packages/cdk) with cdk.json's
 * settings, its code bundled from this repository's sources, plus the demo processors where an
 * environment deploys them. The construct's id `Default` adds nothing to logical ids, so they are
 * the ones the stack had before the construct existed.
 */
export class JobsStack extends Stack {
  readonly jobs: JobManager;

  constructor(scope: Construct, id: string, props: JobsStackProps) {
    super(scope, id, props);
    const { envName, config } = props;
    const { account: _account, region: _region, processors: configured, demoProcessors: demos, ...settings } = config;

    // Checked as the worker checks PROCESSORS, before it is taken apart: a misspelt field fails here.
    ProcessorRegistry.fromJson(JSON.stringify(configured), {
      workerTimeoutSeconds: resources.functions.worker.timeoutSeconds,
      maxReceiveCount: resources.queues.work.deadLetter.maxReceiveCount,
    });
    const processors: Record<string, JobProcessor> = {};
    for (const [name, entry] of Object.entries(configured)) processors[name] = this.fromRegistry(name, entry);
    if (demos) {
      for (const demo of demoProcessors) {
        processors[demo.name] = {
          function: jobsFunction(this, `Demo-${demo.export}`, {
            functionName: physicalName(envName, demoFunction(demo)),
            source: { type: 'source', projectRoot: ROOT, entry: demo.module, export: demo.export },
            timeoutSeconds: demo.timeoutSeconds,
            memoryMb: DEMO_MEMORY_MB,
            logRetentionDays: config.logRetentionDays,
            removalPolicy: config.removal === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
            environment: {},
          }),
          kind: demo.kind,
          timeoutSeconds: demo.timeoutSeconds,
          maxAttempts: demo.maxAttempts,
          backoff: demo.backoff,
        };
      }
    }

    this.jobs = new JobManager(this, 'Default', {
      ...settings,
      stage: envName,
      processors,
      code: JobManagerCode.fromSource(ROOT),
    });

    new CfnOutput(this, 'ApiUrl', { value: this.jobs.apiUrl });
    new CfnOutput(this, 'SubmitQueueUrl', { value: this.jobs.submitQueue.queueUrl });
    new CfnOutput(this, 'BucketName', { value: this.jobs.bucket.bucketName });
    new CfnOutput(this, 'TableName', { value: this.jobs.table.tableName });
  }

  /** A processor of cdk.json (the PROCESSORS format) as the construct takes it. */
  private fromRegistry(name: string, entry: unknown): JobProcessor {
    const { target, ...options } = entry as ProcessorConfig;
    if (target?.type === 'lambda') {
      const fn = target.functionName.startsWith('arn:')
        ? lambda.Function.fromFunctionArn(this, `Processor-${name}`, target.functionName)
        : lambda.Function.fromFunctionName(this, `Processor-${name}`, target.functionName);
      return { function: fn, ...options };
    }
    if (target?.type === 'http' && target.secretEnv === undefined) {
      const { url, secretName, allowPrivateNetwork } = target;
      return {
        url,
        ...(secretName !== undefined ? { secret: secretName } : {}),
        ...(allowPrivateNetwork !== undefined ? { allowPrivateNetwork } : {}),
        ...options,
      };
    }
    throw new Error(
      `Processor ${name}: a deployed processor is a Lambda function or an HTTP endpoint whose secret is in Secrets Manager (secretName)`,
    );
  }
}
