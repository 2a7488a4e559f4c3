import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { demoFunction, demoProcessors } from '../examples/processors/catalog.js';
import { LOCAL_ACCOUNT, type RecordedCall } from '../shared/aws/iam-record.js';
import { OBJECT_PREFIXES } from '../shared/core/keys.js';
import { type FunctionKey, physicalName, resourceEnv, resources } from '../shared/resources.js';
import { loadEnvironment } from './config.js';

/**
 * The IAM check: every AWS call a function made while the test suites ran (recorded by
 * shared/aws/iam-record.ts) must be allowed by that function's role in each synthesized template,
 * and every grant of those roles must be used by some call, or be on the short list below of grants
 * that tests cannot exercise. The emulators enforce no IAM, so this is where a missing grant shows
 * before AWS refuses it.
 *
 * How the template is read:
 * - roles: each function's `Role` (a GetAtt), the `AWS::IAM::Policy`/`ManagedPolicy` resources
 *   naming it, and its inline policies; AWS managed policies cannot be read here and are reported;
 * - intrinsics (`Ref`, `Fn::GetAtt`, `Fn::Join`, `Fn::Sub`, `Fn::Select`, `Fn::Split`, pseudo
 *   parameters) are resolved symbolically, "as deployed to the local cloud": declared tables,
 *   queues and functions get their local physical names (`physicalName(stage, …)` of the same
 *   declaration), the bucket (named by CloudFormation) the name the local cloud gives it, found
 *   through the `BUCKET_*` variable the functions read; region and account are the environment's,
 *   and a recorded ARN's region and account are read as those (the emulators' are arbitrary);
 * - conditions are handled conservatively: a conditional Allow grants nothing, a conditional Deny
 *   denies; `NotAction`/`NotResource` are honoured;
 * - resource policies (the TLS-only Deny of enforceSSL on the bucket and queues) are not evaluated:
 *   they only refuse requests without TLS, and a same-account role needs only its own Allow.
 *
 * Calls on resources an environment does not have (test fixtures' processors, functions only the
 * local stack registers) are skipped and listed. Calls tests cannot make — processors configured
 * only in an environment (prod's), the cursor key secret — are derived from the template's own
 * configuration and checked like recorded ones.
 */

/** A grant's resource on every object under `prefix` of a bucket (`…/inputs/*`). */
function objectsUnder(prefix: string): RegExp {
  return new RegExp(`/${prefix.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\*$`);
}

/**
 * Grants no recorded call uses, and why each stays: a path the suites cannot take through the
 * local runtime. `function` and `resource` (a pattern on the grant's resource) narrow an entry.
 * Anything else unused fails the check: remove the grant, or exercise it in a test.
 */
export const UNEXERCISED: { action: string; function?: FunctionKey; resource?: RegExp; why: string }[] = [
  {
    action: 'logs:CreateLogStream',
    why: "Lambda's runtime writes the function's own log group; the local runtime logs to stderr",
  },
  {
    action: 'logs:PutLogEvents',
    why: "Lambda's runtime writes the function's own log group; the local runtime logs to stderr",
  },
  {
    action: 'sqs:GetQueueAttributes',
    why: "Lambda's event source mapping reads its queue's attributes (CDK's SqsEventSource grants it); the local poller does not ask",
  },
  {
    action: 'sqs:GetQueueUrl',
    why: "part of CDK's grantConsumeMessages, which SqsEventSource applies and offers no way to narrow",
  },
  {
    action: 'sqs:ChangeMessageVisibility',
    function: 'deadLetters',
    why: "part of CDK's grantConsumeMessages for the event source mapping; the function itself never calls it",
  },
  {
    action: 'sqs:ChangeMessageVisibility',
    function: 'submitConsumer',
    why: 'backs a queued submission off during an AWS outage (shared/lambda/handlers.ts); no suite runs the submit consumer through one',
  },
  {
    action: 's3:PutObject',
    function: 'worker',
    resource: objectsUnder(OBJECT_PREFIXES.inputs),
    why: `the plan spills a chunk's rows over 200 KB to ${OBJECT_PREFIXES.inputs}{job}/chunks/ (shared/core/batches/planner.ts)`,
  },
  {
    action: 'dynamodb:Query',
    function: 'sweeper',
    why: "re-sends a stalled batch's finalize step once its tallies are complete (BatchEngine.sweepOne)",
  },
  {
    action: 's3:GetObject',
    function: 'deadLetters',
    why: 'a dead-lettered chunk whose rows were spilled to S3 (rowsKey) reads them back to fail each one',
  },
  {
    action: 's3:PutObject',
    function: 'deadLetters',
    resource: objectsUnder(OBJECT_PREFIXES.payloads),
    why: `any job write that takes the item past its budget moves the largest values to ${OBJECT_PREFIXES.payloads} (DynamoJobStore.toItem)`,
  },
];

