import { join } from 'node:path';
import { App, Duration, aws_iam as iam, aws_lambda as lambda, Stack, aws_sns as sns, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { ProcessorRegistry } from '../../../shared/core/processors.js';
import { resources } from '../../../shared/resources.js';
import { JobManager, JobManagerCode, type JobManagerProps } from '../src/index.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
// biome-ignore lint/suspicious/noExplicitAny: CloudFormation of any shape.
type Json = any;

/** A stack in an app that skips bundling (the template is what these tests read). */
function appAndStack(nag = false) {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  if (nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  const stack = new Stack(app, 'Platform', { env: { account: '111111111111', region: 'eu-west-1' } });
  return { app, stack };
}

const fromSource = JobManagerCode.fromSource(ROOT);

function handler(stack: Stack, id: string, timeout?: Duration) {
  return new lambda.Function(stack, id, {
    runtime: lambda.Runtime.NODEJS_24_X,
    handler: 'index.handler',
    code: lambda.Code.fromInline('export const handler = async () => ({ status: "ok" });'),
    ...(timeout ? { timeout } : {}),
  });
}

function statementsOf(template: Template, roleLogicalId: string) {
  const policies = Object.values(template.findResources('AWS::IAM::Policy')) as Json[];
  return policies
    .filter((p) => p.Properties.Roles.some((r: Json) => r.Ref === roleLogicalId))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Json[]);
}

function workerOf(template: Template) {
  const found = template.findResources('AWS::Lambda::Function', {
    Properties: { FunctionName: 'jobs-platform-worker' },
  });
  const worker = Object.values(found)[0] as Json;
  return { worker, role: worker.Properties.Role['Fn::GetAtt'][0] as string };
}

/** PROCESSORS with each `Ref` to a function put back as that function's logical id. */
function processorsOf(fn: Json): Record<string, Json> {
  const value = fn.Properties.Environment.Variables.PROCESSORS;
  const parts: (string | Json)[] = typeof value === 'string' ? [value] : value['Fn::Join'][1];
  return JSON.parse(parts.map((part) => (typeof part === 'string' ? part : `<${part.Ref}>`)).join(''));
}

describe('the JobManager construct', () => {
  it('grants the worker invoke on exactly the two processor functions, and PROCESSORS registers both', () => {
    const { stack } = appAndStack();
    const render = handler(stack, 'Render', Duration.seconds(60));
    const lines = handler(stack, 'Lines');
    new JobManager(stack, 'Jobs', {
      stage: 'platform',
      code: fromSource,
      processors: {
        'invoice.render': { function: render },
        'invoice.lines': { function: lines, kind: 'chunks', timeoutSeconds: 20, maxAttempts: 5 },
      },
    });
    const template = Template.fromStack(stack);
    const ids = {
      render: stack.getLogicalId(render.node.defaultChild as lambda.CfnFunction),
      lines: stack.getLogicalId(lines.node.defaultChild as lambda.CfnFunction),
    };
    const { worker, role } = workerOf(template);

    const invokes = Object.values(template.findResources('AWS::IAM::Policy')).flatMap((p: Json) =>
      (p.Properties.PolicyDocument.Statement as Json[]).filter((s) =>
        [s.Action].flat().includes('lambda:InvokeFunction'),
      ),
    );
    expect(invokes).toHaveLength(1);
    expect(statementsOf(template, role)).toContainEqual(invokes[0]);
    expect(invokes[0].Resource).toEqual([{ 'Fn::GetAtt': [ids.render, 'Arn'] }, { 'Fn::GetAtt': [ids.lines, 'Arn'] }]);

    const registry = {
      'invoice.render': { target: { type: 'lambda', functionName: `<${ids.render}>` }, timeoutSeconds: 60 },
      'invoice.lines': {
        target: { type: 'lambda', functionName: `<${ids.lines}>` },
        kind: 'chunks',
        timeoutSeconds: 20,
        maxAttempts: 5,
      },
    };
    expect(processorsOf(worker)).toEqual(registry);
    // Every function reads the same registry (the API refuses a submission naming no processor).
    const functions = Object.values(template.findResources('AWS::Lambda::Function')) as Json[];
    const ours = functions.filter((f) => String(f.Properties.FunctionName ?? '').startsWith('jobs-platform-'));
    expect(ours).toHaveLength(Object.keys(resources.functions).length);
    for (const fn of ours) expect(processorsOf(fn)).toEqual(registry);
    // …in the format the worker parses at cold start.
    const names = ProcessorRegistry.fromJson(JSON.stringify(registry), {
      workerTimeoutSeconds: resources.functions.worker.timeoutSeconds,
      maxReceiveCount: resources.queues.work.deadLetter.maxReceiveCount,
    }).names();
    expect(names).toEqual(['invoice.render', 'invoice.lines']);
  });

  it('names a function of another account by its ARN and lets the worker read an HTTP processor’s secret only', () => {
    const { stack } = appAndStack();
    const arn = 'arn:aws:lambda:us-east-2:222222222222:function:ledger-post';
    new JobManager(stack, 'Jobs', {
      stage: 'platform',
      code: fromSource,
      processors: {
        'ledger.post': { function: lambda.Function.fromFunctionArn(stack, 'Ledger', arn), timeoutSeconds: 30 },
        'crm.notify': { url: 'https://crm.example.com/hooks/jobs', secret: 'jobs/crm-signing' },
      },
    });
    const template = Template.fromStack(stack);
    const { worker, role } = workerOf(template);
    expect(processorsOf(worker)).toEqual({
      'ledger.post': { target: { type: 'lambda', functionName: arn }, timeoutSeconds: 30 },
      'crm.notify': {
        target: { type: 'http', url: 'https://crm.example.com/hooks/jobs', secretName: 'jobs/crm-signing' },
        timeoutSeconds: 30,
      },
    });
    const statements = statementsOf(template, role);
    expect(statements.filter((s) => [s.Action].flat().includes('lambda:InvokeFunction'))).toEqual([
      { Action: 'lambda:InvokeFunction', Effect: 'Allow', Resource: arn },
    ]);
    expect(statements.filter((s) => [s.Action].flat().some((a: string) => a.startsWith('secretsmanager:')))).toEqual([
      {
        Action: 'secretsmanager:GetSecretValue',
        Effect: 'Allow',
        // Secrets Manager appends six characters to the name.
        Resource: {
          'Fn::Join': [
            '',
            [
              'arn:',
              { Ref: 'AWS::Partition' },
              ':secretsmanager:eu-west-1:111111111111:secret:jobs/crm-signing-??????',
            ],
          ],
        },
      },
    ]);
  });

  it('refuses at synth a processor the worker would refuse at cold start, or one whose timeout it cannot know', () => {
    const build = (processors: JobManagerProps['processors']) => {
      const { stack } = appAndStack();
      return () => new JobManager(stack, 'Jobs', { stage: 'platform', code: fromSource, processors });
    };
    const slow = (stack: Stack) => handler(stack, 'Slow', Duration.minutes(15));
    expect(() => {
      const { stack } = appAndStack();
      new JobManager(stack, 'Jobs', { stage: 'p', code: fromSource, processors: { slow: { function: slow(stack) } } });
    }).toThrow(/timeoutSeconds 900 \+ 15 s margin exceeds the worker's 300 s/);
    expect(build({ 'bad name!': { url: 'https://example.com/' } })).toThrow(/Processor configuration/);
    expect(() => {
      const { stack } = appAndStack();
      const imported = lambda.Function.fromFunctionName(stack, 'Imported', 'elsewhere');
      new JobManager(stack, 'Jobs', { stage: 'p', code: fromSource, processors: { x: { function: imported } } });
    }).toThrow(/give timeoutSeconds/);
    expect(() => {
      const { stack } = appAndStack();
      new JobManager(stack, 'Jobs', { stage: 'p', code: fromSource, workerReservedConcurrency: 2 });
    }).toThrow(/workerReservedConcurrency must be at least workerMaxConcurrency/);
  });

  it('sets each event source’s batching window from the declaration, overridden per queue by the settings', () => {
    const windows = (props: JobManagerProps) => {
      const { stack } = appAndStack();
      const jobs = new JobManager(stack, 'Jobs', { stage: 'p', code: fromSource, ...props });
      const template = Template.fromStack(stack);
      const byQueue = Object.fromEntries(
        Object.entries(jobs.queues).map(([key, queue]) => [stack.getLogicalId(queue.node.defaultChild as Json), key]),
      );
      return {
        settings: jobs.settings.batchingWindowSeconds,
        template: Object.fromEntries(
          Object.values(template.findResources('AWS::Lambda::EventSourceMapping')).map((m: Json) => [
            byQueue[m.Properties.EventSourceArn['Fn::GetAtt'][0]],
            m.Properties.MaximumBatchingWindowInSeconds,
          ]),
        ),
      };
    };
    const declared = Object.fromEntries(resources.eventSources.map((s) => [s.queue, s.maximumBatchingWindowSeconds]));
    expect(windows({})).toEqual({ settings: declared, template: declared });
    const overridden = { ...declared, work: 3, submit: 0 };
    expect(windows({ batchingWindowSeconds: { work: 3, submit: 0 } })).toEqual({
      settings: overridden,
      template: overridden,
    });
  });

  it('refuses a batching window AWS would refuse, or one that outlasts its queue’s visibility with the function', () => {
    const build = (batchingWindowSeconds: Json) => () => {
      const { stack } = appAndStack();
      new JobManager(stack, 'Jobs', { stage: 'p', code: fromSource, batchingWindowSeconds });
    };
    expect(build({ work: 301 })).toThrow(/batchingWindowSeconds\.work/);
    expect(build({ submit: 1.5 })).toThrow(/batchingWindowSeconds\.submit/);
    expect(build({ submitDlq: 1 })).toThrow(/batchingWindowSeconds/);
    // The submit queue's 180 s visibility holds the consumer's 30 s and at most 150 s of window.
    expect(build({ submit: 151 })).toThrow(/batchingWindowSeconds\.submit must be at most 150/);
    expect(build({ submit: 150 })).not.toThrow();
  });

  it('grants submitting on the submit queue, calling the API and dropping batch inputs, each on its own resource', () => {
    const { stack } = appAndStack();
    const jobs = new JobManager(stack, 'Jobs', { code: fromSource });
    const service = new iam.Role(stack, 'Service', { assumedBy: new iam.AccountRootPrincipal() });
    jobs.grantSubmit(service);
    jobs.grantApi(service);
    jobs.grantBatchInputUpload(service);
    const template = Template.fromStack(stack);
    const statements = statementsOf(template, stack.getLogicalId(service.node.defaultChild as iam.CfnRole));
    const submitQueue = stack.getLogicalId(jobs.queues.submit.node.defaultChild as Json);
    const bucket = stack.getLogicalId(jobs.bucket.node.defaultChild as Json);
    expect(statements).toContainEqual(
      expect.objectContaining({
        Action: expect.arrayContaining(['sqs:SendMessage']),
        Resource: { 'Fn::GetAtt': [submitQueue, 'Arn'] },
      }),
    );
    expect(JSON.stringify(statements.find((s) => s.Action === 'execute-api:Invoke')?.Resource)).toContain(
      stack.getLogicalId(jobs.api.node.defaultChild as Json),
    );
    expect(statements.find((s) => s.Action === 's3:PutObject')?.Resource).toEqual({
      'Fn::Join': ['', [{ 'Fn::GetAtt': [bucket, 'Arn'] }, '/incoming/*']],
    });
    // The stage defaults to the stack's name.
    template.hasResourceProperties('AWS::SQS::Queue', { QueueName: 'jobs-Platform-submit' });
  });

  it('passes cdk-nag’s AwsSolutions checks in a stack holding only the construct', () => {
    const { app, stack } = appAndStack(true);
    new JobManager(stack, 'Jobs', {
      code: fromSource,
      processors: {
        'ledger.post': {
          function: lambda.Function.fromFunctionName(stack, 'Ledger', 'ledger-post'),
          timeoutSeconds: 30,
        },
        'crm.notify': { url: 'https://crm.example.com/hooks/jobs', secret: 'jobs/crm-signing' },
      },
      auth: { mode: 'jwt', issuer: 'https://auth.example.com/', audience: ['jobs-api'] },
      alarmEmail: 'oncall@example.com',
      removal: 'destroy',
    });
    expect(() => app.synth({ validateOnSynthesis: true })).not.toThrow();

    // The checks do run: a finding nobody acknowledged fails the synth.
    const other = appAndStack(true);
    new JobManager(other.stack, 'Jobs', { code: fromSource });
    new sns.Topic(other.stack, 'Unacknowledged');
    expect(() => other.app.synth({ validateOnSynthesis: true })).toThrow(/SNS2|SNS3/);
  });
});
