import * as z from 'zod';
import { ROW_STATUSES } from '../../shared/core/batches/model.js';
import { NotFoundError } from '../../shared/core/errors.js';
import { idempotencyKeySchema, parseOrThrow } from '../../shared/core/schemas.js';
import type { ApiEvent } from '../../shared/http/middleware.js';

/** What a request to the jobs API carries besides its body: its query, the job its path names, its headers. */

export const noQuery = z.strictObject({});
export const readQuery = z.strictObject({ wait: z.coerce.number().min(0).max(20).optional() });
export const eventsQuery = z.strictObject({ cursor: z.string().min(1).max(512).optional() });
export const rowsQuery = z.strictObject({
  status: z.enum(ROW_STATUSES).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().min(1).max(512).optional(),
});

export function query<S extends z.ZodType>(schema: S, event: ApiEvent): z.output<S> {
  return parseOrThrow(schema, event.queryStringParameters ?? {}, 'Query');
}

/** Ids we hand out are short and plain; anything else cannot name a job. */
const JOB_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function jobId(event: ApiEvent): string {
  const id = event.pathParameters?.id;
  if (!id || !JOB_ID.test(id)) throw new NotFoundError(`No job ${id?.slice(0, 128) ?? ''}`);
  return id;
}

/** The `Idempotency-Key` header, checked like the body field it stands for. */
export function headerKey(event: ApiEvent): string | undefined {
  const header = event.headers['idempotency-key'];
  return header === undefined ? undefined : parseOrThrow(idempotencyKeySchema, header, 'Idempotency-Key header');
}
