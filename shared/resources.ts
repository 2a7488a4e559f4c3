/**
 * The one declaration of the cloud resources: tables, queues, buckets, functions, routes,
 * event sources and schedules. `local/` creates these in the embedded cloud and `infra/` turns the
 * same objects into CloudFormation, so the two cannot drift. Every table/queue setting lives here.
 */

import { OBJECT_PREFIXES } from './core/keys.js';

export type AttributeType = 'S' | 'N';

export interface KeyDeclaration {
  name: string;
  type: AttributeType;
}

export interface IndexDeclaration {
  /** 3+ characters: dynalite and DynamoDB Local refuse shorter index names. */
  name: string;
  partitionKey: KeyDeclaration;
  sortKey: KeyDeclaration;
  /**
   * KEYS_ONLY keeps index writes (billed like table writes) as small as they get; INCLUDE adds
   * `include` — only attributes that never change, or every change would rewrite the index entry.
   */
  projection: 'KEYS_ONLY' | 'INCLUDE' | 'ALL';
  include?: string[];
}

export interface TableDeclaration {
  name: string;
  partitionKey: KeyDeclaration;
  sortKey?: KeyDeclaration;
  /** Epoch-seconds attribute DynamoDB TTL deletes by (free deletes; see ARCHITECTURE.md). */
  ttlAttribute?: string;
  indexes: IndexDeclaration[];
}

export interface QueueDeclaration {
  name: string;
  visibilityTimeoutSeconds: number;
  retentionSeconds: number;
  /** Where messages go after `maxReceiveCount` failed receives. */
  deadLetter?: { queue: string; maxReceiveCount: number };
}

export interface BucketDeclaration {
  name: string;
  /**
   * Objects under these prefixes expire: batch files after the environment's object retention;
   * task payloads only after their jobs can no longer be read (job retention plus a margin for a
   * job's own running time), so a readable job never points at a deleted value.
   */
  expiringPrefixes: { prefix: string; retention: 'objects' | 'jobs' }[];
}

export interface FunctionDeclaration {
  /** Module (from the repository root) that exports `handler`. */
  entry: string;
  timeoutSeconds: number;
  memoryMb: number;
}

export interface EventSourceDeclaration {
  queue: QueueKey;
  function: FunctionKey;
  /** Messages per invocation (≤ 10 keeps one ReceiveMessage per batch; above 10 needs a window). */
  batchSize: number;
  /** Concurrent pollers/invocations for this mapping. */
  maxConcurrency: number;
  /**
   * Lambda's MaximumBatchingWindowInSeconds (0–300): how long a batch may gather messages before
   * it goes out less than full. An environment may override it (`batchingWindowSeconds`).
   */
  maximumBatchingWindowSeconds: number;
}

export interface ScheduleDeclaration {
  function: FunctionKey;
  rateSeconds: number;
}

/** AWS advises a queue's visibility timeout of at least 6× the timeout of the function consuming it. */
export const VISIBILITY_PER_FUNCTION_TIMEOUT = 6;

/** Seconds the API function may run: API Gateway HTTP API integrations stop at 30 s. */
const API_TIMEOUT_SECONDS = 29;

const functions = {
  api: { entry: 'functions/api/handler.ts', timeoutSeconds: API_TIMEOUT_SECONDS, memoryMb: 512 },
  /** Runs tasks: its timeout bounds every processor's timeout (plus a margin to record the outcome). */
  worker: { entry: 'functions/worker/handler.ts', timeoutSeconds: 300, memoryMb: 512 },
  submitConsumer: { entry: 'functions/submit-consumer/handler.ts', timeoutSeconds: 30, memoryMb: 256 },
  /** Backstop: re-sends task messages that were lost anyway (a bug, a queue purged by hand). */
  sweeper: { entry: 'functions/sweeper/handler.ts', timeoutSeconds: 900, memoryMb: 512 },
  /** Turns dead-lettered task messages into recorded `poison` failures. */
  deadLetters: { entry: 'functions/dead-letters/handler.ts', timeoutSeconds: 30, memoryMb: 256 },
} satisfies Record<string, FunctionDeclaration>;

export type FunctionKey = keyof typeof functions;

const queues = {
  work: {
    name: 'work',
    visibilityTimeoutSeconds: VISIBILITY_PER_FUNCTION_TIMEOUT * functions.worker.timeoutSeconds,
    retentionSeconds: 4 * 24 * 3600,
    // Above any processor's maxAttempts (a retry is a receive): attempts are counted in DynamoDB,
    // the redrive only catches messages the worker itself keeps failing on.
    deadLetter: { queue: 'workDlq', maxReceiveCount: 30 },
  },
  workDlq: {
    name: 'work-dlq',
    visibilityTimeoutSeconds: VISIBILITY_PER_FUNCTION_TIMEOUT * functions.deadLetters.timeoutSeconds,
    retentionSeconds: 14 * 24 * 3600,
  },
  submit: {
    name: 'submit',
    visibilityTimeoutSeconds: VISIBILITY_PER_FUNCTION_TIMEOUT * functions.submitConsumer.timeoutSeconds,
    retentionSeconds: 4 * 24 * 3600,
    // Refused submissions are moved to the DLQ by the consumer itself, with their reason; the redrive
    // only ends an outage's retries. Those back off exponentially from 1–2 s (shared/lambda/handlers.ts),
    // so 12 receives ride out ~35 min of outage where a blip costs seconds.
    deadLetter: { queue: 'submitDlq', maxReceiveCount: 12 },
  },
  submitDlq: { name: 'submit-dlq', visibilityTimeoutSeconds: 180, retentionSeconds: 14 * 24 * 3600 },
} as const satisfies Record<string, QueueDeclaration>;

