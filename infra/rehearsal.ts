import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import {
  CloudFormationClient,
  CreateStackCommand,
  DescribeStackResourcesCommand,
  DescribeStacksCommand,
} from '@aws-sdk/client-cloudformation';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { App } from 'aws-cdk-lib';
import { zipSync } from 'fflate';
import { buildApp } from './app.js';

/**
 * Deploy rehearsal: the synthesized stack of an environment, with its Lambda assets, sent to an
 * emulator's CloudFormation (moto) through the SDK — `cdk bootstrap` + `cdk deploy` work against
 * moto too, but the SDK path needs no bootstrap stack, is twice as fast and reports outputs (moto
 * drops outputs after a change set, which is how `cdk deploy` creates stacks).
 *
 * moto cannot model every type, so the template is adapted first, and each adaptation is reported:
 * - AWS::DynamoDB::GlobalTable (CDK's TableV2) becomes AWS::DynamoDB::Table with the same keys,
 *   indexes, TTL and PITR (moto has no GlobalTable, and a GetAtt on it fails the stack);
 * - Custom::* resources are dropped (moto runs their provider Lambda in Docker);
 * - the bootstrap version rule goes (no bootstrap stack);
 * - outputs that GetAtt a type moto skips are dropped.
 * Types moto skips (it logs and marks them complete) are listed from the created stack.
 */

const ACCOUNT = '123456789012';
const REGION = 'us-east-1';
const ASSETS_BUCKET = `cdk-hnb659fds-assets-${ACCOUNT}-${REGION}`;

/** Types moto 5's CloudFormation has no model for: it skips them, and a GetAtt on one fails. */
export const MOTO_SKIPS = new Set([
  'AWS::ApiGatewayV2::Api',
  'AWS::ApiGatewayV2::Integration',
  'AWS::ApiGatewayV2::Route',
  'AWS::ApiGatewayV2::Stage',
  'AWS::ApiGatewayV2::Authorizer',
  'AWS::CloudWatch::Alarm',
  'AWS::S3::BucketPolicy',
  'AWS::SNS::TopicPolicy',
  'AWS::SQS::QueuePolicy',
]);

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation JSON.
type Template = Record<string, any>;

export interface Adaptation {
  template: Template;
  notes: string[];
}

export function adaptForMoto(original: Template): Adaptation {
  const template: Template = structuredClone(original);
  const notes: string[] = [];
  for (const [id, resource] of Object.entries<Template>(template.Resources)) {
    if (resource.Type === 'AWS::DynamoDB::GlobalTable') {
      const { Replicas = [], ...properties } = resource.Properties;
      const replica = Replicas[0] ?? {};
      for (const key of ['PointInTimeRecoverySpecification', 'Tags', 'DeletionProtectionEnabled']) {
        if (replica[key] !== undefined) properties[key] = replica[key];
      }
      resource.Type = 'AWS::DynamoDB::Table';
      resource.Properties = properties;
      notes.push(`${id}: AWS::DynamoDB::GlobalTable deployed as AWS::DynamoDB::Table`);
    }
    if (String(resource.Type).startsWith('Custom::')) {
      delete template.Resources[id];
      notes.push(`${id}: ${resource.Type} dropped (its provider would run in Docker)`);
    }
  }
  for (const [name, output] of Object.entries<Template>(template.Outputs ?? {})) {
    const target = /"Fn::GetAtt":\["([^"]+)"/.exec(JSON.stringify(output.Value))?.[1];
    if (target && (!template.Resources[target] || MOTO_SKIPS.has(template.Resources[target].Type))) {
      delete template.Outputs[name];
      notes.push(`output ${name} dropped (GetAtt on ${template.Resources[target]?.Type ?? target})`);
    }
  }
  delete template.Parameters?.BootstrapVersion;
  delete template.Rules?.CheckBootstrapVersion;
  // moto has no CloudFormation model of a secret, and a policy naming a skipped resource is refused:
  // the secret is dropped and references to it become a fixed ARN of the same shape.
  let text = JSON.stringify(template);
  for (const [id, resource] of Object.entries<Template>(template.Resources)) {
    if (resource.Type !== 'AWS::SecretsManager::Secret') continue;
    text = text.replaceAll(
      JSON.stringify({ Ref: id }),
      JSON.stringify(`arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${id}-rehearsal`),
    );
    notes.push(`${id}: AWS::SecretsManager::Secret dropped (moto has no model); references use a fixed ARN`);
  }
  const adapted: Template = JSON.parse(text);
  for (const [id, resource] of Object.entries<Template>(adapted.Resources)) {
    if (resource.Type === 'AWS::SecretsManager::Secret') delete adapted.Resources[id];
  }
  return { template: adapted, notes };
}

