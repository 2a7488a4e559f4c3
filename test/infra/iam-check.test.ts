import { describe, expect, it } from 'vitest';
import {
  actionMatches,
  type Call,
  check,
  evaluate,
  format,
  Resolver,
  readDeployment,
  resourceMatches,
  type Statement,
  type Template,
} from '../../infra/iam-check.js';

const TABLE = 'arn:aws:dynamodb:us-east-1:000000000000:table/jobs-local-jobs';
const BUCKET = 'arn:aws:s3:::jobs-local-data';

/** A template shaped like CDK's: names of the dev stage, ARNs through intrinsics. */
function template(statements: object[], extra: Record<string, string> = {}): Template {
  return {
    Resources: {
      Table: { Type: 'AWS::DynamoDB::GlobalTable', Properties: { TableName: 'jobs-dev-jobs' } },
      Work: { Type: 'AWS::SQS::Queue', Properties: { QueueName: 'jobs-dev-work' } },
      Bucket: { Type: 'AWS::S3::Bucket', Properties: {} },
      Echo: {
        Type: 'AWS::Lambda::Function',
        Properties: { FunctionName: 'jobs-dev-demo-echo', Role: { 'Fn::GetAtt': ['EchoRole', 'Arn'] } },
      },
      EchoRole: { Type: 'AWS::IAM::Role', Properties: {} },
      Api: {
        Type: 'AWS::Lambda::Function',
        Properties: {
          FunctionName: 'jobs-dev-api',
          Role: { 'Fn::GetAtt': ['ApiRole', 'Arn'] },
          Environment: { Variables: { BUCKET_DATA: { Ref: 'Bucket' }, ...extra } },
        },
      },
      ApiRole: { Type: 'AWS::IAM::Role', Properties: {} },
      ApiPolicy: {
        Type: 'AWS::IAM::Policy',
        Properties: { Roles: [{ Ref: 'ApiRole' }], PolicyDocument: { Statement: statements } },
      },
    },
  };
}

const deploymentOf = (t: Template) =>
  readDeployment(t, { env: 'dev', stage: 'local', region: 'us-east-1', account: '000000000000' });
const api = (action: string, resource: string): Call => ({ function: 'jobs-local-api', action, resource });
const allow = (Action: unknown, Resource: unknown, more: object = {}) => ({
  Effect: 'Allow',
  Action,
  Resource,
  ...more,
});

// CloudFormation's Fn::Sub syntax, not JavaScript's.
const SUB_ARN = ['arn:$', '{AWS::Partition}:sqs:$', '{AWS::Region}:$', '{AWS::AccountId}:$', '{Work.QueueName}'].join(
  '',
);
const SUB_ESCAPED = ['$', '{X}-$', '{!Literal}'].join('');

describe('resolving a template as deployed to the local cloud', () => {
  it('gives declared resources their local names, the bucket the one its functions are told, pseudo parameters the environment', () => {
    const resolver = new Resolver(template([]), 'dev', 'local', 'us-east-1', '000000000000');
    expect(resolver.resolve({ 'Fn::GetAtt': ['Table', 'Arn'] })).toBe(TABLE);
    expect(resolver.resolve({ 'Fn::Join': ['', [{ 'Fn::GetAtt': ['Bucket', 'Arn'] }, '/payloads/*']] })).toBe(
      `${BUCKET}/payloads/*`,
    );
    expect(resolver.resolve({ 'Fn::Sub': SUB_ARN })).toBe('arn:aws:sqs:us-east-1:000000000000:jobs-local-work');
    expect(
      resolver.resolve({
        'Fn::Join': ['', ['arn:aws:lambda:us-east-1:', { Ref: 'AWS::AccountId' }, ':function:', { Ref: 'Echo' }]],
      }),
    ).toBe('arn:aws:lambda:us-east-1:000000000000:function:jobs-local-demo-echo');
    expect(resolver.resolve({ 'Fn::Sub': [SUB_ESCAPED, { X: { Ref: 'Table' } }] })).toBe(
      ['jobs-local-jobs-$', '{Literal}'].join(''),
    );
  });
});

