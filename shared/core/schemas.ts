import * as z from 'zod';
import { MAX_CHUNK_SIZE, MAX_CONTEXT_BYTES } from './batches/model.js';
import { type ErrorDetail, ValidationError } from './errors.js';
import { jsonValue, shallow, shallowMembers } from './json-depth.js';

/**
 * The schemas of every input from outside: HTTP bodies and queries, queue messages (processor
 * replies: processor-replies.ts). One library (zod) at every boundary; unknown fields are refused.
 */

export const MAX_TASKS = 1000;
export const MAX_META_BYTES = 8 * 1024;
export const MAX_IDEMPOTENCY_KEY = 256;

/** Bytes of `value` serialized as UTF-8. TextEncoder, not Buffer: the client runs these schemas in browsers too. */
const encoder = new TextEncoder();
const serializedBytes = (value: unknown) => encoder.encode(JSON.stringify(value)).byteLength;

const jobType = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'must be 1..128 of A-Z a-z 0-9 _ . : -');
const processorName = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'must be 1..128 of A-Z a-z 0-9 _ . : -');

const meta = shallow(z.record(z.string(), z.unknown())).refine((value) => serializedBytes(value) <= MAX_META_BYTES, {
  message: `must be at most ${MAX_META_BYTES} bytes serialized`,
});

export const idempotencyKeySchema = z.string().min(1).max(MAX_IDEMPOTENCY_KEY);

const taskSchema = z.strictObject({
  name: z.string().max(256).optional(),
  processor: processorName,
  input: jsonValue.optional(),
});

export const submitTasksSchema = z
  .strictObject({
    type: jobType,
    name: z.string().max(256).optional(),
    meta: meta.optional(),
    strategy: z.enum(['sequential', 'concurrent']).default('sequential'),
    failFast: z.boolean().default(false),
    idempotencyKey: idempotencyKeySchema.optional(),
    tasks: z.array(taskSchema).min(1).max(MAX_TASKS),
  })
  .refine((body) => !(body.failFast && body.strategy === 'sequential'), {
    message: 'failFast applies to the concurrent strategy only (a sequential job always stops at its first failure)',
    path: ['failFast'],
  });

export type SubmitTasks = z.output<typeof submitTasksSchema>;

/** Inline rows per request: the HTTP body limit bounds them first. */
export const MAX_INLINE_ROWS = 100_000;

const batchSchema = z
  .strictObject({
    processor: processorName,
    rows: shallowMembers(z.array(z.unknown()).max(MAX_INLINE_ROWS)).optional(),
    input: z
      .strictObject({
        bucket: z
          .string()
          .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name')
          .optional(),
        key: z.string().min(1).max(1024).optional(),
        format: z.enum(['jsonl', 'csv']).default('jsonl'),
      })
      .optional(),
    upload: z.boolean().default(false),
    chunkSize: z.number().int().min(1).max(MAX_CHUNK_SIZE).default(100),
    context: shallow(z.record(z.string(), z.unknown()))
      .refine((value) => serializedBytes(value) <= MAX_CONTEXT_BYTES, {
        message: `must be at most ${MAX_CONTEXT_BYTES} bytes serialized`,
      })
      .default({}),
    hold: z.boolean().default(false),
    maxFailedRows: z.number().int().min(0).default(0),
  })
  .superRefine((batch, ctx) => {
    const file = batch.input?.bucket !== undefined || batch.input?.key !== undefined;
    if (batch.upload && file) {
      ctx.addIssue({ code: 'custom', path: ['input'], message: 'with upload: true, input may only name the format' });
    } else if (!batch.upload && batch.input && (batch.input.bucket === undefined || batch.input.key === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['input'], message: 'an input file needs both bucket and key' });
    }
    if (!batch.rows?.length && !file && !batch.upload && !batch.hold) {
      ctx.addIssue({
        code: 'custom',
        path: ['rows'],
        message: 'a batch needs rows: inline rows, an input file, upload: true, or hold: true to append them',
      });
    }
  });

