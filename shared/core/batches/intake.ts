import { createOnce, type Submitted } from '../create-job.js';
import { InvalidStateError, UnknownProcessorError, ValidationError } from '../errors.js';
import { jobIdForKey, newJobId, requestHash } from '../ids.js';
import { inputKeys } from '../keys.js';
import type { Caller } from '../owners.js';
import type { SubmitBatch } from '../schemas.js';
import { type BatchContext, readBatch, sendStep, token, transition } from './context.js';
import { checkInputName, checkInputSize } from './input-policy.js';
import type { BatchJob, BatchPart } from './model.js';
import { numbered, sendChunks } from './planner.js';
import { appendable, appendedBefore, releasable } from './rules.js';
import { appended, goesStraightOut, newBatch, released } from './transitions.js';

/**
 * Intake: a batch's rows come in (submitted, appended while HELD, uploaded) and it is let go to
 * the planner (released). Input files are checked against the deployment's `InputPolicy`.
 */

export interface PreparedBatch {
  kind: 'batch';
  job: BatchJob;
  /** Inline rows: sent as chunk messages at once, or stored as the first part. */
  rows: unknown[];
  direct: boolean;
  file?: { bucket: string; key: string };
}

/** Builds a batch job from a validated request, writing nothing. */
export function prepare(
  ctx: BatchContext,
  request: SubmitBatch,
  owner: string,
  key: string | undefined,
): PreparedBatch {
  const { batch } = request;
  const { processors, files, clock } = ctx.deps;
  const refusal = processors.refusal(batch.processor, 'chunks');
  if (refusal !== undefined) {
    throw new UnknownProcessorError(
      processors.get(batch.processor) ? `Not a batch processor: ${refusal}` : `Unknown processor: ${batch.processor}`,
      [{ path: 'batch.processor', message: refusal }],
    );
  }
  const input = batch.input;
  const file =
    input?.bucket !== undefined && input.key !== undefined ? { bucket: input.bucket, key: input.key } : undefined;
  if (file) checkInputName(ctx.inputs, files.bucket, file.bucket, file.key);
  const { idempotencyKey: _, ...fields } = request;
  const hash = requestHash(fields);
  const now = clock.now();
  const id = key !== undefined ? jobIdForKey(owner, key) : newJobId(now);
  const rows = batch.rows ?? [];
  const parts: BatchPart[] = [];
  // Stored under a key derived from the request, so a replay writes the very same object.
  // Inline rows are stored even when they go straight out as chunk messages: should those be lost
  // (a local restart; a queue purged by hand), the sweeper plans the batch again from this part.
  if (rows.length > 0)
    parts.push({ kind: 'rows', key: inputKeys.submittedRows(id, hash.slice(0, 16)), rows: rows.length });
  if (file) parts.push({ kind: 'file', ...file, format: input!.format });
  const upload = batch.upload ? { key: inputKeys.upload(id), format: input?.format ?? 'jsonl' } : undefined;
  const who = { id, owner, requestHash: hash, ...(key !== undefined ? { idempotencyKey: key } : {}) };
  const job = newBatch(request, who, parts, upload, now);
  return { kind: 'batch', job, rows, direct: goesStraightOut(batch), ...(file ? { file } : {}) };
}

/**
 * Makes a prepared batch real. As for tasks: what must follow the job (its chunk messages, or the
 * message that plans it) is sent first, then the job is written; a message that overtakes its
 * job is held a moment, and one whose job never appears is dropped.
 */