/**
 * Calls the local stack makes and a deployed one does not: allowed to be denied as long as the
 * template does not set the variable that turns them on.
 */
export const LOCAL_ONLY: { function: FunctionKey; action: string; env: string; why: string }[] = [
  {
    function: 'sweeper',
    action: 'dynamodb:BatchWriteItem',
    env: 'PURGE_EXPIRED',
    why: 'deletes expired items where the database has no TTL (the emulators); DynamoDB TTL does it in AWS',
  },
];

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation of every shape.
type Json = any;

export interface Template {
  Resources: Record<string, { Type: string; Properties?: Json }>;
  Parameters?: Record<string, { Default?: unknown }>;
}

export interface Statement {
  effect: 'Allow' | 'Deny';
  actions?: string[];
  notActions?: string[];
  resources?: string[];
  notResources?: string[];
  conditional: boolean;
}

export interface FunctionRole {
  /** The function's name as deployed to the local cloud (what the recorder names it). */
  name: string;
  /** Its key in shared/resources.ts or its demo name; undefined for CDK's own helper functions. */
  logical?: string;
  statements: Statement[];
  managedPolicies: string[];
  environment: Record<string, string>;
}

export interface Call {
  function: string;
  action: string;
  resource: string;
  presigned?: boolean;
  unmapped?: boolean;
  /** Why a call not recorded is checked: the configuration it comes from. */
  configured?: string;
}

export interface Deployment {
  env: string;
  stage: string;
  partition: string;
  region: string;
  account: string;
  roles: Map<string, FunctionRole>;
  /** ARN patterns of everything the environment has or is configured to reach. */
  owned: string[];
  /** Calls derived from configuration (processors, the cursor key), checked like recorded ones. */
  configured: Call[];
}

// --- Matching -------------------------------------------------------------------------------------

