import * as z from 'zod';
import { ROW_STATUSES } from './batches/model.js';
import { ERROR_CODES } from './errors.js';
import { ERROR_KINDS, JOB_STATUSES, TASK_STATUSES } from './model.js';

/**
 * The schemas of every body the HTTP API answers with (API.md), the counterpart of schemas.ts for
 * what goes out. The builders in view.ts, batches/reads.ts and events.ts are typed by these, so a
 * field added to a view without its schema does not compile; the OpenAPI document is generated from
 * them, and the end-to-end suites check every answer they get against that document. Objects are
 * strict: the document says exactly which fields a body has.
 */

/** Every time the API shows is `Date.toISOString()`: UTC, with milliseconds. */
export const timeSchema = z.iso.datetime();
const jsonObject = z.record(z.string(), z.unknown());
const count = z.number().int().min(0);

export const taskErrorSchema = z.strictObject({
  kind: z.enum(ERROR_KINDS),
  code: z.string().optional(),
  message: z.string(),
});

export const countsSchema = z.strictObject({
  total: count,
  pending: count,
  running: count,
  succeeded: count,
  failed: count,
  aborted: count,
});

/** Share of the job done (ended tasks or rows over all), rounded to hundredths. */
const progress = z.number().min(0).max(1);

/** What every job's view begins with, whatever its kind (view.ts, `jobHeading`). */
const heading = {
  id: z.string(),
  owner: z.string(),
  type: z.string(),
  name: z.string().nullable(),
  meta: jsonObject,
};

/** What a job's view goes on with, whatever its kind: its status, times and counts. */
const course = {
  status: z.enum(JOB_STATUSES),
  createdAt: timeSchema,
  updatedAt: timeSchema,
  startedAt: timeSchema.nullable(),
  endedAt: timeSchema.nullable(),
  counts: countsSchema,
  progress,
  /** Shown only to the job's owner. */
  idempotencyKey: z.string().optional(),
};

export const attemptViewSchema = z.strictObject({
  attempt: z.number().int().min(1),
  startedAt: timeSchema.nullable(),
  endedAt: timeSchema.nullable(),
  outcome: z.enum(['running', 'succeeded', 'failed', 'retried', 'lost', 'aborted']),
  error: taskErrorSchema.nullable(),
  retryDelaySeconds: z.number().min(0).nullable(),
});

export const lateOutcomeSchema = z.strictObject({
  attempt: z.number().int().min(1),
  at: timeSchema,
  status: z.enum(['ok', 'error']),
  error: taskErrorSchema.optional(),
});

export const taskViewSchema = z.strictObject({
  id: z.string(),
  index: count,
  name: z.string().nullable(),
  processor: z.string(),
  status: z.enum(TASK_STATUSES),
  attempts: count,
  /** The processor's result, `null` until there is one. */
  result: z.unknown(),
  error: taskErrorSchema.nullable(),
  queuedAt: timeSchema.nullable(),
  startedAt: timeSchema.nullable(),
  endedAt: timeSchema.nullable(),
  /** A RETRYING task: when it is due again. */
  retryAt: timeSchema.optional(),
  history: z.array(lateOutcomeSchema),
  attemptLog: z.array(attemptViewSchema),
  attemptsDropped: count,
});

/** A job of tasks as search shows it: everything but its tasks. */
export const taskJobSummarySchema = z.strictObject({
  ...heading,
  kind: z.literal('tasks'),
  strategy: z.enum(['sequential', 'concurrent']),
  failFast: z.boolean(),
  ...course,
});

export const taskJobViewSchema = z.strictObject({
  ...taskJobSummarySchema.shape,
  tasks: z.array(taskViewSchema),
});

export const batchOutputViewSchema = z.strictObject({
  /** A time-limited download link. */
  url: z.string(),
  key: z.string(),
  bytes: count,
  lines: count,
});

export const batchJobViewSchema = z.strictObject({
  ...heading,
  kind: z.literal('batch'),
  ...course,
  /** Why the batch could not run, or ended FAILED as a whole. */
  error: taskErrorSchema.nullable(),
  batch: z.strictObject({
    processor: z.string(),
    chunkSize: z.number().int().min(1),
    maxFailedRows: count,
    context: jsonObject,
    chunks: z.strictObject({ total: count, done: count }),
    outputs: z.record(z.string(), batchOutputViewSchema),
    /** Outputs are assembled: `outputs` is complete. */
    finalized: z.boolean(),
    abortRequestedAt: timeSchema.optional(),
    /** Only in the answer to a submission with `upload: true` while the batch is HELD. */
    upload: z
      .strictObject({
        url: z.string(),
        method: z.literal('PUT'),
        format: z.enum(['jsonl', 'csv']),
        expiresAt: timeSchema,
      })
      .optional(),
  }),
});