function zipDirectory(directory: string): Uint8Array {
  const files: Record<string, Uint8Array> = {};
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir).sort()) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else files[relative(directory, path)] = readFileSync(path);
    }
  };
  walk(directory);
  return zipSync(files);
}

export interface Rehearsal {
  stackName: string;
  status: string;
  seconds: number;
  outputs: Record<string, string>;
  notes: string[];
  skippedTypes: string[];
}

/** Synthesizes `envName` (bundling the functions), uploads its assets and creates the stack. */
export async function rehearse(envName: string, endpoint: string): Promise<Rehearsal> {
  const context = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'cdk.json'), 'utf8')).context;
  const outdir = mkdtempSync(join(tmpdir(), 'jobs-rehearsal-'));
  const app = new App({ outdir, context: { ...context, env: envName } });
  const stack = buildApp(app, envName);
  const assembly = app.synth();
  const { template, notes } = adaptForMoto(
    JSON.parse(readFileSync(join(assembly.directory, stack.templateFile), 'utf8')),
  );

  const aws = { endpoint, region: REGION, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } };
  const s3 = new S3Client({ ...aws, forcePathStyle: true });
  const cfn = new CloudFormationClient(aws);
  try {
    await s3.send(new CreateBucketCommand({ Bucket: ASSETS_BUCKET }));
    const manifest = JSON.parse(readFileSync(join(assembly.directory, `${stack.artifactId}.assets.json`), 'utf8'));
    for (const asset of Object.values<Template>(manifest.files)) {
      const source = join(assembly.directory, asset.source.path);
      const key = (Object.values(asset.destinations)[0] as { objectKey: string }).objectKey;
      const body = asset.source.packaging === 'zip' ? zipDirectory(source) : readFileSync(source);
      await s3.send(new PutObjectCommand({ Bucket: ASSETS_BUCKET, Key: key, Body: body }));
    }
    const started = Date.now();
    await cfn.send(
      new CreateStackCommand({
        StackName: stack.stackName,
        TemplateBody: JSON.stringify(template),
        Capabilities: ['CAPABILITY_IAM', 'CAPABILITY_NAMED_IAM', 'CAPABILITY_AUTO_EXPAND'],
      }),
    );
    let status = 'CREATE_IN_PROGRESS';
    let outputs: Record<string, string> = {};
    while (status.endsWith('IN_PROGRESS') && Date.now() - started < 120_000) {
      await new Promise((r) => setTimeout(r, 250));
      const { Stacks = [] } = await cfn.send(new DescribeStacksCommand({ StackName: stack.stackName }));
      status = Stacks[0]?.StackStatus ?? 'UNKNOWN';
      outputs = Object.fromEntries((Stacks[0]?.Outputs ?? []).map((o) => [o.OutputKey ?? '', o.OutputValue ?? '']));
    }
    const { StackResources = [] } = await cfn.send(new DescribeStackResourcesCommand({ StackName: stack.stackName }));
    const created = new Set(StackResources.map((r) => r.LogicalResourceId));
    const skippedTypes = [
      ...new Set(
        Object.entries<Template>(template.Resources)
          .filter(([id, r]) => MOTO_SKIPS.has(r.Type) || !created.has(id))
          .map(([, r]) => String(r.Type)),
      ),
    ].sort();
    return { stackName: stack.stackName, status, seconds: (Date.now() - started) / 1000, outputs, notes, skippedTypes };
  } finally {
    s3.destroy();
    cfn.destroy();
  }
}
