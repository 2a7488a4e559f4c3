import { AsyncLocalStorage } from 'node:async_hooks';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * The IAM recorder: which AWS calls (IAM action + resource ARN) each function makes, so
 * `infra/iam-check.ts` can evaluate them against that function's role in the synthesized templates.
 * The local emulators do not enforce IAM, so without this a missing grant only shows in AWS.
 *
 * Off unless `IAM_RECORD_DIR` is set when the clients are built (`createClients` hooks them only
 * then), so deployed code pays nothing. Who is calling comes from `asFunction`, which the local
 * runtime wraps around every invocation and around the SQS polling it does for a function (Lambda's
 * event source mapping polls with the function's own role). Each process appends to a file of its
 * own, one JSON line per distinct call.
 */

export interface IamCall {
  action: string;
  resource: string;
  /** A presigned URL: the caller makes the call later, with the signer's credentials. */
  presigned?: boolean;
  /** No IAM mapping is known for this command: the checker fails until one is added here. */
  unmapped?: boolean;
}

export interface RecordedCall extends IamCall {
  function: string;
  /** `STAGE` of the local stack, so the checker can map physical names (`jobs-local-…`). */
  stage: string;
  region: string;
  account: string;
}

const caller = new AsyncLocalStorage<string>();

/** Runs `fn` as the function `name`: calls it makes are recorded against that function's role. */
export function asFunction<T>(name: string, fn: () => T): T {
  return caller.run(name, fn);
}

/** The local cloud's account: emulators and the local runtime all use it. */
export const LOCAL_ACCOUNT = '000000000000';

// biome-ignore lint/suspicious/noExplicitAny: SDK command inputs of every shape.
type Any = Record<string, any>;

interface Where {
  region: string;
  account: string;
}

const SERVICES: Record<string, string> = {
  DynamoDBClient: 'dynamodb',
  SQSClient: 'sqs',
  S3Client: 's3',
  LambdaClient: 'lambda',
  SecretsManagerClient: 'secretsmanager',
};

/** SDK operations whose IAM action has another name (the rest are named alike). */
const ACTIONS: Record<string, string> = {
  'sqs:SendMessageBatch': 'sqs:SendMessage',
  'sqs:DeleteMessageBatch': 'sqs:DeleteMessage',
  'sqs:ChangeMessageVisibilityBatch': 'sqs:ChangeMessageVisibility',
  's3:HeadObject': 's3:GetObject',
  's3:CreateMultipartUpload': 's3:PutObject',
  's3:UploadPart': 's3:PutObject',
  's3:CompleteMultipartUpload': 's3:PutObject',
  's3:ListParts': 's3:ListMultipartUploadParts',
  's3:ListObjects': 's3:ListBucket',
  's3:ListObjectsV2': 's3:ListBucket',
  's3:HeadBucket': 's3:ListBucket',
  's3:ListMultipartUploads': 's3:ListBucketMultipartUploads',
  'lambda:Invoke': 'lambda:InvokeFunction',
  'lambda:InvokeWithResponseStream': 'lambda:InvokeFunction',
};

const S3_OBJECT_OPERATIONS = new Set([
  'GetObject',
  'HeadObject',
  'PutObject',
  'CreateMultipartUpload',
  'UploadPart',
  'CompleteMultipartUpload',
  'AbortMultipartUpload',
  'ListParts',
  'DeleteObject',
  'GetObjectTagging',
  'PutObjectTagging',
]);

const TRANSACT_WRITE: Record<string, string> = {
  Put: 'PutItem',
  Update: 'UpdateItem',
  Delete: 'DeleteItem',
  ConditionCheck: 'ConditionCheckItem',
};

/**
 * The IAM action(s) and resource ARN(s) one SDK command needs (`clientName`/`commandName` as the
 * SDK's middleware context names them). A batch or transaction needs each table it names.
 */
export function iamCalls(clientName: string, commandName: string, input: Any, where: Where): IamCall[] {
  const service = SERVICES[clientName];
  const operation = commandName.replace(/Command$/, '');
  if (!service) return [{ action: `${clientName}:${operation}`, resource: '*', unmapped: true }];
  const action = ACTIONS[`${service}:${operation}`] ?? `${service}:${operation}`;
  const { region, account } = where;
  switch (service) {
    case 'dynamodb': {
      const table = (name: string) =>
        name.startsWith('arn:') ? name : `arn:aws:dynamodb:${region}:${account}:table/${name}`;
      if (operation === 'BatchGetItem' || operation === 'BatchWriteItem') {
        return Object.keys(input.RequestItems ?? {}).map((name) => ({ action, resource: table(name) }));
      }
      if (operation === 'TransactWriteItems' || operation === 'TransactGetItems') {
        return (input.TransactItems ?? []).flatMap((item: Any) =>
          Object.entries(item).map(([kind, request]) => ({
            action: `dynamodb:${operation === 'TransactGetItems' ? 'GetItem' : (TRANSACT_WRITE[kind] ?? kind)}`,
            resource: table(String((request as Any).TableName)),
          })),
        );
      }
      if (!input.TableName) return [{ action, resource: '*', unmapped: true }];
      const base = table(String(input.TableName));
      return [{ action, resource: input.IndexName ? `${base}/index/${input.IndexName}` : base }];
    }
    case 'sqs': {
      if (!input.QueueUrl) return [{ action, resource: '*', unmapped: true }];
      return [{ action, resource: queueArn(String(input.QueueUrl), where) }];
    }
    case 's3': {
      if (!input.Bucket) return [{ action, resource: '*', unmapped: true }];
      const bucket = `arn:aws:s3:::${input.Bucket}`;
      if (operation === 'DeleteObjects') {
        return ((input.Delete?.Objects ?? []) as Any[]).map((o) => ({
          action: 's3:DeleteObject',
          resource: `${bucket}/${o.Key}`,
        }));
      }
      if (operation === 'CopyObject') {
        const source = String(input.CopySource ?? '').replace(/^\//, '');
        return [
          { action: 's3:PutObject', resource: `${bucket}/${input.Key}` },
          { action: 's3:GetObject', resource: `arn:aws:s3:::${decodeURIComponent(source.split('?')[0] ?? '')}` },
        ];
      }
      if (S3_OBJECT_OPERATIONS.has(operation)) {
        const versioned = input.VersionId && (operation === 'GetObject' || operation === 'HeadObject');
        return [{ action: versioned ? 's3:GetObjectVersion' : action, resource: `${bucket}/${input.Key}` }];
      }
      return [{ action, resource: bucket }];
    }
    case 'lambda': {
      const name = String(input.FunctionName ?? '');
      if (!name) return [{ action, resource: '*', unmapped: true }];
      return [
        { action, resource: name.startsWith('arn:') ? name : `arn:aws:lambda:${region}:${account}:function:${name}` },
      ];
    }
    case 'secretsmanager': {
      const id = String(input.SecretId ?? '');
      if (!id) return [{ action, resource: '*', unmapped: true }];
      // IAM sees the full ARN, whose six random characters a name does not tell.
      return [
        {
          action,
          resource: id.startsWith('arn:') ? id : `arn:aws:secretsmanager:${region}:${account}:secret:${id}-xxxxxx`,
        },
      ];
    }
    default:
      return [{ action, resource: '*', unmapped: true }];
  }
}

/** `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`, or an emulator's `http://HOST/ACCOUNT/NAME`. */
export function queueArn(url: string, where: Where): string {
  const parsed = new URL(url);
  const parts = parsed.pathname.split('/').filter(Boolean);
  const name = parts.at(-1) ?? '';
  const account = /^\d{12}$/.test(parts.at(-2) ?? '') ? (parts.at(-2) as string) : where.account;
  const region = /^sqs\.([a-z0-9-]+)\.amazonaws\.com$/.exec(parsed.hostname)?.[1] ?? where.region;
  return `arn:aws:sqs:${region}:${account}:${name}`;
}

/** The folder calls go to, or undefined when recording is off. */
export function recordDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.IAM_RECORD_DIR ? resolve(env.IAM_RECORD_DIR) : undefined;
}

const seen = new Set<string>();

function write(dir: string, call: RecordedCall): void {
  const line = JSON.stringify(call);
  if (seen.has(line)) return;
  seen.add(line);
  mkdirSync(dir, { recursive: true });
  appendFileSync(join(dir, `calls-${process.pid}.jsonl`), `${line}\n`);
}

/** Adds the recorder to a client's middleware stack; `createClients` calls it only while recording. */
export function recordClient(client: { middlewareStack: Any }, dir: string): void {
  client.middlewareStack.add(
    (next: (args: Any) => Promise<Any>, context: Any) => async (args: Any) => {
      const fn = caller.getStore();
      if (!fn) return next(args);
      let presigned = false;
      try {
        const result = await next(args);
        presigned = Boolean(result?.output?.presigned);
        return result;
      } finally {
        // Recorded whether or not the call succeeded: a refused one needed the permission as much.
        const where = { region: process.env.AWS_REGION ?? 'us-east-1', account: LOCAL_ACCOUNT };
        for (const call of iamCalls(String(context.clientName), String(context.commandName), args.input, where)) {
          write(dir, {
            function: fn,
            stage: process.env.STAGE ?? '',
            ...where,
            ...call,
            ...(presigned ? { presigned } : {}),
          });
        }
      }
    },
    { step: 'initialize', name: 'jobsIamRecorder', override: true },
  );
}