describe('matching', () => {
  it('matches actions case-insensitively with * and ?, resources per ARN section', () => {
    expect(actionMatches('dynamodb:Get*', 'dynamodb:GetItem')).toBe(true);
    expect(actionMatches('DynamoDB:getitem', 'dynamodb:GetItem')).toBe(true);
    expect(actionMatches('dynamodb:Get?tem', 'dynamodb:GetItem')).toBe(true);
    expect(actionMatches('dynamodb:Get?', 'dynamodb:GetItem')).toBe(false);
    expect(resourceMatches(`${TABLE}/index/*`, `${TABLE}/index/byOwner`)).toBe(true);
    // The table's ARN is not its indexes'.
    expect(resourceMatches(TABLE, `${TABLE}/index/byOwner`)).toBe(false);
    expect(
      resourceMatches(
        'arn:aws:secretsmanager:us-east-1:1:secret:s-??????',
        'arn:aws:secretsmanager:us-east-1:1:secret:s-AbC123',
      ),
    ).toBe(true);
    expect(
      resourceMatches(
        'arn:aws:secretsmanager:us-east-1:1:secret:s-??????',
        'arn:aws:secretsmanager:us-east-1:1:secret:s-AbC12',
      ),
    ).toBe(false);
    // A wildcard stays inside its section: * in the region does not swallow the account.
    expect(resourceMatches('arn:aws:sqs:*:q', 'arn:aws:sqs:us-east-1:000000000000:q')).toBe(false);
    expect(resourceMatches('arn:aws:sqs:*:*:q', 'arn:aws:sqs:us-east-1:000000000000:q')).toBe(true);
  });

  it('lets an explicit Deny win, and a conditional Allow grant nothing', () => {
    const s = (effect: 'Allow' | 'Deny', conditional = false): Statement => ({
      effect,
      actions: ['s3:*'],
      resources: [`${BUCKET}/*`],
      conditional,
    });
    expect(evaluate([s('Allow')], 's3:GetObject', `${BUCKET}/k`)).toBe('allowed');
    expect(evaluate([s('Allow'), s('Deny')], 's3:GetObject', `${BUCKET}/k`)).toBe('explicitly denied');
    expect(evaluate([s('Allow', true)], 's3:GetObject', `${BUCKET}/k`)).toBe('denied');
    expect(
      evaluate(
        [{ effect: 'Allow', notActions: ['s3:Delete*'], resources: ['*'], conditional: false }],
        's3:DeleteObject',
        'x',
      ),
    ).toBe('denied');
  });
});

