import { randomBytes } from 'node:crypto';
import { getSecret } from '@aws-lambda-powertools/parameters/secrets';
import { BatchEngine, DEFAULT_INPUT_POLICY } from '../core/batches/engine.js';
import { DEFAULT_READ_LIMITS } from '../core/batches/formats.js';
import { Finder } from '../core/find.js';
import { Jobs } from '../core/jobs.js';
import { DEFAULT_MAX_JSON_DEPTH, setMaxJsonDepth } from '../core/json-depth.js';
import type { ProcessorInvoker } from '../core/ports.js';
import { systemClock } from '../core/ports.js';
import { ProcessorRegistry } from '../core/processors.js';
import { Cursors } from '../core/search.js';
import { TaskEngine } from '../core/tasks/engine.js';
import { resourceEnv, resources } from '../resources.js';
import { S3BatchFiles } from './batch-files.js';
import { docClient, s3Client, sqsClient } from './clients.js';
import { DynamoJobIndex } from './job-index.js';
import { DynamoJobStore } from './job-store.js';
import { S3PayloadStore } from './payloads.js';
import { DynamoTallyStore } from './tally-store.js';
import { SqsWorkQueue } from './work-queue.js';

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (!value) throw new Error(`Missing environment variable ${name}`);
  return value;
}

/** A positive number from the environment, or the default when unset or unreadable. */
function positiveNumber(value: string | undefined, fallback: number): number {
  const parsed = Number(value);
  return value !== undefined && value.trim() !== '' && Number.isFinite(parsed) && parsed > 0 ? parsed : fallback;
}

export interface Wiring {
  /** The use cases on jobs of either kind: what handlers call. */
  jobs: Jobs;
  batches: BatchEngine;
  finder: Finder;
  store: DynamoJobStore;
  payloads: S3PayloadStore;
}

/** `JOB_RETENTION_DAYS_BY_TYPE`: `{"TYPE": days}` where a type keeps its finished jobs longer or shorter. */
function retentionByType(env: NodeJS.ProcessEnv): Record<string, number> {
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
 * names (the CDK stack generates one; Powertools caches it for five minutes), else this process's own.
 */
function cursorKey(env: NodeJS.ProcessEnv): () => Promise<string> {
  return async () => {
    if (env.CURSOR_KEY) return env.CURSOR_KEY;
    if (!env.CURSOR_SECRET_ARN) return processCursorKey;
    const value = await getSecret(env.CURSOR_SECRET_ARN, { maxAge: 300 });
    if (typeof value !== 'string' || value === '') throw new Error('The cursor key secret is empty');
    return value;
  };
}

/**
 * What only some functions need, handed in by those that do, so that the others' bundles leave
 * it (and the SDK client behind it) out: calling processors (the worker, with the Lambda client).
 */
export interface WiringParts {
  invoker?: (env: NodeJS.ProcessEnv) => ProcessorInvoker;
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
  const doc = docClient();
  const sqs = sqsClient();
  const s3 = s3Client();
  // The schemas' depth limit is module state of the core; every function sets it here, at cold start.
  setMaxJsonDepth(env.MAX_JSON_DEPTH ? Number(env.MAX_JSON_DEPTH) : DEFAULT_MAX_JSON_DEPTH);
  const payloads = new S3PayloadStore(
    s3,
    required(env, resourceEnv.bucket('data')),
    positiveNumber(env.INLINE_PAYLOAD_LIMIT_BYTES, 64 * 1024),
  );
  const table = required(env, resourceEnv.table('jobs'));
  const retentionDays = positiveNumber(env.JOB_RETENTION_DAYS, 30);
  const search = env.SEARCH_INDEX !== 'off';
  const store = new DynamoJobStore(doc, table, payloads, retentionDays, retentionByType(env), search);
  const processors = ProcessorRegistry.fromJson(env.PROCESSORS ?? '{}', {
    workerTimeoutSeconds: resources.functions.worker.timeoutSeconds,
    maxReceiveCount: resources.queues.work.deadLetter.maxReceiveCount,
  });
  const queue = new SqsWorkQueue(sqs, required(env, resourceEnv.queueUrl('work')));
  const invoker = parts.invoker ? parts.invoker(env) : noInvoker(name);
  const leaseMarginSeconds = positiveNumber(env.LEASE_MARGIN_SECONDS, 10);
  const cursors = new Cursors(cursorKey(env));
  const batches = new BatchEngine({
    store,
    tallies: new DynamoTallyStore(doc, table, retentionDays),
    files: new S3BatchFiles(s3, required(env, resourceEnv.bucket('data')), {
      maxLineBytes: positiveNumber(env.BATCH_MAX_LINE_BYTES, DEFAULT_READ_LIMITS.maxLineBytes),
      maxQuotedLines: positiveNumber(env.BATCH_CSV_MAX_QUOTED_LINES, DEFAULT_READ_LIMITS.maxQuotedLines),
    }),
    queue,
    invoker,
    processors,
    clock: systemClock,
    cursors,
    leaseMarginSeconds,
    inputs: {
      buckets: (env.BATCH_INPUT_BUCKETS ?? '')
        .split(',')
        .map((b) => b.trim())
        .filter(Boolean),
      ...(env.BATCH_INPUT_PREFIX !== undefined ? { ownPrefix: env.BATCH_INPUT_PREFIX } : {}),
      ...(env.BATCH_INPUT_MAX_BYTES
        ? { maxBytes: positiveNumber(env.BATCH_INPUT_MAX_BYTES, DEFAULT_INPUT_POLICY.maxBytes) }
        : {}),
    },
    ...(env.PLAN_CHUNKS_PER_STEP ? { planChunksPerStep: positiveNumber(env.PLAN_CHUNKS_PER_STEP, 10_000) } : {}),
    ...(env.FINALIZE_CHUNKS_PER_STEP
      ? { finalizeChunksPerStep: positiveNumber(env.FINALIZE_CHUNKS_PER_STEP, 2000) }
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
  const jobs = new Jobs({ store, tasks, batches, clock: systemClock });
  const finder = new Finder(new DynamoJobIndex(doc, table), cursors, search);
  return { jobs, batches, finder, store, payloads };
}

const cache = new Map<string, { key: string; wiring: Wiring }>();

/**
 * The wiring of one function (`name`), reused while the environment stays the same (a warm
 * Lambda). Keyed on the variables it reads, so a local stack restarted in the same process gets
 * fresh wiring; per function, so each logs under its own service name.
 */
export function wiring(name: string, log?: Parameters<typeof wiringFromEnv>[1], parts: WiringParts = {}): Wiring {
  const key = JSON.stringify(
    Object.entries(process.env)
      .filter(([variable]) =>
        /^(AWS_ENDPOINT_URL|TABLE_|QUEUE_URL_|BUCKET_|PROCESSORS$|INLINE_PAYLOAD|JOB_RETENTION|LEASE_MARGIN|CURSOR_|SEARCH_INDEX|PLAN_CHUNKS|FINALIZE_CHUNKS|BATCH_|MAX_JSON_DEPTH$)/.test(
          variable,
        ),
      )
      .sort(),
  );
  const hit = cache.get(name);
  if (hit?.key === key) return hit.wiring;
  const fresh = wiringFromEnv(process.env, log, parts, name);
  cache.set(name, { key, wiring: fresh });
  return fresh;
}
