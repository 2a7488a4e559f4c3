import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEMO_MEMORY_MB, demoFunction, demoProcessors, demoRegistry } from '../examples/processors/catalog.js';
import { createClients } from '../shared/aws/clients.js';
import { type ProcessorConfig, ProcessorRegistry } from '../shared/core/processors.js';
import { json } from '../shared/http/responses.js';
import {
  type BucketKey,
  type EventSourceQueue,
  type FunctionKey,
  physicalName,
  type QueueKey,
  resourceEnv,
  resources,
  type TableKey,
} from '../shared/resources.js';
import {
  type Cloud,
  type CloudEndpoints,
  externalCloud,
  LOCAL_CREDENTIALS,
  LOCAL_REGION,
  type Profile,
  type ProvisionedResources,
  provision,
  startAwsLocalCloud,
  startEmbeddedCloud,
} from './cloud.js';
import { close, listen } from './net.js';
import { createApiGateway } from './runtime/api-gateway.js';
import {
  createJwtAuthority,
  iamAuthorizer,
  jwtAuthorizer,
  type LocalAuthMode,
  type LocalAuthOptions,
  noneAuthorizer,
} from './runtime/authorizers.js';
import { FunctionHost, type LocalFunction, moduleFunction } from './runtime/functions.js';
import { createLambdaEndpoint } from './runtime/lambda-endpoint.js';
import { DEFAULT_LOCAL_PRINCIPAL } from './runtime/principals.js';
import { RateSchedule } from './runtime/schedules.js';
import { type Chaos, SqsEventSource } from './runtime/sqs-event-source.js';

export interface ExtraEventSource {
  queue: QueueKey | { url: string; arn: string };
  function: string;
  batchSize?: number;
  maxConcurrency?: number;
  maximumBatchingWindowSeconds?: number;
}

export interface LocalStackOptions {
  /** API port on 127.0.0.1; 0 picks a free one. */
  port?: number;
  /** Folder for tables and objects that survive a restart; in memory when absent. */
  stateDir?: string;
  /** Which local cloud: `embedded` (npm only, default) or `aws-local` (DynamoDB Local + moto). */
  profile?: Profile;
  stage?: string;
  /** Functions beyond the declared ones: demo processors, test fixtures. */
  extraFunctions?: LocalFunction[];
  extraEventSources?: ExtraEventSource[];
  /** Register the demo processors of API.md (default true). */
  demo?: boolean;
  /** More processors to register (name → config), beside the demo ones. */
  processors?: Record<string, ProcessorConfig>;
  /** Batching windows instead of the declared ones, by queue, as an environment's setting sets them in AWS. */
  batchingWindowSeconds?: Partial<Record<EventSourceQueue, number>>;
  /** Fault injection on the declared event sources (`resend` applies to the work queue only). */
  chaos?: Chaos;
  /** Extra environment for the handlers (e.g. LEASE_MARGIN_SECONDS in fault tests). */
  handlerEnv?: Record<string, string>;
  /**
   * How the local API Gateway authenticates (default `none`: header `X-Local-Owner` names the
   * caller); `iam` checks SigV4 like an IAM authorizer, `jwt` checks tokens of a local issuer.
   */
  auth?: LocalAuthMode | LocalAuthOptions;
  /** Start the declared event sources and schedules (tests may prefer to step them). */
  startPollers?: boolean;
  env?: NodeJS.ProcessEnv;
  log?: (entry: Record<string, unknown>) => void;
}

/** What `GET /local/info` answers: where everything runs, for tools and tests. */
export interface LocalInfo {
  mode: Cloud['mode'];
  /** Emulator processes of the aws-local profile (pids), none for the embedded cloud. */
  processes: Cloud['processes'];
  region: string;
  stage: string;
  api: string;
  endpoints: CloudEndpoints & { lambda: string };
  tables: ProvisionedResources['tables'];
  queues: ProvisionedResources['queues'];
  buckets: ProvisionedResources['buckets'];
  functions: string[];
  /** How the API authenticates: what a client (or test) needs to call it. Never any secret. */
  auth: {
    mode: LocalAuthMode;
    /** `none`: the header naming the caller, and who a request without it acts as. */
    ownerHeader?: string;
    defaultOwner?: string;
    /** `iam`: the names of the known users, and the signing scope. */
    users?: string[];
    region?: string;
    service?: string;
    /** `jwt`: what tokens must carry, where the keys and fresh tokens are. */
    issuer?: string;
    audience?: string;
    jwks?: string;
    token?: string;
  };
}