function globRegex(pattern: string, flags = ''): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`, flags);
}

/** IAM action match: `*` and `?` wildcards, case-insensitive. */
export function actionMatches(pattern: string, action: string): boolean {
  return globRegex(pattern, 'i').test(action);
}

/**
 * IAM resource match: `*` and `?` wildcards, case-sensitive, each of the ARN's six sections on its
 * own (a wildcard does not cross into the next section; the resource section may hold colons).
 */
export function resourceMatches(pattern: string, arn: string): boolean {
  if (pattern === '*') return true;
  const split = (s: string) => {
    const parts = s.split(':');
    return parts.length < 6 ? [s] : [...parts.slice(0, 5), parts.slice(5).join(':')];
  };
  const p = split(pattern);
  const a = split(arn);
  return p.length === a.length && p.every((section, i) => globRegex(section).test(a[i] as string));
}

function statementMatches(statement: Statement, action: string, resource: string): boolean {
  const actionOk = statement.actions
    ? statement.actions.some((p) => actionMatches(p, action))
    : !(statement.notActions ?? []).some((p) => actionMatches(p, action));
  if (!actionOk) return false;
  return statement.resources
    ? statement.resources.some((p) => resourceMatches(p, resource))
    : !(statement.notResources ?? []).some((p) => resourceMatches(p, resource));
}

export type Verdict = 'allowed' | 'denied' | 'explicitly denied';

/** Identity-policy evaluation: an explicit Deny wins, else some unconditional Allow must match. */
export function evaluate(statements: Statement[], action: string, resource: string): Verdict {
  const matching = statements.filter((s) => statementMatches(s, action, resource));
  if (matching.some((s) => s.effect === 'Deny')) return 'explicitly denied';
  return matching.some((s) => s.effect === 'Allow' && !s.conditional) ? 'allowed' : 'denied';
}

// --- Reading the template ------------------------------------------------------------------------

/** Every logical name of shared/resources.ts (and the demo functions), for physical-name mapping. */
function logicalNames(): string[] {
  return [
    ...Object.values(resources.tables).map((t) => t.name),
    ...Object.values(resources.queues).map((q) => q.name),
    ...Object.values(resources.buckets).map((b) => b.name),
    ...Object.keys(resources.functions),
    ...demoProcessors.map(demoFunction),
  ];
}

const list = <T>(value: T | T[] | undefined): T[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

/**
 * Resolves a template's intrinsics as if it were deployed to the local cloud (stage `stage`), in
 * the environment's region and account.
 */
export class Resolver {
  private readonly local = new Map<string, string>();
  private readonly logical = new Map<string, string>();
  private readonly bucketNames = new Map<string, string>();

  constructor(
    private readonly template: Template,
    readonly env: string,
    readonly stage: string,
    readonly region: string,
    readonly account: string,
    readonly partition = 'aws',
  ) {
    for (const name of logicalNames()) {
      this.local.set(physicalName(env, name), physicalName(stage, name));
      this.logical.set(physicalName(env, name), name);
    }
    // CloudFormation names the bucket; the functions find it through BUCKET_<KEY>, as locally.
    for (const resource of Object.values(template.Resources)) {
      if (resource.Type !== 'AWS::Lambda::Function') continue;
      const variables = resource.Properties?.Environment?.Variables ?? {};
      for (const [key, bucket] of Object.entries(resources.buckets)) {
        const ref = variables[resourceEnv.bucket(key as keyof typeof resources.buckets)]?.Ref;
        if (typeof ref === 'string') this.bucketNames.set(ref, physicalName(stage, bucket.name));
      }
    }
  }

  /** The local physical name of a deployed one, when the declaration knows it. */
  localName(name: string): string {
    return this.local.get(name) ?? name;
  }

  logicalName(name: string): string | undefined {
    return this.logical.get(name);
  }

  resolve(value: Json): Json {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (value === null || typeof value !== 'object') return value;
    const keys = Object.keys(value);
    if (keys.length === 1 && (keys[0] === 'Ref' || keys[0]?.startsWith('Fn::'))) {
      return this.intrinsic(keys[0] as string, value[keys[0] as string]);
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.resolve(v)]));
  }

  string(value: Json): string {
    const resolved = this.resolve(value);
    if (typeof resolved !== 'string') throw new Error(`Expected a string, got ${JSON.stringify(resolved)}`);
    return resolved;
  }

  private intrinsic(name: string, args: Json): Json {
    switch (name) {
      case 'Ref':
        return this.ref(String(args));
      case 'Fn::GetAtt': {
        const [id, attribute] = typeof args === 'string' ? args.split(/\.(.*)/s) : args;
        return this.attribute(String(id), String(attribute));
      }
      case 'Fn::Join':
        return (this.resolve(args[1]) as Json[]).map((part) => this.string(part)).join(args[0]);
      case 'Fn::Select':
        return (this.resolve(args[1]) as Json[])[Number(this.resolve(args[0]))];
      case 'Fn::Split':
        return this.string(args[1]).split(args[0]);
      case 'Fn::Sub': {
        const [text, variables] = typeof args === 'string' ? [args, {}] : args;
        return String(text).replace(/\$\{(!?)([^}]+)\}/g, (_match: string, bang: string, expression: string) => {
          if (bang) return `\${${expression}}`;
          if (expression in variables) return this.string(variables[expression]);
          const [id, attribute] = expression.split(/\.(.*)/s);
          return attribute ? this.string(this.attribute(id as string, attribute)) : this.string(this.ref(expression));
        });
      }
      default:
        throw new Error(`Cannot resolve ${name} symbolically`);
    }
  }

  private ref(id: string): Json {
    switch (id) {
      case 'AWS::Partition':
        return this.partition;
      case 'AWS::Region':
        return this.region;
      case 'AWS::AccountId':
        return this.account;
      case 'AWS::URLSuffix':
        return 'amazonaws.com';
      case 'AWS::StackName':
        return `jobs-${this.env}`;
      case 'AWS::NoValue':
        return undefined;
    }
    if (this.template.Parameters?.[id]) return this.template.Parameters[id].Default;
    return this.attribute(id, 'Ref');
  }

  private attribute(id: string, attribute: string): string {
    const resource = this.template.Resources[id];
    if (!resource) throw new Error(`No resource ${id} in the template`);
    const properties = resource.Properties ?? {};
    const named = (property: string) => this.localName(properties[property] ? this.string(properties[property]) : id);
    const { partition: p, region, account } = this;
    switch (resource.Type) {
      case 'AWS::DynamoDB::GlobalTable':
      case 'AWS::DynamoDB::Table': {
        const name = named('TableName');
        return attribute === 'Ref' ? name : `arn:${p}:dynamodb:${region}:${account}:table/${name}`;
      }
      case 'AWS::SQS::Queue': {
        const name = named('QueueName');
        if (attribute === 'Arn') return `arn:${p}:sqs:${region}:${account}:${name}`;
        return attribute === 'QueueName' ? name : `https://sqs.${region}.amazonaws.com/${account}/${name}`;
      }
      case 'AWS::S3::Bucket': {
        const name = this.bucketNames.get(id) ?? named('BucketName');
        return attribute === 'Arn' ? `arn:${p}:s3:::${name}` : name;
      }
      case 'AWS::Lambda::Function': {
        const name = named('FunctionName');
        return attribute === 'Arn' ? `arn:${p}:lambda:${region}:${account}:function:${name}` : name;
      }
      case 'AWS::SecretsManager::Secret':
        // Secrets Manager appends six random characters to the name.
        return `arn:${p}:secretsmanager:${region}:${account}:secret:${named('Name')}-xxxxxx`;
      case 'AWS::Logs::LogGroup': {
        const name = named('LogGroupName');
        return attribute === 'Arn' ? `arn:${p}:logs:${region}:${account}:log-group:${name}:*` : name;
      }
      case 'AWS::IAM::Role': {
        const name = named('RoleName');
        return attribute === 'Arn' ? `arn:${p}:iam::${account}:role/${name}` : name;
      }
      default:
        // Matches no ARN: braces never occur in one.
        return `{${id}.${attribute}}`;
    }
  }
}

