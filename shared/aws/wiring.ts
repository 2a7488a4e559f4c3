import { randomBytes } from 'node:crypto';
import { BatchEngine, DEFAULT_INPUT_POLICY } from '../core/batches/engine.js';
import { DEFAULT_READ_LIMITS } from '../core/batches/formats.js';
import { Finder } from '../core/find.js';
import { Jobs } from '../core/jobs.js';
import { DEFAULT_MAX_JSON_DEPTH, setMaxJsonDepth } from '../core/json-depth.js';
import type { ExpiredItems, ProcessorInvoker } from '../core/ports.js';
import { systemClock } from '../core/ports.js';
import { ProcessorRegistry } from '../core/processors.js';
import { Cursors } from '../core/search.js';
import { TaskEngine } from '../core/tasks/engine.js';
import { resourceEnv, resources } from '../resources.js';
import { S3BatchFiles } from './batch-files.js';
import { clientEnvKey, docClient, s3Client, sqsClient } from './clients.js';
import { DynamoJobIndex } from './job-index.js';
import { DynamoJobStore } from './job-store.js';
import { S3PayloadStore } from './payloads.js';
import { DynamoTallyStore } from './tally-store.js';
import { SqsWorkQueue } from './work-queue.js';

/**
 * Every setting the wiring reads. `wiringFromEnv` sees the environment only through this list
 * and `RESOURCES` (a name on neither is a type error there), and a warm function's wiring is
 * keyed on exactly these, so nothing can be read without a change to it renewing the wiring.
 */
const SETTINGS = [
  'MAX_JSON_DEPTH',
  'INLINE_PAYLOAD_LIMIT_BYTES',
  'JOB_RETENTION_DAYS',
  'JOB_RETENTION_DAYS_BY_TYPE',
  'SEARCH_INDEX',
  'PROCESSORS',
  'LEASE_MARGIN_SECONDS',
  'CURSOR_KEY',
  'CURSOR_SECRET_ARN',
  'BATCH_MAX_LINE_BYTES',
  'BATCH_CSV_MAX_QUOTED_LINES',
  'BATCH_INPUT_BUCKETS',
  'BATCH_INPUT_PREFIX',
  'BATCH_INPUT_MAX_BYTES',
  'PLAN_CHUNKS_PER_STEP',
  'FINALIZE_CHUNKS_PER_STEP',
] as const;

type Settings = { readonly [name in (typeof SETTINGS)[number]]?: string };

/** The variables that name the wiring's resources (as shared/resources.ts spells them): all required. */
const RESOURCES = {
  table: resourceEnv.table('jobs'),
  bucket: resourceEnv.bucket('data'),
  workQueue: resourceEnv.queueUrl('work'),
};

function settingsOf(env: NodeJS.ProcessEnv): Settings {
  return Object.fromEntries(SETTINGS.flatMap((name) => (env[name] === undefined ? [] : [[name, env[name]]])));
}

function resourcesOf(env: NodeJS.ProcessEnv): Record<keyof typeof RESOURCES, string> {
  const named = Object.entries(RESOURCES).map(([resource, name]) => {
    const value = env[name];
    if (!value) throw new Error(`Missing environment variable ${name}`);
    return [resource, value];
  });
  return Object.fromEntries(named) as Record<keyof typeof RESOURCES, string>;
}

/** What a cached wiring was built from: the clients' variables and every one on the lists above. */
function wiringKey(env: NodeJS.ProcessEnv): string {
  const names = [...Object.values(RESOURCES), ...SETTINGS];
  return JSON.stringify([clientEnvKey(env), names.map((name) => env[name] ?? null)]);
}

/** A positive number from the environment, or the default when unset or unreadable. */
function positiveNumber(value: string | undefined, fallback: number): number {
  const parsed = Number(value);
  return value !== undefined && value.trim() !== '' && Number.isFinite(parsed) && parsed > 0 ? parsed : fallback;
}

export interface Wiring {
  /** The use cases on jobs of either kind: what handlers call. */
  jobs: Jobs;
  /** Deletes expired items where the database has no TTL (the sweeper, on the local emulators). */
  expired: ExpiredItems;
}

/** `JOB_RETENTION_DAYS_BY_TYPE`: `{"TYPE": days}` where a type keeps its finished jobs longer or shorter. */
function retentionByType(env: Settings): Record<string, number> {
  if (!env.JOB_RETENTION_DAYS_BY_TYPE) return {};
  const parsed = JSON.parse(env.JOB_RETENTION_DAYS_BY_TYPE) as unknown;
  if (
    !parsed ||
    typeof parsed !== 'object' ||
    Object.values(parsed).some((d) => !Number.isInteger(d) || (d as number) < 1)
  ) {
    throw new Error('JOB_RETENTION_DAYS_BY_TYPE must be a JSON object of whole numbers of days (≥ 1)');
  }
  return parsed as Record<string, number>;
}

/**
 * A key for this process alone, when none is configured: cursors then last as long as the process
 * (the local stack runs every function in one process, and `npm start` with kept state sets
 * CURSOR_KEY from its state folder instead). Never derived from anything guessable.
 */
const processCursorKey = randomBytes(32).toString('base64url');

/**
 * The key that signs cursors: `CURSOR_KEY`, or the Secrets Manager secret `CURSOR_SECRET_ARN`
 * names (the CDK stack generates one, for the API), read by the function's `secret` part, else
 * this process's own.
 */
function cursorKey(env: Settings, secret: WiringParts['secret'], name: string): () => Promise<string> {
  return async () => {
    if (env.CURSOR_KEY) return env.CURSOR_KEY;
    if (!env.CURSOR_SECRET_ARN) return processCursorKey;
    if (!secret) throw new Error(`${name} signs no cursors: its wiring was built without a secret reader`);
    const value = await secret(env.CURSOR_SECRET_ARN);
    if (typeof value !== 'string' || value === '') throw new Error('The cursor key secret is empty');
    return value;
  };
}