export interface LocalStack {
  info: LocalInfo;
  host: FunctionHost;
  eventSources: SqsEventSource[];
  schedules: RateSchedule[];
  /** `jwt` mode: a token from the local issuer (`iss`, `aud`, `iat`, `exp` unless `claims` sets them). */
  issueToken(claims?: Record<string, unknown>, options?: { expiresIn?: number }): Promise<string>;
  stop(): Promise<void>;
}

const ROOT = new URL('../', import.meta.url);

/**
 * Boots the whole system on this machine: the cloud (embedded, or external when AWS_ENDPOINT_URL
 * is set), the declared resources, every declared function behind a local API Gateway, SQS event
 * sources, schedules and a Lambda Invoke endpoint. Handlers find it all through the same
 * environment variables the CDK stack sets in AWS.
 */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const env = options.env ?? process.env;
  const stage = options.stage ?? 'local';
  const log = options.log ?? ((entry) => console.error(JSON.stringify(entry)));
  const demo = options.demo ?? true;
  const processors = JSON.stringify({
    ...(demo ? demoRegistry((d) => functionName(stage, demoFunction(d))) : {}),
    ...options.processors,
  });
  // Before anything starts: a registry the worker would refuse at its cold start, or one naming a
  // function nothing here runs, fails the start in one line instead of every job later.
  checkRegistry(
    ProcessorRegistry.fromJson(processors, {
      workerTimeoutSeconds: resources.functions.worker.timeoutSeconds,
      maxReceiveCount: resources.queues.work.deadLetter.maxReceiveCount,
    }),
    [
      ...Object.keys(resources.functions).map((key) => functionName(stage, key)),
      ...(demo ? demoProcessors.map((d) => functionName(stage, demoFunction(d))) : []),
      ...(options.extraFunctions ?? []).map((fn) => fn.name),
    ],
  );
  const cloud =
    externalCloud(env) ??
    (options.profile === 'aws-local'
      ? await startAwsLocalCloud({ stateDir: options.stateDir })
      : await startEmbeddedCloud({ stateDir: options.stateDir }));
  const stopping: (() => Promise<void>)[] = [() => cloud.stop()];
  try {
    const provisioned = await provision(cloud.endpoints, stage);
    const host = new FunctionHost(LOCAL_REGION);
    const lambdaEndpoint = createLambdaEndpoint(host, log);
    const lambdaPort = await listen(lambdaEndpoint, 0);
    stopping.unshift(() => close(lambdaEndpoint));

    // Handlers run in this process and read the same variables the CDK stack sets in AWS. They are
    // put back on stop, so a later stack in the same process does not mistake them for an external cloud.
    const vars: Record<string, string | undefined> = {
      AWS_REGION: LOCAL_REGION,
      AWS_ENDPOINT_URL_DYNAMODB: cloud.endpoints.dynamodb,
      AWS_ENDPOINT_URL_SQS: cloud.endpoints.sqs,
      AWS_ENDPOINT_URL_S3: cloud.endpoints.s3,
      AWS_ENDPOINT_URL_LAMBDA: `http://127.0.0.1:${lambdaPort}`,
      STAGE: stage,
    };
    vars.PROCESSORS = processors;
    // Cursors signed under `npm start` with kept state must survive a restart, as the jobs do.
    if (options.stateDir && !env.CURSOR_KEY && !env.CURSOR_SECRET_ARN)
      vars.CURSOR_KEY = stateCursorKey(options.stateDir);
    Object.assign(vars, options.handlerEnv);
    if (cloud.mode === 'embedded' || !env.AWS_ACCESS_KEY_ID) {
      Object.assign(vars, {
        AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
        AWS_SESSION_TOKEN: undefined,
        AWS_PROFILE: undefined,
      });
    }
    for (const [key, name] of Object.entries(provisioned.tables)) vars[resourceEnv.table(key as TableKey)] = name;
    for (const [key, queue] of Object.entries(provisioned.queues))
      vars[resourceEnv.queueUrl(key as QueueKey)] = queue.url;
    for (const [key, name] of Object.entries(provisioned.buckets)) vars[resourceEnv.bucket(key as BucketKey)] = name;
    stopping.push(setEnv(vars));

    for (const [key, fn] of Object.entries(resources.functions)) {
      host.register(
        await moduleFunction({
          name: functionName(stage, key as FunctionKey),
          module: new URL(fn.entry, ROOT),
          timeoutSeconds: fn.timeoutSeconds,
          memoryMb: fn.memoryMb,
        }),
      );
    }
    for (const d of demo ? demoProcessors : []) {
      host.register(
        await moduleFunction({
          name: functionName(stage, demoFunction(d)),
          module: new URL(d.module, ROOT),
          export: d.export,
          timeoutSeconds: d.timeoutSeconds,
          memoryMb: DEMO_MEMORY_MB,
        }),
      );
    }
    for (const fn of options.extraFunctions ?? []) host.register(fn);

    // Built like the handlers' clients, so the request meter counts the event sources' polling too.
    const { sqs } = createClients();
    stopping.unshift(async () => sqs.destroy());
    const declaredSources = resources.eventSources.map((source) => ({
      ...source,
      maximumBatchingWindowSeconds:
        options.batchingWindowSeconds?.[source.queue] ?? source.maximumBatchingWindowSeconds,
      function: functionName(stage, source.function),
      chaos: options.chaos && { ...options.chaos, resend: source.queue === 'work' && options.chaos.resend },
    }));
    const eventSources = [...declaredSources, ...(options.extraEventSources ?? [])].map((source) => {
      const queue = typeof source.queue === 'string' ? provisioned.queues[source.queue] : source.queue;
      if (!queue) throw new Error(`Unknown queue ${String(source.queue)}`);
      return new SqsEventSource(
        sqs,
        host,
        {
          queueUrl: queue.url,
          queueArn: queue.arn,
          functionName: source.function,
          batchSize: source.batchSize ?? 10,
          maxConcurrency: source.maxConcurrency ?? 1,
          maximumBatchingWindowSeconds: source.maximumBatchingWindowSeconds ?? 0,
          longPoll: cloud.longPolls,
          ...('chaos' in source && source.chaos ? { chaos: source.chaos } : {}),
        },
        LOCAL_REGION,
        log,
      );
    });
    const schedules = Object.entries(resources.schedules).map(
      ([name, schedule]) =>
        new RateSchedule(host, name, functionName(stage, schedule.function), schedule.rateSeconds, LOCAL_REGION),
    );
    if (options.startPollers ?? true) {
      for (const source of eventSources) source.start();
      for (const schedule of schedules) schedule.start();
    }
    stopping.unshift(async () => {
      await Promise.all([...eventSources.map((s) => s.stop()), ...schedules.map((s) => s.stop())]);
    });

    const auth: LocalAuthOptions =
      typeof options.auth === 'string' ? { mode: options.auth } : (options.auth ?? { mode: 'none' });
    // In jwt mode the issuer is the API's own URL, known once it listens.
    const authority =
      auth.mode === 'jwt' ? await createJwtAuthority({ issuer: () => info.api, audience: auth.audience }) : undefined;
    const authorizer =
      auth.mode === 'iam'
        ? iamAuthorizer({
            users: auth.users ?? [
              {
                name: DEFAULT_LOCAL_PRINCIPAL,
                // Field by field: the SDK tags credential objects it has used with fields of its own.
                accessKeyId: LOCAL_CREDENTIALS.accessKeyId,
                secretAccessKey: LOCAL_CREDENTIALS.secretAccessKey,
              },
            ],
            region: LOCAL_REGION,
          })
        : authority
          ? jwtAuthorizer(authority)
          : noneAuthorizer();

    const info: LocalInfo = {
      mode: cloud.mode,
      processes: cloud.processes,
      region: LOCAL_REGION,
      stage,
      api: '',
      endpoints: { ...cloud.endpoints, lambda: `http://127.0.0.1:${lambdaPort}` },
      ...provisioned,
      functions: host.names(),
      auth: { mode: auth.mode },
    };
    const api = createApiGateway({
      host,
      functionName: functionName(stage, resources.api.function),
      routes: resources.api.routes,
      authorizer,
      publicRoutes: resources.api.publicRoutes,
      localRoutes: (method, path, body) => {
        if (method === 'GET' && path === '/local/info') return json(200, info);
        if (authority && method === 'GET' && path === '/local/jwks.json') return json(200, authority.jwks);
        if (authority && method === 'POST' && path === '/local/token') return authority.tokenEndpoint(body);
        return undefined;
      },
      log,
    });
    const apiPort = await listen(api, options.port ?? 0);
    stopping.unshift(() => close(api));
    info.api = `http://127.0.0.1:${apiPort}`;
    if (auth.mode === 'none') {
      info.auth = { mode: 'none', ownerHeader: 'X-Local-Owner', defaultOwner: DEFAULT_LOCAL_PRINCIPAL };
    } else if (auth.mode === 'iam') {
      const users = auth.users?.map((user) => user.name) ?? [DEFAULT_LOCAL_PRINCIPAL];
      info.auth = { mode: 'iam', users, region: LOCAL_REGION, service: 'execute-api' };
    } else if (authority) {
      info.auth = {
        mode: 'jwt',
        issuer: authority.issuer(),
        audience: authority.audience,
        jwks: `${info.api}/local/jwks.json`,
        token: `${info.api}/local/token`,
      };
    }
    // Cooperative demo processors (demo.sleep) watch their job through the public API.
    stopping.push(setEnv({ JOBS_API_URL: info.api }));

    let stopped: Promise<void> | undefined;
    return {
      info,
      host,
      eventSources,
      schedules,
      issueToken: (claims, tokenOptions) => {
        if (!authority) return Promise.reject(new Error(`issueToken needs auth mode 'jwt', not '${auth.mode}'`));
        return authority.issue(claims, tokenOptions);
      },
      stop: () => {
        stopped ??= runAll(stopping);
        return stopped;
      },
    };
  } catch (error) {
    await runAll(stopping);
    throw error;
  }
}

