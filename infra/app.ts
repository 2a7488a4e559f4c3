import { App, Tags, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { loadEnvironment } from './config.js';
import { JobsStack } from './jobs-stack.js';

/**
 * `cdk deploy -c env=NAME`: one stack per environment, its settings from cdk.json
 * (`context.environments.NAME`). cdk-nag's AwsSolutions checks run on every synth.
 */
export function buildApp(app = new App(), envName = String(app.node.tryGetContext('env') ?? 'dev')): JobsStack {
  const config = loadEnvironment(app.node.tryGetContext('environments'), envName);
  const stack = new JobsStack(app, `jobs-${envName}`, {
    envName,
    config,
    env: config.account ? { account: config.account, region: config.region } : { region: config.region },
    description: `Serverless job manager (${envName})`,
  });
  // CloudFormation's schema for dashboards has no Tags (cfn-lint E3002), though CDK would add them.
  const untaggable = { excludeResourceTypes: ['AWS::CloudWatch::Dashboard'] };
  Tags.of(stack).add('app', 'jobs', untaggable);
  Tags.of(stack).add('environment', envName, untaggable);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return stack;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  buildApp();
}