export type QueueKey = keyof typeof queues;

const tables = {
  jobs: {
    name: 'jobs',
    partitionKey: { name: 'pk', type: 'S' },
    sortKey: { name: 'sk', type: 'S' },
    ttlAttribute: 'expiresAt',
    // Find (GET /v1/jobs, /v1/tasks), per owner; see shared/core/search.ts for what each query
    // reads. Every index write is billed like a table write, so both are keyed on attributes
    // written once: `byOwner` at create (every job), `byOutcome` when a job ends FAILED or ABORTED
    // (sparse). `type` never changes, so projecting it costs no write. Tallies and other non-job
    // items carry none of these attributes.
    indexes: [
      {
        name: 'byOwner',
        partitionKey: { name: 'sOwner', type: 'S' },
        sortKey: { name: 'sOrder', type: 'S' },
        projection: 'INCLUDE',
        include: ['type'],
      },
      {
        name: 'byOutcome',
        partitionKey: { name: 'sEnd', type: 'S' },
        sortKey: { name: 'sOrder', type: 'S' },
        projection: 'INCLUDE',
        include: ['type'],
      },
    ] as IndexDeclaration[],
  },
} satisfies Record<string, TableDeclaration>;

export type TableKey = keyof typeof tables;

const buckets = {
  data: {
    name: 'data',
    expiringPrefixes: [
      { prefix: OBJECT_PREFIXES.inputs, retention: 'objects' },
      // A batch's outputs live as long as the job that links to them.
      { prefix: OBJECT_PREFIXES.outputs, retention: 'jobs' },
      { prefix: OBJECT_PREFIXES.payloads, retention: 'jobs' },
    ],
  },
} satisfies Record<string, BucketDeclaration>;

export type BucketKey = keyof typeof buckets;

/**
 * HTTP API routes in API Gateway's route-key syntax. `$default` catches everything else so unknown
 * paths get the contract's JSON 404 (or 405) instead of API Gateway's plain one.
 */
const api = {
  function: 'api' as FunctionKey,
  routes: [
    'GET /v1/health',
    // HTTP APIs do not answer HEAD from a GET route: without its own route a HEAD would reach
    // `$default`, whose authorizer would refuse the credential-less uptime checks health is for.
    'HEAD /v1/health',
    'GET /v1/openapi.json',
    'POST /v1/jobs',
    'GET /v1/jobs',
    'GET /v1/tasks',
    'GET /v1/jobs/{id}',
    'GET /v1/jobs/{id}/events',
    'POST /v1/jobs/{id}/abort',
    'POST /v1/jobs/{id}/rows',
    'GET /v1/jobs/{id}/rows',
    'POST /v1/jobs/{id}/release',
    '$default',
  ],
  /**
   * Routes without an authorizer, in AWS and on the local gateway: health reveals nothing, and the
   * OpenAPI document only describes the API (it is in the repository too), for tools that fetch it.
   */
  publicRoutes: ['GET /v1/health', 'HEAD /v1/health', 'GET /v1/openapi.json'],
};

/**
 * Batching windows, from `npm run bench -- --scenarios burst,trickle --batching-window 0|declared`
 * (bench/traffic.ts). On the submit queue 1 s: at 2 jobs/s a consumer invocation gathers ~2
 * submissions instead of 1, and the work messages it sends together reach the worker as one batch
 * too, so invocations per job fall from 2 to ~0.9 and SQS requests from 5 to ~2.8 (embedded, 30 s
 * trickle: $5.19 → $3.79 per million jobs), for at most 1 s more from send to end (p50 0.2 → 1.0 s)
 * on a path that is asynchronous anyway; 2 s bought nothing more. In a burst batches are full
 * with or without it. The work queue keeps none: it carries every task of a caller waiting on its
 * job over HTTP, and each step of a sequential job, where a second per task shows; an environment
 * that runs mostly bursts can set one (`batchingWindowSeconds: { work: 1 }`). The DLQ's traffic is
 * too thin for a window to matter.
 */
const eventSources = [
  { queue: 'work', function: 'worker', batchSize: 10, maxConcurrency: 4, maximumBatchingWindowSeconds: 0 },
  { queue: 'submit', function: 'submitConsumer', batchSize: 10, maxConcurrency: 2, maximumBatchingWindowSeconds: 1 },
  { queue: 'workDlq', function: 'deadLetters', batchSize: 10, maxConcurrency: 1, maximumBatchingWindowSeconds: 0 },
] as const satisfies readonly EventSourceDeclaration[];

/** The queues an event source reads: where a batching window can be set. */
export type EventSourceQueue = (typeof eventSources)[number]['queue'];

const schedules: Record<string, ScheduleDeclaration> = {
  // Daily: every path that can lose a message is repaired by redelivery, so this is a backstop,
  // and its Scan costs in proportion to the table, not to the traffic.
  sweep: { function: 'sweeper', rateSeconds: 86_400 },
};

export const resources = { tables, queues, buckets, functions, api, eventSources, schedules } as const;

export type Resources = typeof resources;

/** Physical names carry the environment (stage), e.g. `jobs-dev-work-dlq`. */
export function physicalName(stage: string, logicalName: string): string {
  return `jobs-${stage}-${logicalName}`;
}

/**
 * The environment variables a function reads to find its resources. Both the CDK stack and the
 * local runtime set exactly these, so handlers never know where they run.
 */
export const resourceEnv = {
  table: (key: TableKey) => `TABLE_${key.toUpperCase()}`,
  queueUrl: (key: QueueKey) => `QUEUE_URL_${snake(key)}`,
  bucket: (key: BucketKey) => `BUCKET_${key.toUpperCase()}`,
} as const;

function snake(key: string): string {
  return key.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
}