/** `GET /v1/jobs/{id}` and every answer that shows a job. */
export const jobViewSchema = z.discriminatedUnion('kind', [taskJobViewSchema, batchJobViewSchema]);

/** An item of `GET /v1/jobs`: a job of tasks without its tasks, a batch as its view shows it. */
export const jobSummarySchema = z.discriminatedUnion('kind', [taskJobSummarySchema, batchJobViewSchema]);

/** An item of `GET /v1/tasks`: where a task belongs and how it went, without its input or result. */
export const taskSummarySchema = z.strictObject({
  id: z.string(),
  jobId: z.string(),
  jobType: z.string(),
  index: count,
  name: z.string().nullable(),
  processor: z.string(),
  status: z.enum(TASK_STATUSES),
  attempts: count,
  error: taskErrorSchema.nullable(),
  queuedAt: timeSchema.nullable(),
  startedAt: timeSchema.nullable(),
  endedAt: timeSchema.nullable(),
});

/** An entry of a job's update log (`GET /v1/jobs/{id}/events`). */
export const jobEventSchema = z.strictObject({
  at: timeSchema,
  level: z.enum(['info', 'warn', 'error']),
  type: z.string(),
  taskId: z.string().optional(),
  message: z.string(),
  data: jsonObject.optional(),
});

/** A batch row's outcome (`GET /v1/jobs/{id}/rows`): every field there, `null` or empty when unset. */
export const rowViewSchema = z.strictObject({
  line: z.number().int().min(1),
  status: z.enum(ROW_STATUSES),
  result: z.unknown(),
  messages: z.array(z.unknown()),
  error: taskErrorSchema.nullable(),
  /** One text line per output the row emitted. */
  outputs: z.record(z.string(), z.string()).optional(),
});

/** A page of a list: read on with `cursor=nextCursor` until it is `null` (a page may be short). */
function page<S extends z.ZodType>(item: S) {
  return z.strictObject({ items: z.array(item), nextCursor: z.string().nullable() });
}

export const jobsPageSchema = page(jobSummarySchema);
export const tasksPageSchema = page(taskSummarySchema);
export const eventsPageSchema = page(jobEventSchema);
export const rowsPageSchema = page(rowViewSchema);

/** `POST /v1/jobs/{id}/rows`. */
export const appendReplySchema = z.strictObject({ appended: count, totalRows: count });

/** `GET /v1/health`. */
export const healthSchema = z.strictObject({ status: z.literal('ok') });

export const errorDetailSchema = z.strictObject({ path: z.string(), message: z.string() });

export const errorCodeSchema = z.enum(ERROR_CODES);

/** Every non-2xx answer of the API itself: `{"error": {"code", "message", "details"?}}`. */
export const errorSchema = z.strictObject({
  error: z.strictObject({
    code: errorCodeSchema,
    message: z.string(),
    /** Validation errors: one per problem, `path` pointing into the body or query (`tasks[0].processor`). */
    details: z.array(errorDetailSchema).optional(),
  }),
});

/**
 * API Gateway's own refusal, before the API runs (an authorizer's 401 or 403): not the contract's
 * shape, and not ours to change.
 */
export const gatewayErrorSchema = z.strictObject({ message: z.string() });

export type TaskJobSummary = z.output<typeof taskJobSummarySchema>;
export type TaskJobView = z.output<typeof taskJobViewSchema>;
export type BatchJobView = z.output<typeof batchJobViewSchema>;
export type JobView = z.output<typeof jobViewSchema>;
export type JobSummary = z.output<typeof jobSummarySchema>;
export type TaskSummaryView = z.output<typeof taskSummarySchema>;
export type JobEvent = z.output<typeof jobEventSchema>;
export type RowView = z.output<typeof rowViewSchema>;
export type Page<T> = { items: T[]; nextCursor: string | null };
export type AppendReply = z.output<typeof appendReplySchema>;
export type ErrorBody = z.output<typeof errorSchema>;
