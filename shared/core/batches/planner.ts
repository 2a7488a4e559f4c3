import { DONE } from '../delivery.js';
import { InputChangedError, InputMissingError, InputUnreadableError } from '../errors.js';
import { depthMessage, nestsDeeperThan } from '../json-depth.js';
import { inputKeys } from '../keys.js';
import { isTerminal } from '../model.js';
import type { RowCursor } from '../ports.js';
import type { ChunkMessage } from '../schemas.js';
import { failedByInput } from './abort.js';
import { type BatchContext, type BatchDelivery, type BatchVerdict, sendStep, transition, unborn } from './context.js';
import type { BatchJob, BatchPart, ChunkRow } from './model.js';
import { chunkOfLine, requestTag } from './rules.js';
import { planned } from './transitions.js';

/** Chunk rows above this many bytes go to S3 instead of riding in the message (SQS's limit is 256 KiB). */
const MAX_ROWS_IN_MESSAGE = 200_000;
/** What the planner gathers before sending (10 messages per SQS request): memory stays flat. */
const PLAN_SEND_MESSAGES = 100;
const PLAN_SEND_BYTES = 2 * 1024 * 1024;
/**
 * A plan step stops sending by this many chunk messages (and when its time runs short) and leaves
 * the rest to the next step: a huge file is planned in slices that each finish well inside the
 * worker's timeout, and a worker that dies mid-plan costs a slice of duplicates, not the whole plan.
 */
const PLAN_CHUNKS_PER_STEP = 10_000;

/** A row on its way into a chunk message, with where it starts in the input (read from a file). */
interface PlannedRow {
  row: ChunkRow;
  at?: RowCursor;
}

/** Where a plan's next slice starts: its first row's line, and that row's place in the input. */
export type PlanResume = RowCursor & { line: number };

/**
 * Splits a batch into chunks. Two passes over the input: the first counts its rows and writes the
 * plan (so every chunk message knows how many chunks there are, and an abort knows which tallies
 * to close); the second sends the chunk messages, skipping chunks already committed. Running it
 * again (a redelivery, the sweeper) is safe: a chunk commits once however often it is sent.
 */
export async function plan(
  ctx: BatchContext,
  jobId: string,
  delivery: Pick<BatchDelivery, 'sentAt'>,
  slice: { from?: number; deadline?: number; resume?: PlanResume } = {},
): Promise<BatchVerdict> {
  const { store, tallies, queue } = ctx.deps;
  const job = await store.read(jobId);
  if (job?.kind !== 'batch' || job.status === 'HELD') return unborn(ctx, jobId, delivery.sentAt, 'plan');
  if (isTerminal(job.status) && !job.batch.outputs) {
    await sendStep(ctx, jobId, 'finalize');
    return DONE;
  }
  if (isTerminal(job.status) || job.batch.abortRequestedAt) return DONE;
  let current = job;
  if (!job.batch.plan) {
    let rows: number;
    try {
      rows = await countRows(ctx, job.batch.parts);
    } catch (error) {
      if (await failedByInput(ctx, jobId, error)) return DONE;
      throw error;
    }
    const written = await transition(ctx, jobId, (latest, now) => planned(latest, rows, now));
    if (!written.changed) return DONE;
    current = written.job;
    ctx.log('info', 'batch planned', { jobId, ...current.batch.plan });
  }
  const { chunks } = current.batch.plan!;
  if (chunks === 0) {
    await sendStep(ctx, jobId, 'finalize');
    return DONE;
  }
  const committed = new Set<number>();
  for (const tally of await tallies.all(jobId)) for (const chunk of tally.commits.keys()) committed.add(chunk);
  if (committed.size === chunks) {
    await sendStep(ctx, jobId, 'finalize');
    return DONE;
  }
  const from = slice.from ?? 0;
  const stop = {
    atChunk: from + (ctx.deps.planChunksPerStep ?? PLAN_CHUNKS_PER_STEP),
    ...(slice.deadline !== undefined ? { deadline: slice.deadline } : {}),
  };
  // The step before says where this slice starts in the input, so nothing before it is read
  // again (the file is pinned by its ETag, so the position still holds).
  const resume = slice.resume?.line === from * current.batch.chunkSize + 1 ? slice.resume : undefined;
  let rest: PlanResume | undefined;
  try {
    rest = await sendChunks(ctx, current, readNumbered(ctx, current.batch.parts, resume), committed, { from, stop });
  } catch (error) {
    if (await failedByInput(ctx, jobId, error)) return DONE;
    throw error;
  }
  // Sent only once this slice's messages are out: a step that dies is redelivered and resends its
  // slice (duplicates are harmless), so no chunk is ever left unsent.
  if (rest !== undefined) {
    const next = chunkOfLine(rest.line, current.batch.chunkSize);
    await queue.send([{ jobId, step: 'plan', from: next, resume: rest }]);
    ctx.log('info', 'batch plan continues in a next step', { jobId, from: next, chunks });
  }
  return DONE;
}