/** Every function is hosted once, and every Lambda processor calls one that is hosted. */
function checkRegistry(registry: ProcessorRegistry, functions: string[]): void {
  const twice = functions.filter((name, i) => functions.indexOf(name) !== i);
  if (twice.length > 0) throw new Error(`Function ${twice[0]} is declared twice`);
  for (const name of registry.names()) {
    const target = registry.get(name)?.target;
    if (target?.type === 'lambda' && !functions.includes(target.functionName)) {
      throw new Error(
        `Processor ${name} calls Lambda function ${target.functionName}, which does not run here: map it to its handler module in LOCAL_FUNCTIONS`,
      );
    }
  }
}

/**
 * The cursor key kept in a state folder: made at random the first time, owner-readable only. A
 * state folder belongs to one person's machine, so it holds the key as it holds the data.
 */
export function stateCursorKey(stateDir: string): string {
  const file = join(stateDir, 'cursor-key');
  mkdirSync(stateDir, { recursive: true });
  try {
    writeFileSync(file, randomBytes(32).toString('base64url'), { flag: 'wx', mode: 0o600 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  return readFileSync(file, 'utf8').trim();
}

/** Sets (or, for undefined, removes) variables; returns the step that puts the old values back. */
function setEnv(vars: Record<string, string | undefined>): () => Promise<void> {
  const previous = Object.fromEntries(Object.keys(vars).map((key) => [key, process.env[key]]));
  const assign = (values: Record<string, string | undefined>) => {
    for (const [key, value] of Object.entries(values)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  };
  assign(vars);
  return async () => assign(previous);
}

async function runAll(steps: (() => Promise<void>)[]): Promise<void> {
  for (const step of steps) {
    await step().catch(() => {});
  }
}

export function functionName(stage: string, key: string): string {
  return physicalName(stage, key);
}
