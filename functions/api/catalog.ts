import * as z from 'zod';
import type { ErrorCode } from '../../shared/core/errors.js';
import {
  appendReplySchema,
  eventsPageSchema,
  healthSchema,
  jobsPageSchema,
  jobViewSchema,
  rowsPageSchema,
  tasksPageSchema,
} from '../../shared/core/responses.js';
import {
  appendRowsSchema,
  idempotencyKeySchema,
  submitBatchSchema,
  submitTasksSchema,
} from '../../shared/core/schemas.js';
import { searchJobsQuerySchema, searchTasksQuerySchema } from '../../shared/core/search.js';
import { eventsQuery, noQuery, readQuery, rowsQuery } from './requests.js';

/**
 * The routes of `resources.api.routes`, each as a caller sees it: what its path, query, headers
 * and body take (the very schemas the handlers parse with), what it answers per status, and which
 * of the contract's error codes it can refuse with. The OpenAPI document (docs/openapi.json, served
 * at `GET /v1/openapi.json`) is generated from this by openapi.ts; nothing here imports the generator.
 */

export interface RouteAnswer {
  description: string;
  /** No body: a HEAD, say. */
  body?: z.ZodType;
  /** Response headers the route sets, by name: their meaning. */
  headers?: Record<string, string>;
}

export interface RouteSpec {
  operationId: string;
  summary: string;
  description?: string;
  tag: 'jobs' | 'batches' | 'find' | 'service';
  path?: z.ZodObject;
  query?: z.ZodObject;
  headers?: z.ZodObject;
  body?: { schema: z.ZodType; description: string };
  /** Its successful answers, by status. */
  answers: Record<number, RouteAnswer>;
  /**
   * The contract's codes it refuses with (their statuses follow from the code). Every route may
   * also answer 500 INTERNAL, and every route behind an authorizer 401 and 403: the generator adds those.
   */
  errors: ErrorCode[];
}

/** What each code means on the routes that answer with it (API.md, "Errors"). */
export const ERROR_MEANINGS: Record<ErrorCode, string> = {
  VALIDATION_FAILED: 'the path, query, headers or body do not match the contract (unknown fields included)',
  UNKNOWN_PROCESSOR: 'a task or batch names a processor that is not registered, or one of the other kind',
  NOT_FOUND: "no such job, or another owner's (the two answer alike)",
  METHOD_NOT_ALLOWED: 'a known path with a method it does not take (the Allow header lists those it does)',
  IDEMPOTENCY_MISMATCH: 'the idempotency key was already used with a different request',
  INVALID_STATE: "the operation does not apply to the job's current status (or kind)",
  PAYLOAD_TOO_LARGE: 'the body is over the configured limit, or a batch input file over batchInputMaxBytes',
  UNSUPPORTED_MEDIA_TYPE: 'the body is not application/json',
  UNAUTHORIZED: 'the verified caller names no owner this API accepts',
  FORBIDDEN: 'the caller may not do this',
  INTERNAL: 'a bug or an outage, never bad input; nothing half-written',
};

const jobIdPath = z.strictObject({
  id: z.string().min(1).max(128).meta({ description: 'The job id; anything that is not an id answers 404.' }),
});

const idempotencyHeader = (what: string) =>
  z.object({
    'Idempotency-Key': idempotencyKeySchema
      .optional()
      .meta({ description: `Makes ${what} safe to retry: the same key and body answer as the first did.` }),
  });

const location = { Location: 'Where the job is read: `/v1/jobs/{id}`.' };