function statementsOf(resolver: Resolver, document: Json): Statement[] {
  return list(document?.Statement).map((statement: Json) => {
    const strings = (value: Json) => (value === undefined ? undefined : list(resolver.resolve(value)).map(String));
    const out: Statement = { effect: statement.Effect, conditional: statement.Condition !== undefined };
    const actions = strings(statement.Action);
    const notActions = strings(statement.NotAction);
    const resourcesOf = strings(statement.Resource);
    const notResources = strings(statement.NotResource);
    if (actions) out.actions = actions;
    if (notActions) out.notActions = notActions;
    if (resourcesOf) out.resources = resourcesOf;
    if (notResources) out.notResources = notResources;
    return out;
  });
}

/** Each function's role, resolved, and what the environment owns and is configured to call. */
export function readDeployment(
  template: Template,
  options: { env: string; stage: string; region: string; account: string; batchInputBuckets?: string[] },
): Deployment {
  const resolver = new Resolver(template, options.env, options.stage, options.region, options.account);
  const { partition: p, region, account } = resolver;
  const entries = Object.entries(template.Resources);
  const roles = new Map<string, FunctionRole>();
  const owned: string[] = (options.batchInputBuckets ?? []).flatMap((b) => [
    `arn:${p}:s3:::${b}`,
    `arn:${p}:s3:::${b}/*`,
  ]);
  const configured: Call[] = [];
  const lambdaArn = (name: string) =>
    name.startsWith('arn:') ? name : `arn:${p}:lambda:${region}:${account}:function:${name}`;

  for (const [id, resource] of entries) {
    switch (resource.Type) {
      case 'AWS::DynamoDB::GlobalTable':
      case 'AWS::DynamoDB::Table': {
        const arn = resolver.string({ 'Fn::GetAtt': [id, 'Arn'] });
        owned.push(arn, `${arn}/index/*`, `${arn}/stream/*`);
        break;
      }
      case 'AWS::SQS::Queue':
      case 'AWS::Lambda::Function':
        owned.push(resolver.string({ 'Fn::GetAtt': [id, 'Arn'] }));
        break;
      case 'AWS::S3::Bucket': {
        const arn = resolver.string({ 'Fn::GetAtt': [id, 'Arn'] });
        owned.push(arn, `${arn}/*`);
        break;
      }
      case 'AWS::SecretsManager::Secret':
        owned.push(resolver.string({ Ref: id }));
        break;
    }
  }

  for (const [, fn] of entries.filter(([, r]) => r.Type === 'AWS::Lambda::Function')) {
    const properties = fn.Properties ?? {};
    const deployedName = properties.FunctionName ? resolver.string(properties.FunctionName) : undefined;
    const roleId = properties.Role?.['Fn::GetAtt']?.[0] as string | undefined;
    const role = roleId ? template.Resources[roleId] : undefined;
    if (!deployedName || !roleId || !role) continue;
    const statements: Statement[] = [];
    for (const policy of list(role.Properties?.Policies))
      statements.push(...statementsOf(resolver, policy.PolicyDocument));
    for (const [, attached] of entries) {
      if (attached.Type !== 'AWS::IAM::Policy' && attached.Type !== 'AWS::IAM::ManagedPolicy') continue;
      if (!list(attached.Properties?.Roles).some((r: Json) => r?.Ref === roleId)) continue;
      statements.push(...statementsOf(resolver, attached.Properties.PolicyDocument));
    }
    const environment = Object.fromEntries(
      Object.entries(properties.Environment?.Variables ?? {}).map(([k, v]) => [k, resolver.string(v)]),
    );
    const logical = resolver.logicalName(deployedName);
    const name = resolver.localName(deployedName);
    roles.set(name, {
      name,
      ...(logical ? { logical } : {}),
      statements,
      managedPolicies: list(role.Properties?.ManagedPolicyArns).map((m: Json) => resolver.string(m)),
      environment,
    });
    // What tests cannot reach: the environment's own processors (shared/aws/processor-invoker.ts
    // invokes a Lambda target, reads an HTTP target's secret) and the cursor key (shared/aws/wiring.ts).
    if (logical === 'worker' && environment.PROCESSORS) {
      for (const [processor, config] of Object.entries(JSON.parse(environment.PROCESSORS) as Record<string, Json>)) {
        const target = config.target ?? {};
        if (target.type === 'lambda') {
          const arn = lambdaArn(String(target.functionName));
          owned.push(arn);
          configured.push({
            function: name,
            action: 'lambda:InvokeFunction',
            resource: arn,
            configured: `processor ${processor}`,
          });
        }
        if (target.type === 'http' && target.secretName) {
          const arn = `arn:${p}:secretsmanager:${region}:${account}:secret:${target.secretName}-xxxxxx`;
          owned.push(arn);
          configured.push({
            function: name,
            action: 'secretsmanager:GetSecretValue',
            resource: arn,
            configured: `processor ${processor}'s signing secret`,
          });
        }
      }
    }
    if (environment.CURSOR_SECRET_ARN) {
      configured.push({
        function: name,
        action: 'secretsmanager:GetSecretValue',
        resource: environment.CURSOR_SECRET_ARN,
        configured: 'the cursor key (CURSOR_SECRET_ARN)',
      });
    }
  }
  return { env: options.env, stage: options.stage, partition: p, region, account, roles, owned, configured };
}