/**
 * What only some functions need, handed in by those that do, so that the others' bundles leave
 * it (and the SDK client behind it) out: calling processors (the worker, with the Lambda client),
 * and reading the cursor key's secret (the API, the one function that signs cursors, with the
 * Secrets Manager client).
 */
export interface WiringParts {
  invoker?: (env: NodeJS.ProcessEnv) => ProcessorInvoker;
  /** The value of the Secrets Manager secret `arn`, cached as the reader sees fit. */
  secret?: (arn: string) => Promise<unknown>;
}

/** The invoker of a function that calls no processors: reaching it is a bug in the wiring. */
function noInvoker(name: string): ProcessorInvoker {
  const refuse = async (): Promise<never> => {
    throw new Error(`${name} calls no processors: its wiring was built without an invoker`);
  };
  return { invoke: refuse, invokeChunk: refuse };
}

/**
 * Builds the engine from the environment the CDK stack (or the local runtime) sets. Built once
 * per warm Lambda; a bad processor configuration fails the cold start loudly.
 */
export function wiringFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  log?: ConstructorParameters<typeof TaskEngine>[0]['log'],
  parts: WiringParts = {},
  name = 'this function',
): Wiring {
  const settings = settingsOf(env);
  const named = resourcesOf(env);
  const doc = docClient();
  const sqs = sqsClient();
  const s3 = s3Client();
  // The schemas' depth limit is module state of the core; every function sets it here, at cold start.
  setMaxJsonDepth(settings.MAX_JSON_DEPTH ? Number(settings.MAX_JSON_DEPTH) : DEFAULT_MAX_JSON_DEPTH);
  const payloads = new S3PayloadStore(s3, named.bucket, positiveNumber(settings.INLINE_PAYLOAD_LIMIT_BYTES, 64 * 1024));
  const retentionDays = positiveNumber(settings.JOB_RETENTION_DAYS, 30);
  const search = settings.SEARCH_INDEX !== 'off';
  const store = new DynamoJobStore(doc, named.table, payloads, retentionDays, retentionByType(settings), search);
  const processors = ProcessorRegistry.fromJson(settings.PROCESSORS ?? '{}', {
    workerTimeoutSeconds: resources.functions.worker.timeoutSeconds,
    maxReceiveCount: resources.queues.work.deadLetter.maxReceiveCount,
  });
  const queue = new SqsWorkQueue(sqs, named.workQueue);
  // The invoker reads a processor's secret (`secretEnv`) when it calls it, so it gets the live environment.
  const invoker = parts.invoker ? parts.invoker(env) : noInvoker(name);
  const leaseMarginSeconds = positiveNumber(settings.LEASE_MARGIN_SECONDS, 10);
  const cursors = new Cursors(cursorKey(settings, parts.secret, name));
  const batches = new BatchEngine({
    store,
    tallies: new DynamoTallyStore(doc, named.table, retentionDays),
    files: new S3BatchFiles(s3, named.bucket, {
      maxLineBytes: positiveNumber(settings.BATCH_MAX_LINE_BYTES, DEFAULT_READ_LIMITS.maxLineBytes),
      maxQuotedLines: positiveNumber(settings.BATCH_CSV_MAX_QUOTED_LINES, DEFAULT_READ_LIMITS.maxQuotedLines),
    }),
    queue,
    invoker,
    processors,
    clock: systemClock,
    cursors,
    leaseMarginSeconds,
    inputs: {
      buckets: (settings.BATCH_INPUT_BUCKETS ?? '')
        .split(',')
        .map((b) => b.trim())
        .filter(Boolean),
      ...(settings.BATCH_INPUT_PREFIX !== undefined ? { ownPrefix: settings.BATCH_INPUT_PREFIX } : {}),
      ...(settings.BATCH_INPUT_MAX_BYTES
        ? { maxBytes: positiveNumber(settings.BATCH_INPUT_MAX_BYTES, DEFAULT_INPUT_POLICY.maxBytes) }
        : {}),
    },
    ...(settings.PLAN_CHUNKS_PER_STEP
      ? { planChunksPerStep: positiveNumber(settings.PLAN_CHUNKS_PER_STEP, 10_000) }
      : {}),
    ...(settings.FINALIZE_CHUNKS_PER_STEP
      ? { finalizeChunksPerStep: positiveNumber(settings.FINALIZE_CHUNKS_PER_STEP, 2000) }
      : {}),
    ...(log ? { log } : {}),
  });
  const tasks = new TaskEngine({
    store,
    queue,
    invoker,
    payloads,
    processors,
    clock: systemClock,
    leaseMarginSeconds,
    ...(log ? { log } : {}),
  });
  const finder = new Finder(new DynamoJobIndex(doc, named.table), cursors, search);
  const jobs = new Jobs({ store, tasks, batches, finder, payloads, cursors, clock: systemClock });
  return { jobs, expired: store };
}

const cache = new Map<string, { key: string; wiring: Wiring }>();

/**
 * The wiring of one function (`name`), reused while the environment stays the same (a warm
 * Lambda). Keyed on the variables it reads (`wiringKey`), so a local stack restarted in the same
 * process gets fresh wiring; per function, so each logs under its own service name.
 */
export function wiring(name: string, log?: Parameters<typeof wiringFromEnv>[1], parts: WiringParts = {}): Wiring {
  const key = wiringKey(process.env);
  const hit = cache.get(name);
  if (hit?.key === key) return hit.wiring;
  const fresh = wiringFromEnv(process.env, log, parts, name);
  cache.set(name, { key, wiring: fresh });
  return fresh;
}