/** Inline rows, numbered in line order. */
export async function* numbered(rows: unknown[]): AsyncIterable<PlannedRow> {
  let line = 0;
  for (const input of rows) yield { row: { line: ++line, input } };
}

/** The input's rows numbered in line order, from the start or from where a slice resumes. */
async function* readNumbered(ctx: BatchContext, parts: BatchPart[], resume?: PlanResume): AsyncIterable<PlannedRow> {
  let line = resume ? resume.line - 1 : 0;
  const from = resume && { part: resume.part, byte: resume.byte, fileLine: resume.fileLine };
  for await (const { input, invalid, at } of ctx.deps.files.rows(parts, from)) {
    line++;
    // A file's row is checked like an inline one: nested too deep, no chunk message could carry it.
    // A row's number (`line`) counts rows; its file's lines may run ahead (a header, blank lines).
    const refused = invalid ?? (nestsDeeperThan(input) ? `the row ${depthMessage()}` : undefined);
    const why = refused && `row ${line} (file line ${at.fileLine}): ${refused}`;
    yield { row: why !== undefined ? { line, invalid: why } : { line, input }, at };
  }
}

/**
 * Groups rows into chunk messages and sends them, a bounded number in flight (memory stays flat).
 * Chunks before `from` are read past; at `stop` (a chunk, or a time) it returns the first chunk
 * it did not send.
 */
export async function sendChunks(
  ctx: BatchContext,
  job: BatchJob,
  rows: AsyncIterable<PlannedRow>,
  skip: Set<number>,
  slice: { from: number; stop?: { atChunk: number; deadline?: number } } = { from: 0 },
): Promise<PlanResume | undefined> {
  const { queue, files, clock } = ctx.deps;
  const { chunkSize } = job.batch;
  const chunks = job.batch.plan!.chunks;
  let pending: ChunkMessage[] = [];
  let pendingBytes = 0;
  let current: ChunkRow[] = [];
  const flush = async (force: boolean) => {
    if (pending.length >= PLAN_SEND_MESSAGES || pendingBytes >= PLAN_SEND_BYTES || (force && pending.length > 0)) {
      const out = pending;
      pending = [];
      pendingBytes = 0;
      await queue.send(out);
    }
  };
  const close = async () => {
    if (current.length === 0) return;
    const index = chunkOfLine(current[0]!.line, chunkSize);
    const rowsOfChunk = current;
    current = [];
    if (index < slice.from || skip.has(index)) return;
    const message: ChunkMessage = {
      jobId: job.id,
      chunk: index,
      chunks,
      request: requestTag(job),
      attempt: 1,
      rows: rowsOfChunk,
    };
    const bytes = Buffer.byteLength(JSON.stringify(rowsOfChunk));
    pendingBytes += Math.min(bytes, MAX_ROWS_IN_MESSAGE);
    if (bytes > MAX_ROWS_IN_MESSAGE) {
      const key = inputKeys.chunkRows(job.id, index);
      await files.putJson(key, rowsOfChunk);
      delete message.rows;
      message.rowsKey = key;
    }
    pending.push(message);
    await flush(false);
  };
  const { stop } = slice;
  let rest: PlanResume | undefined;
  for await (const { row, at } of rows) {
    if (stop && at && current.length === 0 && (row.line - 1) % chunkSize === 0) {
      const index = chunkOfLine(row.line, chunkSize);
      if (index >= stop.atChunk || (stop.deadline !== undefined && clock.now().getTime() >= stop.deadline)) {
        // Every step sends at least its first chunk, so a slow read still moves the plan on.
        if (index > slice.from) {
          rest = { line: row.line, ...at };
          break;
        }
      }
    }
    current.push(row);
    if (current.length === chunkSize) await close();
  }
  await close();
  await flush(true);
  return rest;
}

/**
 * Rows the parts hold, read through once (streamed). Throws when the input is gone, changed or
 * unreadable, unless told that such an input holds no rows.
 */
export async function countRows(
  ctx: BatchContext,
  parts: BatchPart[],
  options: { missingIsEmpty?: boolean } = {},
): Promise<number> {
  let rows = 0;
  try {
    for await (const _ of ctx.deps.files.rows(parts)) rows++;
  } catch (error) {
    const gone =
      error instanceof InputMissingError || error instanceof InputChangedError || error instanceof InputUnreadableError;
    if (!(options.missingIsEmpty && gone)) throw error;
  }
  return rows;
}