// --- Checking ------------------------------------------------------------------------------------

/** A recorded ARN in the environment's region and account (an emulator's are arbitrary). */
export function deployed(arn: string, deployment: Deployment): string {
  const parts = arn.split(':');
  if (parts.length < 6 || parts[0] !== 'arn') return arn;
  if (parts[3]) parts[3] = deployment.region;
  if (parts[4]) parts[4] = deployment.account;
  return parts.join(':');
}

export interface FunctionReport {
  function: string;
  /** Distinct (action, resource) pairs recorded, and the distinct actions among them. */
  calls: number;
  actions: number;
  presigned: number;
  configured: number;
  /** Grants: (action, resource) pairs of the role's Allow statements. */
  grants: number;
  used: number;
  kept: number;
  unused: number;
}

export interface CheckResult {
  env: string;
  denied: { call: Call; verdict: Verdict }[];
  unmapped: Call[];
  localOnly: { call: Call; why: string }[];
  skipped: Call[];
  unused: { function: string; action: string; resource: string }[];
  kept: { function: string; action: string; resource: string; why: string }[];
  managedPolicies: { function: string; arn: string }[];
  conditional: { function: string; statement: Statement }[];
  rows: FunctionReport[];
}

export function check(deployment: Deployment, recorded: Call[]): CheckResult {
  const result: CheckResult = {
    env: deployment.env,
    denied: [],
    unmapped: [],
    localOnly: [],
    skipped: [],
    unused: [],
    kept: [],
    managedPolicies: [],
    conditional: [],
    rows: [],
  };
  const inScope = (resource: string) => deployment.owned.some((pattern) => resourceMatches(pattern, resource));
  const evaluated = new Map<string, Call[]>();
  const all = [
    ...recorded.map((call) => ({ ...call, resource: deployed(call.resource, deployment) })),
    ...deployment.configured,
  ];
  for (const call of all) {
    const role = deployment.roles.get(call.function);
    if (call.unmapped) {
      result.unmapped.push(call);
      continue;
    }
    if (!role || !inScope(call.resource)) {
      result.skipped.push(call);
      continue;
    }
    const verdict = evaluate(role.statements, call.action, call.resource);
    if (verdict !== 'allowed') {
      const local = LOCAL_ONLY.find(
        (l) => l.function === role.logical && l.action === call.action && !(l.env in role.environment),
      );
      if (local) result.localOnly.push({ call, why: local.why });
      else result.denied.push({ call, verdict });
      continue;
    }
    evaluated.set(call.function, [...(evaluated.get(call.function) ?? []), call]);
  }

  for (const role of deployment.roles.values()) {
    if (!role.logical) continue; // CDK's own helpers (auto-delete objects): not our code
    for (const arn of role.managedPolicies) result.managedPolicies.push({ function: role.name, arn });
    const calls = evaluated.get(role.name) ?? [];
    const row: FunctionReport = {
      function: role.logical,
      calls: calls.filter((c) => !c.configured).length,
      actions: new Set(calls.filter((c) => !c.configured).map((c) => c.action)).size,
      presigned: calls.filter((c) => c.presigned).length,
      configured: calls.filter((c) => c.configured).length,
      grants: 0,
      used: 0,
      kept: 0,
      unused: 0,
    };
    const seen = new Set<string>();
    for (const statement of role.statements) {
      if (statement.effect !== 'Allow') continue;
      if (statement.conditional || !statement.actions || !statement.resources) {
        result.conditional.push({ function: role.name, statement });
        continue;
      }
      for (const action of statement.actions) {
        for (const resource of statement.resources) {
          const key = `${action} ${resource}`;
          if (seen.has(key)) continue;
          seen.add(key);
          row.grants++;
          const grant = { actions: [action], resources: [resource], effect: 'Allow' as const, conditional: false };
          if (calls.some((c) => statementMatches(grant, c.action, c.resource))) {
            row.used++;
            continue;
          }
          const why = UNEXERCISED.find(
            (u) =>
              actionMatches(u.action, action) &&
              (!u.function || u.function === role.logical) &&
              (!u.resource || u.resource.test(resource)),
          )?.why;
          if (why) {
            row.kept++;
            result.kept.push({ function: role.logical, action, resource, why });
          } else {
            row.unused++;
            result.unused.push({ function: role.logical, action, resource });
          }
        }
      }
    }
    result.rows.push(row);
  }
  return result;
}

