import type { Submitted } from '../create-job.js';
import type { DeliveryHooks } from '../delivery.js';
import type { Caller } from '../owners.js';
import type { ChunkMessage, SubmitBatch } from '../schemas.js';
import * as abort from './abort.js';
import * as chunks from './chunks.js';
import {
  type BatchContext,
  type BatchDelivery,
  type BatchDeps,
  type BatchVerdict,
  batchContext,
  getBatch,
  readBatch,
} from './context.js';
import * as finalizer from './finalizer.js';
import * as intake from './intake.js';
import type { BatchJob, RowStatus, Tally } from './model.js';
import * as planner from './planner.js';
import * as reads from './reads.js';
import * as sweep from './sweep.js';

export type { BatchDelivery, BatchDeps, BatchVerdict } from './context.js';
export { DEFAULT_INPUT_POLICY, type InputPolicy } from './input-policy.js';
export type { PreparedBatch } from './intake.js';
export type { RowsPage } from './reads.js';

/**
 * The use cases of batches: submit, append, release, plan, run a chunk, finalize, abort, read.
 * Each lives in a room of its own beside this file (`intake`, `planner`, `chunks`, `finalizer`,
 * `abort`, `reads`, `sweep`), sharing one `BatchContext`; their state changes are the pure
 * functions of `transitions.ts`, and `rules.ts` holds what makes every row count exactly once.
 */
export class BatchEngine {
  private readonly ctx: BatchContext;

  constructor(deps: BatchDeps) {
    this.ctx = batchContext(deps);
  }

  /** Builds a batch job from a validated request, writing nothing. */
  prepare(request: SubmitBatch, owner: string, key: string | undefined): intake.PreparedBatch {
    return intake.prepare(this.ctx, request, owner, key);
  }

  /** Makes a prepared batch real: its messages first, then its job. */
  commit(prepared: intake.PreparedBatch): Promise<Submitted> {
    return intake.commit(this.ctx, prepared);
  }

  get(id: string): Promise<BatchJob> {
    return getBatch(this.ctx, id);
  }

  /** A batch `caller` may see; a foreign one is a missing one. */
  read(id: string, caller: Caller): Promise<BatchJob> {
    return readBatch(this.ctx, id, caller);
  }

  /** Appends rows to a HELD batch (once per idempotency key). */
  append(id: string, caller: Caller, rows: unknown[], key?: string): Promise<{ appended: number; totalRows: number }> {
    return intake.append(this.ctx, id, caller, rows, key);
  }

  /** Starts a HELD batch: its rows (and uploaded file) are planned into chunks by the worker. */
  release(id: string, caller: Caller): Promise<BatchJob> {
    return intake.release(this.ctx, id, caller);
  }

  /** Splits a batch into chunks and sends their messages, a slice per step. */
  plan(
    jobId: string,
    delivery: Pick<BatchDelivery, 'sentAt'>,
    slice: { from?: number; deadline?: number; resume?: planner.PlanResume } = {},
  ): Promise<BatchVerdict> {
    return planner.plan(this.ctx, jobId, delivery, slice);
  }

  runChunk(message: ChunkMessage, delivery: BatchDelivery, hooks: DeliveryHooks = {}): Promise<BatchVerdict> {
    return chunks.runChunk(this.ctx, message, delivery, hooks);
  }

  /** A chunk's message was dead-lettered: its rows fail as `poison`, so the batch can end. */
  poisonChunk(message: ChunkMessage): Promise<void> {
    return chunks.poisonChunk(this.ctx, message);
  }

  /** A plan or finalize step that kept failing: the batch fails rather than wait forever. */
  poisonStep(jobId: string, step: 'plan' | 'finalize'): Promise<void> {
    return abort.poisonStep(this.ctx, jobId, step);
  }

  /** Assembles the outputs and ends the job, a slice of chunks per step. */
  finalize(jobId: string, slice: { from?: number } = {}): Promise<BatchVerdict> {
    return finalizer.finalize(this.ctx, jobId, slice);
  }

  /** Abort; `read`: the job as the caller just read it for `caller` (the facade routes on it). */
  abort(id: string, caller: Caller, read?: BatchJob): Promise<{ job: BatchJob; changed: boolean }> {
    return abort.abort(this.ctx, id, caller, read);
  }

  /** The job as API.md shows a batch. */
  view(job: BatchJob, extra: { upload?: boolean } = {}) {
    return reads.view(this.ctx, job, extra);
  }

  /** Pages through row outcomes in line order. */
  rows(
    id: string,
    caller: Caller,
    query: { status?: RowStatus; limit: number; cursor?: string },
  ): Promise<reads.RowsPage> {
    return reads.rows(this.ctx, id, caller, query);
  }

  /** A batch's tallies (for its events). */
  tallies(id: string): Promise<Tally[]> {
    return reads.tallies(this.ctx, id);
  }

  /** The sweeper's pass over one batch: re-sends the step a lost message would have taken. */
  sweepOne(id: string, graceSeconds: number): Promise<boolean> {
    return sweep.sweepOne(this.ctx, id, graceSeconds);
  }
}