describe('checking recorded calls against a role', () => {
  const findGrants = [
    allow(['dynamodb:GetItem', 'dynamodb:Query'], { 'Fn::GetAtt': ['Table', 'Arn'] }),
    allow('s3:GetObject', { 'Fn::Join': ['', [{ 'Fn::GetAtt': ['Bucket', 'Arn'] }, '/outputs/*']] }),
  ];
  const calls = [
    api('dynamodb:GetItem', TABLE),
    api('dynamodb:Query', `${TABLE}/index/byOwner`),
    api('dynamodb:BatchGetItem', TABLE),
    { ...api('s3:GetObject', `${BUCKET}/outputs/j/results.jsonl`), presigned: true },
  ];

  it('names each call its role does not allow: function, action and resource', () => {
    const result = check(deploymentOf(template(findGrants)), calls);
    expect(result.denied.map((d) => `${d.call.action} ${d.call.resource}`)).toEqual([
      `dynamodb:Query ${TABLE}/index/byOwner`,
      `dynamodb:BatchGetItem ${TABLE}`,
    ]);
    const out = format(result, { unusedFails: true });
    expect(out.failed).toBe(true);
    expect(out.text).toContain(`DENIED (denied): jobs-local-api dynamodb:BatchGetItem ${TABLE}`);
  });

  it('passes once the role grants them, and reports a grant no call uses', () => {
    const grants = [
      ...findGrants,
      allow(
        ['dynamodb:Query', 'dynamodb:BatchGetItem'],
        [
          { 'Fn::GetAtt': ['Table', 'Arn'] },
          { 'Fn::Join': ['', [{ 'Fn::GetAtt': ['Table', 'Arn'] }, '/index/byOwner']] },
        ],
      ),
    ];
    const result = check(deploymentOf(template(grants)), calls);
    expect(result.denied).toEqual([]);
    // BatchGetItem on the index and Query on the table are granted but unused here.
    expect(result.unused.map((u) => `${u.action} ${u.resource}`).sort()).toEqual([
      `dynamodb:BatchGetItem ${TABLE}/index/byOwner`,
      `dynamodb:Query ${TABLE}`,
    ]);
    expect(format(result, { unusedFails: true }).failed).toBe(true);
    expect(format(result, { unusedFails: false }).failed).toBe(false);
    expect(result.rows.find((r) => r.function === 'api')).toMatchObject({
      calls: 4,
      presigned: 1,
      grants: 6,
      used: 4,
      unused: 2,
    });
  });

  it('keeps the documented unexercised grants (the Lambda runtime’s logs) without failing', () => {
    const logs = allow(
      ['logs:CreateLogStream', 'logs:PutLogEvents'],
      'arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/jobs-dev-api:*',
    );
    const result = check(deploymentOf(template([...findGrants, logs])), [
      api('dynamodb:GetItem', TABLE),
      api('dynamodb:Query', TABLE),
      { ...api('s3:GetObject', `${BUCKET}/outputs/x`) },
    ]);
    expect(result.unused).toEqual([]);
    expect(result.kept.map((k) => k.action)).toEqual(['logs:CreateLogStream', 'logs:PutLogEvents']);
    expect(format(result, { unusedFails: true }).failed).toBe(false);
  });

  it('skips calls on what the environment does not have, and checks configured processors tests cannot call', () => {
    const processors = JSON.stringify({ 'ledger.post': { target: { type: 'lambda', functionName: 'ledger-post' } } });
    const t = template(findGrants);
    // The worker runs processors: give the API's shape to a worker.
    t.Resources.Api = {
      ...t.Resources.Api,
      Type: 'AWS::Lambda::Function',
      Properties: {
        ...t.Resources.Api?.Properties,
        FunctionName: 'jobs-dev-worker',
        Environment: { Variables: { PROCESSORS: processors } },
      },
    };
    const result = check(deploymentOf(t), [
      {
        function: 'jobs-local-worker',
        action: 'lambda:InvokeFunction',
        resource: 'arn:aws:lambda:us-east-1:000000000000:function:fixture',
      },
    ]);
    expect(result.skipped).toHaveLength(1);
    expect(result.denied.map((d) => [d.call.action, d.call.resource, d.call.configured])).toEqual([
      ['lambda:InvokeFunction', 'arn:aws:lambda:us-east-1:000000000000:function:ledger-post', 'processor ledger.post'],
    ]);
  });

  it('lets the sweeper purge expired items only where the template does not turn that on', () => {
    const sweeper = (environment: Record<string, string>) => {
      const t = template(findGrants);
      t.Resources.Api = {
        Type: 'AWS::Lambda::Function',
        Properties: {
          FunctionName: 'jobs-dev-sweeper',
          Role: { 'Fn::GetAtt': ['ApiRole', 'Arn'] },
          Environment: { Variables: environment },
        },
      };
      return check(deploymentOf(t), [
        { function: 'jobs-local-sweeper', action: 'dynamodb:BatchWriteItem', resource: TABLE },
      ]);
    };
    // The emulators have no TTL: locally (PURGE_EXPIRED=true) the sweeper deletes; DynamoDB's TTL does in AWS.
    expect(sweeper({}).localOnly).toHaveLength(1);
    expect(sweeper({}).denied).toEqual([]);
    expect(sweeper({ PURGE_EXPIRED: 'true' }).denied).toHaveLength(1);
  });

  it('reads a recorded ARN in the environment’s region and account', () => {
    const deployment = readDeployment(template(findGrants), {
      env: 'dev',
      stage: 'local',
      region: 'eu-west-1',
      account: '111122223333',
    });
    const result = check(deployment, [api('dynamodb:GetItem', TABLE)]);
    expect(result.denied).toEqual([]);
    expect(result.rows.find((r) => r.function === 'api')?.used).toBe(1);
  });
});
