import { InvalidStateError } from '../errors.js';
import { isTerminal, type JobIdentity, newJobFields, type TaskError } from '../model.js';
import type { SubmitBatch } from '../schemas.js';
import { nextVersion } from '../versioned-update.js';
import type { BatchJob, BatchOutput, BatchPart, BatchState, RowCounts } from './model.js';
import { appendable, chunkCount, finalOutcome, releasable, totalRows } from './rules.js';

/**
 * Every state change of a batch job is one pure function here, as `tasks/transitions.ts` is for
 * jobs of tasks: (job, what happened, now) → the next job, or undefined when there is nothing to
 * write; a change the job cannot take is refused with the contract's error. The engine writes the
 * next job with one conditional write on `version` and applies the function again on conflict.
 * Nothing here changes a job whose status is terminal, except to record its finalized outputs.
 */

const next = nextVersion<BatchJob>;

type RowsPart = Extract<BatchPart, { kind: 'rows' }>;
type FilePart = Extract<BatchPart, { kind: 'file' }>;

/**
 * Whether a submission's rows go out as chunk messages at once: inline rows only, nothing to
 * wait for (no file to count, no upload, no hold).
 */
export function goesStraightOut(batch: SubmitBatch['batch']): boolean {
  const file = batch.input?.bucket !== undefined && batch.input.key !== undefined;
  return (batch.rows ?? []).length > 0 && !file && !batch.upload && !batch.hold;
}

/**
 * A new batch job: HELD (to append to, or to upload), RUNNING with its plan when its inline rows
 * go straight out, else PENDING for the planner. `parts` are where its rows are (see `intake.ts`).
 */
export function newBatch(
  request: SubmitBatch,
  who: JobIdentity,
  parts: BatchPart[],
  upload: BatchState['upload'],
  now: Date,
): BatchJob {
  const { batch } = request;
  const rows = (batch.rows ?? []).length;
  const direct = goesStraightOut(batch);
  return {
    ...newJobFields(request, who, now),
    kind: 'batch',
    status: batch.hold || batch.upload ? 'HELD' : direct ? 'RUNNING' : 'PENDING',
    ...(direct ? { startedAt: now.toISOString() } : {}),
    batch: {
      processor: batch.processor,
      chunkSize: batch.chunkSize,
      maxFailedRows: batch.maxFailedRows,
      context: batch.context,
      parts,
      rows,
      ...(direct ? { plan: { rows, chunks: chunkCount(rows, batch.chunkSize) } } : {}),
      ...(upload ? { upload } : {}),
    },
  };
}

/** A HELD batch takes another part of rows (refused once released, or full). */
export function appended(job: BatchJob, part: RowsPart, now: Date): BatchJob {
  appendable(job);
  const updated = next(job, now);
  updated.batch.parts.push(part);
  updated.batch.rows += part.rows;
  return updated;
}

/** HELD → PENDING, with its uploaded file as its last part (once). Refused from any other status. */
export function released(job: BatchJob, upload: FilePart | undefined, now: Date): BatchJob {
  releasable(job);
  const updated = next(job, now);
  updated.status = 'PENDING';
  if (upload && !updated.batch.parts.some((p) => p.kind === 'file' && p.key === upload.key)) {
    updated.batch.parts.push(upload);
  }
  return updated;
}

/** The plan is written once, before any chunk message: the batch runs. Not for an ended or aborting one. */
export function planned(job: BatchJob, rows: number, now: Date): BatchJob | undefined {
  if (isTerminal(job.status) || job.batch.abortRequestedAt || job.batch.plan) return undefined;
  const updated = next(job, now);
  updated.batch.plan = { rows, chunks: chunkCount(rows, job.batch.chunkSize) };
  updated.status = 'RUNNING';
  updated.startedAt ??= updated.updatedAt;
  return updated;
}

/**
 * The abort's intent: once written, no chunk starts. Asked for twice, it is written once; a batch
 * that ended otherwise cannot be aborted.
 */
export function abortRequested(job: BatchJob, now: Date): BatchJob | undefined {
  if (job.status === 'ABORTED' || job.batch.abortRequestedAt) return undefined;
  if (isTerminal(job.status)) {
    throw new InvalidStateError(`Job ${job.id} is ${job.status}; only unfinished jobs can be aborted`);
  }
  const updated = next(job, now);
  updated.batch.abortRequestedAt = updated.updatedAt;
  return updated;
}

/**
 * The abort ends the batch once its tallies are closed: `committed` is what they counted, and
 * every other row counts ABORTED.
 */
export function aborted(
  job: BatchJob,
  committed: { succeeded: number; failed: number },
  now: Date,
): BatchJob | undefined {
  if (isTerminal(job.status)) return undefined;
  const { succeeded, failed } = committed;
  const updated = next(job, now);
  updated.status = 'ABORTED';
  updated.endedAt = updated.updatedAt;
  updated.batch.counts = { succeeded, failed, aborted: Math.max(0, totalRows(job.batch) - succeeded - failed) };
  return updated;
}

/** A batch that cannot run (on) ends FAILED, saying why. */
export function failed(job: BatchJob, error: TaskError, now: Date): BatchJob | undefined {
  if (isTerminal(job.status)) return undefined;
  const updated = next(job, now);
  updated.status = 'FAILED';
  updated.endedAt = updated.updatedAt;
  updated.batch.error = error;
  return updated;
}

/** What the finalizer assembled: the output files, every row counted, and how many rows there are. */
export interface Assembled {
  outputs: Record<string, BatchOutput>;
  counts: RowCounts;
  rows: number;
}

/**
 * The outputs are written once. A batch still running ends by its counts (`finalOutcome`); one
 * that ended already (aborted, failed) keeps its status and only gains its outputs.
 */
export function finalized(job: BatchJob, assembled: Assembled, now: Date): BatchJob | undefined {
  if (job.batch.outputs) return undefined;
  const { outputs, counts, rows } = assembled;
  const updated = next(job, now);
  updated.batch.outputs = outputs;
  updated.batch.counts = counts;
  updated.batch.plan ??= { rows, chunks: chunkCount(rows, job.batch.chunkSize) };
  if (!isTerminal(updated.status)) {
    const outcome = finalOutcome(updated.batch, counts, rows);
    updated.status = outcome.status;
    if (outcome.status === 'FAILED') updated.batch.error = outcome.error;
    updated.endedAt = updated.updatedAt;
    updated.startedAt ??= updated.updatedAt;
  }
  return updated;
}
