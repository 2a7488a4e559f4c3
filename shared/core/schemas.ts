import { z } from 'zod';
import { type ErrorDetail, ValidationError } from './errors.js';

/**
 * The schemas of every input from outside: HTTP bodies and queries, queue messages, processor
 * replies. One library (zod) at every boundary; unknown fields are refused.
 */

export const MAX_TASKS = 1000;
export const MAX_META_BYTES = 8 * 1024;
export const MAX_IDEMPOTENCY_KEY = 256;

const jobType = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'must be 1..128 of A-Z a-z 0-9 _ . : -');
const processorName = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'must be 1..128 of A-Z a-z 0-9 _ . : -');

const meta = z
  .record(z.string(), z.unknown())
  .refine((value) => Buffer.byteLength(JSON.stringify(value)) <= MAX_META_BYTES, {
    message: `must be at most ${MAX_META_BYTES} bytes serialized`,
  });

export const idempotencyKeySchema = z.string().min(1).max(MAX_IDEMPOTENCY_KEY);

const taskSchema = z.strictObject({
  name: z.string().max(256).optional(),
  processor: processorName,
  input: z.unknown().optional(),
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

/** What a Lambda processor replies to a task (API.md, "Processor contract"). */
export const taskReplySchema = z.discriminatedUnion('status', [
  z.object({ status: z.literal('ok'), result: z.unknown().optional() }),
  z.object({
    status: z.literal('error'),
    error: z
      .object({
        code: z.string().max(256).optional(),
        message: z.string().max(4096).optional(),
        retryable: z.boolean().optional(),
      })
      .optional(),
  }),
]);

/** A work-queue message: which task of which job. Small on purpose: state lives in DynamoDB. */
export const taskMessageSchema = z.strictObject({ jobId: z.string().min(1).max(128), task: z.number().int().min(0) });
export type TaskMessage = z.output<typeof taskMessageSchema>;

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