export const submitBatchSchema = z.strictObject({
  type: jobType,
  name: z.string().max(256).optional(),
  meta: meta.optional(),
  idempotencyKey: idempotencyKeySchema.optional(),
  batch: batchSchema,
});

export type SubmitBatch = z.output<typeof submitBatchSchema>;

/** `POST /v1/jobs/{id}/rows`. */
export const appendRowsSchema = z.strictObject({
  rows: shallowMembers(z.array(z.unknown()).min(1).max(MAX_INLINE_ROWS)),
  idempotencyKey: idempotencyKeySchema.optional(),
});

/**
 * A work-queue message: which task of which job, and the ticket that lets it start an attempt
 * (absent on messages from before tickets). Small on purpose: state lives in DynamoDB.
 */
export const taskMessageSchema = z.strictObject({
  jobId: z.string().min(1).max(128),
  task: z.number().int().min(0),
  ticket: z.string().min(1).max(64).optional(),
});
export type TaskMessage = z.output<typeof taskMessageSchema>;

/**
 * A batch chunk's message. Its rows ride in the message (SQS bills per 64 KiB, S3 per object) unless
 * too large, then in S3 under `rowsKey`. `attempt` counts rounds: rows a processor asked to retry go
 * out again in a new message with `attempt + 1`, carrying the outcome files of earlier rounds.
 */
export const chunkMessageSchema = z.strictObject({
  jobId: z.string().min(1).max(128),
  chunk: z.number().int().min(0),
  chunks: z.number().int().min(1),
  /**
   * Which request made it (the start of the job's request hash). Rows ride in the message, and a
   * submission's messages go out before its job is written: a request refused for reusing another's
   * idempotency key must not have its rows run as that job's.
   */
  request: z.string().min(1).max(64),
  attempt: z.number().int().min(1),
  rows: z
    .array(
      z.strictObject({ line: z.number().int().min(1), input: z.unknown().optional(), invalid: z.string().optional() }),
    )
    .optional(),
  rowsKey: z.string().min(1).max(1024).optional(),
  carry: z.array(z.string().min(1).max(1024)).max(100).optional(),
  /** When the first copy was sent, for a copy re-sent while its job was not written yet. */
  firstSentAt: z.number().int().min(0).optional(),
});
export type ChunkMessage = z.output<typeof chunkMessageSchema>;

/** Batch steps that are not chunks: split the input into chunks, assemble the outputs. */
export const batchStepMessageSchema = z.strictObject({
  jobId: z.string().min(1).max(128),
  step: z.enum(['plan', 'finalize']),
  /** A plan or finalize that used up its step's budget goes on from this chunk in a step of its own. */
  from: z.number().int().min(1).optional(),
  /** Where the plan's next slice starts in the input (its first row's line and position). */
  resume: z
    .strictObject({
      line: z.number().int().min(1),
      part: z.number().int().min(0),
      byte: z.number().int().min(0),
      fileLine: z.number().int().min(1),
    })
    .optional(),
});
export type BatchStepMessage = z.output<typeof batchStepMessageSchema>;

export const workMessageSchema = z.union([taskMessageSchema, chunkMessageSchema, batchStepMessageSchema]);
export type WorkMessage = z.output<typeof workMessageSchema>;

/** `a.b[0].c` — the API's way of pointing into a body. */
export function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, key) => {
    if (typeof key === 'number') return `${out}[${key}]`;
    return out ? `${out}.${String(key)}` : String(key);
  }, '');
}

export function issuesToDetails(error: z.ZodError): ErrorDetail[] {
  return error.issues.map((issue) => ({ path: formatPath(issue.path), message: issue.message }));
}

/** Parses or throws the contract's VALIDATION_FAILED with one detail per problem. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ValidationError(`${what} does not match the contract`, issuesToDetails(parsed.error));
  return parsed.data;
}

/** JSON.parse that answers `undefined` for text that is not JSON (the schema then refuses it). */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
