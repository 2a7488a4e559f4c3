import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { demoProcessors } from '../examples/processors/local.js';
import { createClients } from '../shared/aws/clients.js';
import type { ProcessorConfig } from '../shared/core/processors.js';
import { json } from '../shared/http/responses.js';
import {
  type BucketKey,
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
import { FunctionHost, type LambdaHandler, type LocalFunction } from './runtime/functions.js';
import { createLambdaEndpoint } from './runtime/lambda-endpoint.js';
import { RateSchedule } from './runtime/schedules.js';
import { type Chaos, SqsEventSource } from './runtime/sqs-event-source.js';

export interface ExtraEventSource {
  queue: QueueKey | { url: string; arn: string };
  function: string;
  batchSize?: number;
  maxConcurrency?: number;
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
  /** Fault injection on the declared event sources (`resend` applies to the work queue only). */
  chaos?: Chaos;
  /** Extra environment for the handlers (e.g. LEASE_MARGIN_SECONDS in fault tests). */
  handlerEnv?: Record<string, string>;
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
}

export interface LocalStack {
  info: LocalInfo;
  host: FunctionHost;
  eventSources: SqsEventSource[];
  schedules: RateSchedule[];
  stop(): Promise<void>;
}

let sandboxes = 0;

/**
 * A fresh instance of a handler module, as a new Lambda sandbox would have: the query string makes
 * the module loader evaluate the entry module again (its imports stay shared).
 */
async function loadHandler(entry: string): Promise<LambdaHandler> {
  const url = new URL(`../${entry}`, import.meta.url);
  url.searchParams.set('sandbox', String(++sandboxes));
  const module = (await import(url.href)) as { handler?: LambdaHandler };
  if (typeof module.handler !== 'function') throw new Error(`${entry} exports no handler`);
  return module.handler;
}

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
    const demo = (options.demo ?? true) ? demoProcessors(stage) : { functions: [], processors: {} };
    vars.PROCESSORS = JSON.stringify({ ...demo.processors, ...options.processors });
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
      // Load once now so a broken module fails the start, not the first request.
      await loadHandler(fn.entry);
      host.register({
        name: functionName(stage, key as FunctionKey),
        load: () => loadHandler(fn.entry),
        timeoutSeconds: fn.timeoutSeconds,
        memoryMb: fn.memoryMb,
      });
    }
    for (const fn of [...demo.functions, ...(options.extraFunctions ?? [])]) host.register(fn);

    // Built like the handlers' clients, so the request meter counts the event sources' polling too.
    const { sqs } = createClients();
    stopping.unshift(async () => sqs.destroy());
    const declaredSources = resources.eventSources.map((source) => ({
      ...source,
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

    const info: LocalInfo = {
      mode: cloud.mode,
      processes: cloud.processes,
      region: LOCAL_REGION,
      stage,
      api: '',
      endpoints: { ...cloud.endpoints, lambda: `http://127.0.0.1:${lambdaPort}` },
      ...provisioned,
      functions: host.names(),
    };
    const api = createApiGateway({
      host,
      functionName: functionName(stage, resources.api.function),
      routes: resources.api.routes,
      localRoutes: (method, path) => (method === 'GET' && path === '/local/info' ? json(200, info) : undefined),
      log,
    });
    const apiPort = await listen(api, options.port ?? 0);
    stopping.unshift(() => close(api));
    info.api = `http://127.0.0.1:${apiPort}`;
    // Cooperative demo processors (demo.sleep) watch their job through the public API.
    stopping.push(setEnv({ JOBS_API_URL: info.api }));

    let stopped: Promise<void> | undefined;
    return {
      info,
      host,
      eventSources,
      schedules,
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
