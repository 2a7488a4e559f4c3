import { DONE } from '../delivery.js';
import { AssemblyLostError, InputMissingError } from '../errors.js';
import { outputKeys } from '../keys.js';
import { isTerminal } from '../model.js';
import type { AssemblingFiles } from '../ports.js';
import { completeAbort } from './abort.js';
import { type BatchContext, type BatchVerdict, sendStep, transition } from './context.js';
import type { BatchJob, BatchOutput, RowCounts, RowOutcome, Tally } from './model.js';
import { countRows } from './planner.js';
import { abortedRow, chunkCount, commitMap, linesOfChunk, sumTallies } from './rules.js';
import { finalized } from './transitions.js';

/**
 * Chunk files one finalize step reads into the outputs (eight at a time) before it stores where the
 * assembly stands and hands the rest to the next step: on S3, ~2,000 small reads take seconds,
 * so a batch of any size is assembled in steps that each finish well inside the worker's timeout.
 */
const FINALIZE_CHUNKS_PER_STEP = 2000;
/** Chunk files the finalizer reads ahead of the one it is writing out. */
const ASSEMBLY_READ_AHEAD = 8;

/** What one finalize step hands the next: the counts so far and the output files part-way. */
interface Assembly {
  counts: RowCounts;
  files: AssemblingFiles;
}

const EMPTY_ASSEMBLY: Assembly = { counts: { succeeded: 0, failed: 0, aborted: 0 }, files: {} };

/**
 * Assembles the outputs once every chunk is committed (or the batch was aborted or failed) and
 * ends the job. Safe to run twice: the files are rebuilt from the same commits, and the job write
 * is conditional.
 */
export async function finalize(ctx: BatchContext, jobId: string, slice: { from?: number } = {}): Promise<BatchVerdict> {
  const { store, tallies, files, queue } = ctx.deps;
  let job = await store.read(jobId);
  if (job?.kind !== 'batch' || job.batch.outputs) return DONE;
  if (!isTerminal(job.status) && job.batch.abortRequestedAt) job = await completeAbort(ctx, job);
  // Read once: every chunk is committed, or the tallies are closed (abort) or unused (failed).
  const all = await tallies.all(jobId);
  if (!isTerminal(job.status)) {
    const plan = job.batch.plan;
    if (!plan || sumTallies(all).chunks < plan.chunks) {
      ctx.log('warn', 'finalize step before the last chunk: ignored', { jobId });
      return DONE;
    }
  }
  // Aborted or failed before it was planned: its rows are counted (all ABORTED) now; a file that
  // is gone (or cannot be read into rows) has none.
  const rows = job.batch.plan?.rows ?? (await countRows(ctx, job.batch.parts, { missingIsEmpty: true }));
  const chunks = chunkCount(rows, job.batch.chunkSize);
  const from = slice.from ?? 0;
  const carried = from === 0 ? EMPTY_ASSEMBLY : await assemblyAt(ctx, jobId, from);
  if (!carried) return restartAssembly(ctx, jobId, 'its state is gone');
  const to = Math.min(chunks, from + (ctx.deps.finalizeChunksPerStep ?? FINALIZE_CHUNKS_PER_STEP));
  const counts: RowCounts = { ...carried.counts };
  let outputs: Record<string, BatchOutput>;
  try {
    const assembling = await files.assemble(
      outputKeys.job(jobId),
      outcomes(ctx, job, rows, all, counts, from, to),
      carried.files,
    );
    if (to < chunks) {
      // Where the assembly stands, then the step that goes on from it. A step run twice writes
      // the same parts; its twin's state is whole too, so either one the next step reads is sound.
      await files.putJson(outputKeys.assembly(jobId, to), { counts, files: assembling } satisfies Assembly);
      await queue.send([{ jobId, step: 'finalize', from: to }]);
      return DONE;
    }
    outputs = await files.completeAssembly(assembling);
  } catch (error) {
    if (error instanceof AssemblyLostError) return restartAssembly(ctx, jobId, error.message);
    throw error;
  }
  const finished = await transition(ctx, jobId, (current, now) => finalized(current, { outputs, counts, rows }, now));
  if (finished.changed) {
    const { status } = finished.job;
    ctx.log(status === 'SUCCEEDED' ? 'info' : 'warn', `batch ${status.toLowerCase()}`, { jobId, ...counts });
  }
  return DONE;
}

/**
 * Every row's outcome in line order, for the finalizer; counts them on the way. Chunk files are
 * fetched a few ahead of the one being written out, so a large batch waits on S3 once per
 * window rather than once per chunk (memory: the window's files).
 */
async function* outcomes(
  ctx: BatchContext,
  job: BatchJob,
  total: number,
  tallies: Tally[],
  counts: RowCounts,
  from: number,
  to: number,
): AsyncIterable<RowOutcome> {
  const { chunkSize } = job.batch;
  const commits = commitMap(tallies);
  const fetches = new Map<number, Promise<RowOutcome[]>>();
  let fetched = from;
  for (let index = from; index < to; index++) {
    for (; fetched < Math.min(index + ASSEMBLY_READ_AHEAD, to); fetched++) {
      const commit = commits.get(fetched);
      if (!commit) continue;
      const file = ctx.deps.files.getOutcomes(outputKeys.chunk(job.id, fetched, commit.token));
      // Awaited in turn below; a failure while an earlier file is awaited must not go unhandled.
      file.catch(() => undefined);
      fetches.set(fetched, file);
    }
    const file = fetches.get(index);
    if (file) {
      fetches.delete(index);
      for (const row of await file) {
        if (row.status === 'SUCCEEDED') counts.succeeded++;
        else counts.failed++;
        yield row;
      }
      continue;
    }
    const { first, last } = linesOfChunk(index, chunkSize, total);
    for (let line = first; line <= last; line++) {
      counts.aborted++;
      yield abortedRow(line);
    }
  }
}

/** Where the assembly stood when the step before handed on at chunk `from`; undefined if gone. */
async function assemblyAt(ctx: BatchContext, jobId: string, from: number): Promise<Assembly | undefined> {
  try {
    return (await ctx.deps.files.getJson(outputKeys.assembly(jobId, from))) as Assembly;
  } catch (error) {
    if (error instanceof InputMissingError) return undefined;
    throw error;
  }
}

/** Assembles the outputs again from the first chunk: the files are rebuilt from the same commits. */
async function restartAssembly(ctx: BatchContext, jobId: string, why: string): Promise<BatchVerdict> {
  ctx.log('warn', 'batch assembly starts over', { jobId, why });
  await sendStep(ctx, jobId, 'finalize');
  return DONE;
}
