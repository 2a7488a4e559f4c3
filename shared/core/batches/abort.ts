import { InputChangedError, InputMissingError, InputUnreadableError, InvalidStateError } from '../errors.js';
import { isTerminal, type TaskError } from '../model.js';
import type { Caller } from '../owners.js';
import { type BatchContext, readBatch, sendStep, transition } from './context.js';
import type { BatchJob } from './model.js';
import { sumTallies, tallyCount } from './rules.js';
import { aborted, abortRequested, failed } from './transitions.js';

/**
 * How a batch ends early: aborted by its caller, or failed because it cannot run (on). Either way
 * its tallies are closed first, so no chunk commits after the end, and the finalizer counts every
 * row that did not commit as ABORTED.
 */

/**
 * Abort. The finalize step is sent first (it completes an abort whose caller died half way), then
 * the intent is written (no chunk starts after it), then every tally is closed (no chunk commits
 * after it) and the job ends ABORTED with the rows of uncommitted chunks counted ABORTED.
 * `read`: the job as the caller just read it for `caller` (the facade routes on it).
 */
export async function abort(
  ctx: BatchContext,
  id: string,
  caller: Caller,
  read?: BatchJob,
): Promise<{ job: BatchJob; changed: boolean }> {
  const first = read ?? (await readBatch(ctx, id, caller));
  if (first.status === 'ABORTED') return { job: first, changed: false };
  if (isTerminal(first.status)) {
    throw new InvalidStateError(`Job ${id} is ${first.status}; only unfinished jobs can be aborted`);
  }
  await sendStep(ctx, id, 'finalize');
  const intent = await transition(ctx, id, abortRequested);
  if (intent.job.status === 'ABORTED') return { job: intent.job, changed: false };
  const job = await completeAbort(ctx, intent.job);
  ctx.log('info', 'batch aborted', { jobId: id, ...job.batch.counts });
  return { job, changed: true };
}

/** Closes the tallies of a batch whose abort was asked for, then ends it ABORTED. */
export async function completeAbort(ctx: BatchContext, job: BatchJob): Promise<BatchJob> {
  const { tallies } = ctx.deps;
  if (job.batch.plan) await tallies.close(job.id, tallyCount(job.batch.plan.chunks));
  const committed = sumTallies(await tallies.all(job.id));
  return (await transition(ctx, job.id, (current, now) => aborted(current, committed, now))).job;
}

/** A batch whose input file vanished or was replaced cannot run (on): it fails, saying why. */
export async function failedByInput(ctx: BatchContext, jobId: string, error: unknown): Promise<boolean> {
  const code =
    error instanceof InputMissingError
      ? 'INPUT_MISSING'
      : error instanceof InputChangedError
        ? 'INPUT_CHANGED'
        : error instanceof InputUnreadableError
          ? error.code
          : null;
  if (!code) return false;
  await failBatch(ctx, jobId, { kind: 'error', code, message: (error as Error).message });
  return true;
}

/**
 * Ends a batch that cannot run (on) as FAILED, then sends the finalize step — after the write, or
 * the finalizer would find the batch still running and ignore it. A crash in between leaves the
 * plan message that got here to be redelivered, and the plan step re-sends finalize for a batch
 * that has ended without its outputs.
 */
export async function failBatch(ctx: BatchContext, jobId: string, error: TaskError): Promise<void> {
  // Chunks already sent (an earlier slice of the plan) may commit no more: what did not finish
  // counts as ABORTED, as after an abort.
  const job = await ctx.deps.store.read(jobId);
  if (job?.kind === 'batch' && job.batch.plan) await ctx.deps.tallies.close(jobId, tallyCount(job.batch.plan.chunks));
  await transition(ctx, jobId, (current, now) => failed(current, error, now));
  await sendStep(ctx, jobId, 'finalize');
  ctx.log('warn', 'batch failed', { jobId, error });
}

/** A plan or finalize step that kept failing: the batch fails rather than wait forever. */
export async function poisonStep(ctx: BatchContext, jobId: string, step: 'plan' | 'finalize'): Promise<void> {
  if (step === 'plan') {
    await failBatch(ctx, jobId, { kind: 'poison', message: 'planning the batch kept failing' });
  } else {
    ctx.log('error', 'finalizing a batch kept failing; the sweeper will try again', { jobId });
  }
}
