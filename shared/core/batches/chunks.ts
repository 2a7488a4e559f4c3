import { backoffDelay } from '../backoff.js';
import { callProcessor } from '../call-processor.js';
import { type DeliveryHooks, DONE, retryIn } from '../delivery.js';
import { outputKeys } from '../keys.js';
import { isTerminal, type TaskError } from '../model.js';
import { processorJobView } from '../ports.js';
import type { Processor } from '../processors.js';
import type { ChunkMessage } from '../schemas.js';
import { type BatchContext, type BatchDelivery, type BatchVerdict, sendStep, token, unborn } from './context.js';
import type { BatchJob, ChunkRow, RowOutcome, Tally } from './model.js';
import type { ChunkRound } from './rules.js';
import {
  chunksInTally,
  failedRows,
  invalidRowOutcome,
  readChunkReply,
  requestTag,
  sumTallies,
  tallyOfChunk,
} from './rules.js';

/** SQS holds back a new message for at most 15 minutes. */
const MAX_SEND_DELAY_SECONDS = 900;

/**
 * Runs one chunk message: the processor is called with its rows, rows it asks to run again go
 * round again as a smaller chunk, and the rest commit — once, however often the message comes.
 */
export async function runChunk(
  ctx: BatchContext,
  message: ChunkMessage,
  delivery: BatchDelivery,
  hooks: DeliveryHooks = {},
): Promise<BatchVerdict> {
  const { jobId, chunk } = message;
  const { store, tallies, processors } = ctx.deps;
  const job = await store.read(jobId);
  if (job?.kind !== 'batch') return unbornChunk(ctx, message, delivery);
  if (message.request !== requestTag(job)) return foreign(ctx, message);
  // Aborted: the chunk's rows count as ABORTED; nothing new starts.
  if (isTerminal(job.status) || job.batch.abortRequestedAt) return DONE;
  const tally = await tallies.read(jobId, tallyOfChunk(chunk));
  if (tally?.commits.has(chunk)) {
    // Committed already (a duplicate, or a redelivery after a crash): make sure the batch moves on.
    await afterCommit(ctx, jobId, message.chunks, tally);
    return DONE;
  }
  if (tally?.closed) return DONE;

  const rows = await chunkRows(ctx, message);
  const invalid = rows.filter((row) => row.invalid !== undefined).map(invalidRowOutcome);
  const valid = rows.filter((row) => row.invalid === undefined);
  const processor = processors.get(job.batch.processor);
  if (!processor) {
    const error: TaskError = {
      kind: 'crash',
      code: 'UNKNOWN_PROCESSOR',
      message: `processor '${job.batch.processor}' is not registered with the worker`,
    };
    return commitChunk(ctx, job, message, [...invalid, ...failedRows(valid, error)]);
  }
  const attempt = message.attempt + Math.max(0, delivery.receiveCount - 1);
  let settled: RowOutcome[] = [];
  let retry: ChunkRow[] = [];
  if (valid.length > 0) {
    const round = await callChunk(ctx, job, message, processor, valid, attempt, hooks);
    if (round.kind === 'crash') {
      if (round.retryable && attempt < processor.maxAttempts) {
        const delaySeconds = Math.max(1, backoffDelay(processor.backoff, attempt));
        ctx.log('warn', 'chunk crashed; retrying', { jobId, chunk, attempt, error: round.error, delaySeconds });
        return retryIn(delaySeconds);
      }
      ctx.log('warn', 'chunk failed for good', { jobId, chunk, attempt, error: round.error });
      settled = failedRows(valid, round.error);
    } else {
      settled = round.settled;
      retry = round.retry;
    }
  }
  if (retry.length > 0) return retryRows(ctx, message, processor, attempt, [...invalid, ...settled], retry);
  return commitChunk(ctx, job, message, [...invalid, ...settled]);
}

/**
 * Calls the processor with a chunk's valid rows and reads its reply. A call still running after
 * `leaseAfterMs` gets its message hidden for the processor's timeout.
 */
async function callChunk(
  ctx: BatchContext,
  job: BatchJob,
  message: ChunkMessage,
  processor: Processor,
  valid: ChunkRow[],
  attempt: number,
  hooks: DeliveryHooks,
): Promise<Exclude<ChunkRound, { kind: 'crash' }> | { kind: 'crash'; error: TaskError; retryable: boolean }> {
  const { onLease, signal } = hooks;
  const call = await callProcessor(
    processor,
    (callSignal) =>
      ctx.deps.invoker.invokeChunk(
        processor,
        {
          job: processorJobView(job),
          chunk: {
            index: message.chunk,
            attempt,
            context: job.batch.context,
            rows: valid.map((row) => ({ line: row.line, input: row.input ?? null })),
          },
        },
        callSignal,
      ),
    {
      ...(signal ? { signal } : {}),
      ...(onLease
        ? {
            whileRunning: {
              afterMs: ctx.deps.leaseAfterMs ?? 1000,
              run: () => onLease(processor.timeoutSeconds + ctx.leaseMargin).catch(() => undefined),
            },
          }
        : {}),
    },
  );
  if (call.status !== 'reply') return { kind: 'crash', error: call.error, retryable: call.retryable };
  const round = readChunkReply(call.reply, valid, attempt, processor.maxAttempts);
  // A reply that breaks the contract is a crash another attempt may get past.
  return round.kind === 'crash' ? { ...round, retryable: true } : round;
}