/** Recorded calls: every `*.jsonl` in the folder, distinct. */
export function readCalls(dir: string): RecordedCall[] {
  if (!existsSync(dir)) return [];
  const lines = new Set<string>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.jsonl'))) {
    for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) if (line.trim()) lines.add(line);
  }
  return [...lines].map((line) => JSON.parse(line) as RecordedCall);
}

/** Object keys carry ids: one line per prefix keeps the report readable. */
function shorten(resource: string): string {
  return resource.replace(/\/[0-9a-z]{20,}(?=\/|$)/g, '/{id}');
}

export function format(result: CheckResult, options: { unusedFails: boolean }): { text: string; failed: boolean } {
  const lines: string[] = [];
  const pad = (cells: (string | number)[]) =>
    cells.map((c, i) => (i === 0 ? String(c).padEnd(16) : String(c).padStart(9))).join(' ');
  lines.push(pad(['function', 'calls', 'actions', 'presigned', 'config', 'grants', 'used', 'kept', 'unused']));
  for (const r of result.rows) {
    lines.push(pad([r.function, r.calls, r.actions, r.presigned, r.configured, r.grants, r.used, r.kept, r.unused]));
  }
  const distinct = <T>(items: T[], key: (t: T) => string) => [...new Map(items.map((i) => [key(i), i])).values()];
  for (const { call, verdict } of distinct(
    result.denied,
    (d) => `${d.call.function} ${d.call.action} ${shorten(d.call.resource)}`,
  )) {
    lines.push(
      `DENIED (${verdict}): ${call.function} ${call.action} ${call.resource}${call.configured ? ` [${call.configured}]` : ''}`,
    );
  }
  for (const call of distinct(result.unmapped, (c) => `${c.function} ${c.action}`)) {
    lines.push(`UNMAPPED: ${call.function} ${call.action}: no IAM mapping (add one in shared/aws/iam-record.ts)`);
  }
  for (const u of result.unused) {
    lines.push(`${options.unusedFails ? 'UNUSED' : 'unused'}: ${u.function} ${u.action} ${u.resource}`);
  }
  for (const m of result.managedPolicies) lines.push(`MANAGED POLICY (not evaluated): ${m.function} ${m.arn}`);
  for (const c of result.conditional)
    lines.push(`conditional or negated grant, not counted: ${c.function} ${JSON.stringify(c.statement)}`);
  for (const { call, why } of distinct(result.localOnly, (l) => `${l.call.function} ${l.call.action}`)) {
    lines.push(`local only: ${call.function} ${call.action}: ${why}`);
  }
  for (const k of distinct(result.kept, (k) => k.why)) {
    const grants = result.kept.filter((x) => x.why === k.why);
    const roles = new Set(grants.map((g) => g.function));
    const actions = [...new Set(grants.map((g) => g.action))].join(', ');
    const where = roles.size > 2 ? `${roles.size} roles` : [...roles].join(', ');
    lines.push(`kept unexercised: ${actions} (${where}): ${k.why}`);
  }
  const skipped = distinct(result.skipped, (c) => `${c.function} ${c.action} ${shorten(c.resource)}`);
  if (skipped.length) {
    lines.push(
      `skipped (not in ${result.env}): ${skipped.length} calls, e.g. ${skipped
        .slice(0, 3)
        .map((c) => `${c.function} ${c.action} ${shorten(c.resource)}`)
        .join('; ')}`,
    );
  }
  const failed =
    result.denied.length > 0 ||
    result.unmapped.length > 0 ||
    result.managedPolicies.length > 0 ||
    (options.unusedFails && result.unused.length > 0);
  return { text: lines.join('\n'), failed };
}