export const apiCatalog = {
  'GET /v1/health': {
    operationId: 'health',
    summary: 'Is the API up',
    description: 'Open to every caller, credentials or not: it reveals nothing.',
    tag: 'service',
    answers: { 200: { description: 'Up.', body: healthSchema } },
    errors: [],
  },
  'HEAD /v1/health': {
    operationId: 'healthHead',
    summary: 'Is the API up, without a body',
    description: 'For uptime checks, which carry no credentials.',
    tag: 'service',
    answers: { 200: { description: 'Up (no body).' } },
    errors: [],
  },
  'GET /v1/openapi.json': {
    operationId: 'openApiDocument',
    summary: 'This document',
    description:
      'Open to every caller: it describes the API and holds no data (the same file is in the repository, `docs/openapi.json`).',
    tag: 'service',
    answers: { 200: { description: 'The OpenAPI 3.1 document of this API.', body: z.record(z.string(), z.unknown()) } },
    errors: [],
  },
  'POST /v1/jobs': {
    operationId: 'submitJob',
    summary: 'Submit a job of tasks or a batch',
    description:
      'A replay with the same idempotency key and body answers `200` with the original job; the key is the owner’s own.',
    tag: 'jobs',
    query: noQuery,
    headers: idempotencyHeader('a submission'),
    body: {
      schema: z.union([submitTasksSchema, submitBatchSchema]),
      description: 'Exactly one of `tasks` or `batch`.',
    },
    answers: {
      202: { description: 'Accepted: the new job.', body: jobViewSchema, headers: location },
      200: { description: 'A replay: the job the key made first.', body: jobViewSchema, headers: location },
    },
    errors: [
      'VALIDATION_FAILED',
      'UNKNOWN_PROCESSOR',
      'IDEMPOTENCY_MISMATCH',
      'PAYLOAD_TOO_LARGE',
      'UNSUPPORTED_MEDIA_TYPE',
    ],
  },
  'GET /v1/jobs': {
    operationId: 'findJobs',
    summary: 'Find jobs',
    description:
      'The caller’s own jobs (an admin may name another `owner`), newest first by default. Besides the parameters ' +
      'below, `meta.KEY=VALUE` filters on a meta field (at most 10). A page may hold fewer than `limit` items and ' +
      'still carry a cursor: read on until `nextCursor` is null.',
    tag: 'find',
    query: searchJobsQuerySchema,
    answers: { 200: { description: 'A page of jobs (a job of tasks without its tasks).', body: jobsPageSchema } },
    errors: ['VALIDATION_FAILED', 'INVALID_STATE'],
  },
  'GET /v1/tasks': {
    operationId: 'findTasks',
    summary: 'Find tasks',
    description: 'Tasks of the caller’s jobs of tasks, read off the jobs in creation order.',
    tag: 'find',
    query: searchTasksQuerySchema,
    answers: { 200: { description: 'A page of task summaries.', body: tasksPageSchema } },
    errors: ['VALIDATION_FAILED', 'INVALID_STATE'],
  },
  'GET /v1/jobs/{id}': {
    operationId: 'getJob',
    summary: 'Read a job',
    description: 'With `wait`, a long poll: the answer is held until the job is settled or the time is up.',
    tag: 'jobs',
    path: jobIdPath,
    query: readQuery,
    answers: { 200: { description: 'The job.', body: jobViewSchema } },
    errors: ['VALIDATION_FAILED', 'NOT_FOUND'],
  },
  'GET /v1/jobs/{id}/events': {
    operationId: 'jobEvents',
    summary: 'A job’s update log',
    tag: 'jobs',
    path: jobIdPath,
    query: eventsQuery,
    answers: { 200: { description: 'A page of the job’s events, oldest first.', body: eventsPageSchema } },
    errors: ['VALIDATION_FAILED', 'NOT_FOUND'],
  },
  'POST /v1/jobs/{id}/abort': {
    operationId: 'abortJob',
    summary: 'Abort a job',
    tag: 'jobs',
    path: jobIdPath,
    query: noQuery,
    answers: {
      202: { description: 'Aborted now: the job, ABORTED.', body: jobViewSchema },
      200: { description: 'It was aborted already: the same job.', body: jobViewSchema },
    },
    errors: ['VALIDATION_FAILED', 'NOT_FOUND', 'INVALID_STATE'],
  },
  'POST /v1/jobs/{id}/rows': {
    operationId: 'appendRows',
    summary: 'Append rows to a held batch',
    tag: 'batches',
    path: jobIdPath,
    query: noQuery,
    headers: idempotencyHeader('an append'),
    body: { schema: appendRowsSchema, description: 'The rows, after those the batch has.' },
    answers: { 200: { description: 'Appended.', body: appendReplySchema } },
    errors: [
      'VALIDATION_FAILED',
      'NOT_FOUND',
      'INVALID_STATE',
      'IDEMPOTENCY_MISMATCH',
      'PAYLOAD_TOO_LARGE',
      'UNSUPPORTED_MEDIA_TYPE',
    ],
  },
  'GET /v1/jobs/{id}/rows': {
    operationId: 'batchRows',
    summary: 'A batch’s row outcomes',
    description: 'In line order; a page may hold fewer than `limit` rows and still carry a cursor.',
    tag: 'batches',
    path: jobIdPath,
    query: rowsQuery,
    answers: { 200: { description: 'A page of rows.', body: rowsPageSchema } },
    errors: ['VALIDATION_FAILED', 'NOT_FOUND', 'INVALID_STATE'],
  },
  'POST /v1/jobs/{id}/release': {
    operationId: 'releaseBatch',
    summary: 'Release a held batch',
    description: 'Its rows (and uploaded file) are all there: planning starts.',
    tag: 'batches',
    path: jobIdPath,
    query: noQuery,
    answers: { 202: { description: 'Released: the batch.', body: jobViewSchema } },
    errors: ['VALIDATION_FAILED', 'NOT_FOUND', 'INVALID_STATE', 'PAYLOAD_TOO_LARGE'],
  },
} satisfies Record<string, RouteSpec>;

export type CatalogRoute = keyof typeof apiCatalog;