/**
 * Rows the processor asked to run again: this round's outcomes are kept in a file and the rows go
 * out again as a smaller chunk message after the processor's backoff.
 */
async function retryRows(
  ctx: BatchContext,
  message: ChunkMessage,
  processor: Processor,
  attempt: number,
  settled: RowOutcome[],
  retry: ChunkRow[],
): Promise<BatchVerdict> {
  const { jobId, chunk } = message;
  const partial = outputKeys.partial(jobId, chunk, token(), attempt);
  await ctx.deps.files.putOutcomes(partial, settled);
  const delaySeconds = Math.min(MAX_SEND_DELAY_SECONDS, backoffDelay(processor.backoff, attempt));
  await ctx.deps.queue.send(
    [
      {
        jobId,
        chunk,
        chunks: message.chunks,
        request: message.request,
        attempt: attempt + 1,
        rows: retry,
        carry: [...(message.carry ?? []), partial],
      },
    ],
    { delaySeconds },
  );
  ctx.log('info', 'chunk rows to retry', { jobId, chunk, attempt, rows: retry.length, delaySeconds });
  return DONE;
}

/**
 * The one write that counts a chunk: its outcomes go to a file unique to this attempt, then the
 * tally records that file (unless another attempt got there first, or an abort closed it).
 */
async function commitChunk(
  ctx: BatchContext,
  job: BatchJob,
  message: ChunkMessage,
  outcomes: RowOutcome[],
): Promise<BatchVerdict> {
  const { files, tallies } = ctx.deps;
  const earlier = (await Promise.all((message.carry ?? []).map((key) => files.getOutcomes(key)))).flat();
  const all = [...earlier, ...outcomes].sort((a, b) => a.line - b.line);
  const commit = {
    token: token(),
    succeeded: all.filter((row) => row.status === 'SUCCEEDED').length,
    failed: all.filter((row) => row.status === 'FAILED').length,
  };
  await files.putOutcomes(outputKeys.chunk(job.id, message.chunk, commit.token), all);
  const result = await tallies.commit(job.id, message.chunk, commit);
  if (!result.committed) {
    ctx.log('info', 'chunk outcome not counted: committed by another attempt or closed by an abort', {
      jobId: job.id,
      chunk: message.chunk,
    });
    return DONE;
  }
  ctx.log('info', 'chunk done', {
    jobId: job.id,
    chunk: message.chunk,
    succeeded: commit.succeeded,
    failed: commit.failed,
  });
  await afterCommit(ctx, job.id, message.chunks, result.tally);
  return DONE;
}

/** When a chunk's group is complete, check the whole batch; the last one sends the finalize step. */
async function afterCommit(ctx: BatchContext, jobId: string, chunks: number, tally: Tally): Promise<void> {
  if (tally.commits.size < chunksInTally(tally.group, chunks)) return;
  const all = await ctx.deps.tallies.all(jobId);
  if (sumTallies(all).chunks === chunks) await sendStep(ctx, jobId, 'finalize');
}

/** A chunk's message was dead-lettered: its rows fail as `poison`, so the batch can end. */
export async function poisonChunk(ctx: BatchContext, message: ChunkMessage): Promise<void> {
  const job = await ctx.deps.store.read(message.jobId);
  if (job?.kind !== 'batch' || isTerminal(job.status) || job.batch.abortRequestedAt) return;
  if (message.request !== requestTag(job)) {
    foreign(ctx, message);
    return;
  }
  const tally = await ctx.deps.tallies.read(job.id, tallyOfChunk(message.chunk));
  if (tally?.commits.has(message.chunk)) {
    await afterCommit(ctx, job.id, message.chunks, tally);
    return;
  }
  const rows = await chunkRows(ctx, message);
  ctx.log('warn', 'chunk failed: poison', { jobId: job.id, chunk: message.chunk });
  await commitChunk(
    ctx,
    job,
    message,
    failedRows(rows, { kind: 'poison', message: 'the chunk message kept failing and was dead-lettered' }),
  );
}

/**
 * A chunk whose job is not there (yet). Sent just before its job is written, it may have overtaken
 * the write. It comes back as a fresh copy rather than a redelivery: a chunk's receive count is
 * its attempt count.
 */
async function unbornChunk(ctx: BatchContext, message: ChunkMessage, delivery: BatchDelivery): Promise<BatchVerdict> {
  const firstSentAt = message.firstSentAt ?? delivery.sentAt;
  const verdict = unborn(ctx, message.jobId, firstSentAt, `chunk ${message.chunk}`);
  if (verdict.kind === 'retry') {
    await ctx.deps.queue.send([{ ...message, ...(firstSentAt !== undefined ? { firstSentAt } : {}) }], {
      delaySeconds: verdict.delaySeconds,
    });
  }
  return DONE;
}

/** The rows a chunk message carries, or names in S3 when they were too large to carry. */
async function chunkRows(ctx: BatchContext, message: ChunkMessage): Promise<ChunkRow[]> {
  return message.rows ?? ((await ctx.deps.files.getJson(message.rowsKey!)) as ChunkRow[]);
}

/** A chunk of a request that lost its idempotency key to another: dropped, never run. */
function foreign(ctx: BatchContext, message: ChunkMessage): BatchVerdict {
  ctx.log('warn', 'chunk of a refused request dropped (its idempotency key belongs to another request)', {
    jobId: message.jobId,
    chunk: message.chunk,
  });
  return DONE;
}