export async function commit(ctx: BatchContext, prepared: PreparedBatch): Promise<Submitted> {
  const { job } = prepared;
  const { files } = ctx.deps;
  // A keyed replay (or mismatch) was answered by the job engine's look-up before this (see
  // Jobs.replays), so it stores no rows object and sends no chunk twice.
  if (prepared.file) {
    const head = await files.head(prepared.file.bucket, prepared.file.key);
    if (head === undefined) {
      throw new ValidationError('The batch input file does not exist or cannot be read', [
        { path: 'batch.input.key', message: `no readable object s3://${prepared.file.bucket}/${prepared.file.key}` },
      ]);
    }
    checkInputSize(ctx.inputs, head.bytes, 'batch.input.key');
    // The batch runs the file as it is now; one replaced later fails the batch, not mixes rows.
    for (const part of job.batch.parts) if (part.kind === 'file' && head.etag) part.etag = head.etag;
  }
  const stored = job.batch.parts.find((part) => part.kind === 'rows');
  if (stored) await files.putRows(stored.key, prepared.rows);
  if (prepared.direct) {
    await sendChunks(ctx, job, numbered(prepared.rows), new Set());
  } else if (job.status === 'PENDING') {
    await sendStep(ctx, job.id, 'plan');
  }
  const submitted = await createOnce(ctx.deps.store, job);
  if (submitted.created) {
    ctx.log('info', 'batch submitted', { jobId: job.id, type: job.type, rows: job.batch.rows, status: job.status });
  }
  return submitted;
}

/**
 * Appends rows to a HELD batch: the rows are stored, then the job records them as its next part.
 * With an idempotency key the append happens once: a retry (even one that arrives after the
 * release) gets the first answer, the same key with other rows a mismatch.
 */
export async function append(
  ctx: BatchContext,
  id: string,
  caller: Caller,
  rows: unknown[],
  key?: string,
): Promise<{ appended: number; totalRows: number }> {
  const tag =
    key === undefined ? undefined : { key: requestHash(key).slice(0, 16), rows: requestHash(rows).slice(0, 16) };
  const first = await readBatch(ctx, id, caller);
  const earlier = tag && appendedBefore(first, tag);
  if (earlier) return earlier;
  appendable(first);
  // A keyed append's rows go under a key of their own, so a retry racing it writes the same object.
  const file = tag
    ? inputKeys.keyedAppend(id, tag.key, tag.rows)
    : inputKeys.append(id, first.batch.parts.length, token());
  await ctx.deps.files.putRows(file, rows);
  const part = { kind: 'rows' as const, key: file, rows: rows.length, ...(tag ? { append: tag } : {}) };
  const outcome = await ctx.updates.apply(id, (current) => {
    // A retry of this very append that got there first: its answer is this one's.
    const raced = tag && appendedBefore(current, tag);
    if (raced) return { value: { answer: raced, wrote: false } };
    const write = appended(current, part, ctx.deps.clock.now());
    return { write, value: { answer: { appended: rows.length, totalRows: write.batch.rows }, wrote: true } };
  });
  if (outcome.wrote) ctx.log('info', 'batch rows appended', { jobId: id, ...outcome.answer });
  return outcome.answer;
}

/** Starts a HELD batch: its rows (and uploaded file) are planned into chunks by the worker. */
export async function release(ctx: BatchContext, id: string, caller: Caller): Promise<BatchJob> {
  const { files } = ctx.deps;
  const first = await readBatch(ctx, id, caller);
  releasable(first);
  const upload = first.batch.upload;
  const head = upload && (await files.head(files.bucket, upload.key));
  if (upload && head === undefined) {
    throw new InvalidStateError(`Job ${id}: nothing was uploaded yet; PUT the file to the upload URL first`);
  }
  // A presigned PUT cannot bound its body, so the upload is measured here, before anything reads it.
  if (head) checkInputSize(ctx.inputs, head.bytes, 'upload');
  const part = upload && {
    kind: 'file' as const,
    bucket: files.bucket,
    key: upload.key,
    format: upload.format,
    ...(head?.etag ? { etag: head.etag } : {}),
  };
  await sendStep(ctx, id, 'plan');
  const { job } = await transition(ctx, id, (current, now) => released(current, part, now));
  ctx.log('info', 'batch released', { jobId: id });
  return job;
}