async function main(argv: string[]): Promise<number> {
  const root = join(import.meta.dirname, '..');
  const flag = (name: string) => argv.includes(name);
  const value = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
  const dir = value('--calls') ?? process.env.IAM_RECORD_DIR ?? join(root, 'cdk.out', 'iam-calls');
  const context = JSON.parse(readFileSync(join(root, 'cdk.json'), 'utf8')).context as Record<string, Json>;
  const envs = argv.filter((a, i) => !a.startsWith('--') && argv[i - 1] !== '--calls');
  const names = envs.length ? envs : Object.keys(context.environments);
  // A subset of the suites (test:aws-local) proves what it ran is allowed; only the whole of
  // `npm test` can say a grant is unused.
  const unusedFails = !flag('--allowed-only');
  const recorded = readCalls(dir);
  if (recorded.length === 0) {
    console.error(`iam-check: no calls recorded in ${dir} (run the suites with IAM_RECORD_DIR=${dir})`);
    return 1;
  }
  let templates: Record<string, Template>;
  let cleanup = () => {};
  if (flag('--synth')) {
    const out = mkdtempSync(join(tmpdir(), 'iam-check-'));
    cleanup = () => rmSync(out, { recursive: true, force: true });
    templates = await synthesize(names, context, out);
  } else {
    templates = Object.fromEntries(
      names.map((name) => {
        const file = join(root, 'cdk.out', name, `jobs-${name}.template.json`);
        if (!existsSync(file)) throw new Error(`No template ${file}: run \`npm run synth\` first`);
        return [name, JSON.parse(readFileSync(file, 'utf8')) as Template];
      }),
    );
  }
  let failed = false;
  try {
    const stages = [...new Set(recorded.map((c) => c.stage))];
    for (const name of names) {
      const config = loadEnvironment(context.environments, name);
      for (const stage of stages) {
        const deployment = readDeployment(templates[name] as Template, {
          env: name,
          stage,
          region: config.region,
          account: config.account ?? LOCAL_ACCOUNT,
          batchInputBuckets: config.batchInputBuckets,
        });
        const result = check(
          deployment,
          recorded.filter((c) => c.stage === stage),
        );
        const out = format(result, { unusedFails });
        console.log(`iam-check ${name} (calls recorded on stage ${stage}, ${dir.replace(`${root}/`, '')}):`);
        console.log(out.text);
        failed ||= out.failed;
      }
    }
  } finally {
    cleanup();
  }
  console.log(
    failed ? 'iam-check: FAILED' : 'iam-check: every recorded call is allowed and every grant is used or kept',
  );
  return failed ? 1 : 0;
}

/** Synthesizes without bundling (templates only), for runs that have no `npm run synth` output. */
async function synthesize(
  names: string[],
  context: Record<string, Json>,
  outdir: string,
): Promise<Record<string, Template>> {
  const { App } = await import('aws-cdk-lib');
  const { buildApp } = await import('./app.js');
  const templates: Record<string, Template> = {};
  for (const name of names) {
    const app = new App({
      outdir: join(outdir, name),
      context: { ...context, env: name, 'aws:cdk:bundling-stacks': [] },
    });
    const stack = buildApp(app, name);
    const assembly = app.synth();
    templates[name] = JSON.parse(readFileSync(join(assembly.directory, stack.templateFile), 'utf8'));
  }
  return templates;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
