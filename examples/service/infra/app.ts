import { fileURLToPath } from 'node:url';
import { JobManager } from '@serverless-jobs/cdk';
import { App, CfnOutput, Duration, aws_lambda as lambda, aws_lambda_nodejs as nodejs, Stack } from 'aws-cdk-lib';

/**
 * The invoice service in AWS: its two processors as Lambda functions, bundled from the very
 * modules the local stack runs (`functions.local.json`), and a job manager that may invoke exactly
 * those two. `npx cdk synth` (or `deploy`) in this folder runs it.
 */
const app = new App();
const stack = new Stack(app, 'InvoiceService', {
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});

const processor = (id: string, module: string) =>
  new nodejs.NodejsFunction(stack, id, {
    entry: fileURLToPath(new URL(`../src/processors/${module}`, import.meta.url)),
    handler: 'handler',
    runtime: lambda.Runtime.NODEJS_24_X,
    architecture: lambda.Architecture.ARM_64,
    memorySize: 256,
    // The registry's timeoutSeconds defaults to this; processors.local.json says the same for the local stack.
    timeout: Duration.seconds(30),
    bundling: { format: nodejs.OutputFormat.ESM, minify: true, sourceMap: true },
  });
const lines = processor('InvoiceLines', 'invoice-lines.ts');
const render = processor('RenderInvoice', 'render-invoice.ts');

const backoff = { type: 'fixed', delaySeconds: 1 } as const;
const jobs = new JobManager(stack, 'Jobs', {
  stage: 'invoices',
  processors: {
    'invoice.lines': { function: lines, kind: 'chunks', maxAttempts: 3, backoff },
    'invoice.render': { function: render, maxAttempts: 3, backoff },
  },
});

new CfnOutput(stack, 'JobsApiUrl', { value: jobs.apiUrl });
app.synth();
