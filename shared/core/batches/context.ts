import { randomBytes } from 'node:crypto';
import { unbornVerdict, type Verdict } from '../delivery.js';
import { InvalidStateError, NotFoundError } from '../errors.js';
import { type Caller, visibleTo } from '../owners.js';
import type { BatchFiles, Clock, JobStore, ProcessorInvoker, TallyStore, WorkQueue } from '../ports.js';
import type { ProcessorRegistry } from '../processors.js';
import type { Cursors } from '../search.js';
import { VersionedUpdates } from '../versioned-update.js';
import { DEFAULT_INPUT_POLICY, type InputPolicy } from './input-policy.js';
import type { BatchJob } from './model.js';

export interface BatchDeps {
  store: JobStore;
  tallies: TallyStore;
  files: BatchFiles;
  queue: WorkQueue;
  invoker: ProcessorInvoker;
  processors: ProcessorRegistry;
  clock: Clock;
  /** Signs the rows route's cursors (tamper-evident, bound to their query). */
  cursors: Cursors;
  leaseMarginSeconds?: number;
  /** A chunk still running after this long gets its message hidden for the processor's timeout. */
  leaseAfterMs?: number;
  /** Chunk messages one plan step sends before it hands the rest to a step of its own. */
  planChunksPerStep?: number;
  /** Chunks whose outcomes one finalize step assembles before it hands the rest on. */
  finalizeChunksPerStep?: number;
  /** Where batch input files may come from, and how large they may be (see `InputPolicy`). */
  inputs?: Partial<InputPolicy>;
  log?: (level: 'info' | 'warn' | 'error', message: string, data?: Record<string, unknown>) => void;
}

/** What the worker does with a batch message: delete it, or bring it back after a delay. */
export type BatchVerdict = Exclude<Verdict, { kind: 'keep' }>;

export interface BatchDelivery {
  messageId: string;
  /** SQS's ApproximateReceiveCount: a chunk that crashed comes back with a higher count. */
  receiveCount: number;
  sentAt?: number;
}

/** What every room of the batch engine shares: its ports, its settings, and the one update loop. */
export interface BatchContext {
  readonly deps: BatchDeps;
  readonly inputs: InputPolicy;
  readonly leaseMargin: number;
  readonly updates: VersionedUpdates<BatchJob>;
  log(level: 'info' | 'warn' | 'error', message: string, data?: Record<string, unknown>): void;
}

export function batchContext(deps: BatchDeps): BatchContext {
  return {
    deps,
    inputs: { ...DEFAULT_INPUT_POLICY, ...deps.inputs },
    leaseMargin: deps.leaseMarginSeconds ?? 10,
    updates: new VersionedUpdates<BatchJob>({
      read: async (id) => {
        const job = await deps.store.read(id);
        return job?.kind === 'batch' ? job : undefined;
      },
      replace: (job, version) => deps.store.replace(job, version),
    }),
    log: (level, message, data) => deps.log?.(level, message, data),
  };
}

/**
 * Applies one transition (`transitions.ts`) to the batch as stored, again on conflict. Answers the
 * job as written, or as it stands when the transition found nothing to do (`changed: false`).
 */
export function transition(
  ctx: BatchContext,
  id: string,
  change: (job: BatchJob, now: Date) => BatchJob | undefined,
): Promise<{ job: BatchJob; changed: boolean }> {
  return ctx.updates.apply<{ job: BatchJob; changed: boolean }>(id, (current) => {
    const write = change(current, ctx.deps.clock.now());
    return write ? { write, value: { job: write, changed: true } } : { value: { job: current, changed: false } };
  });
}

/** Sends the step that plans or finalizes batch `jobId`. */
export function sendStep(ctx: BatchContext, jobId: string, step: 'plan' | 'finalize'): Promise<void> {
  return ctx.deps.queue.send([{ jobId, step }]);
}

export async function getBatch(ctx: BatchContext, id: string): Promise<BatchJob> {
  const job = await ctx.deps.store.read(id);
  if (!job) throw new NotFoundError(`No job ${id}`);
  if (job.kind !== 'batch') throw new InvalidStateError(`Job ${id} is not a batch`);
  return job;
}

/** A batch `caller` may see; a foreign one is a missing one. */
export async function readBatch(ctx: BatchContext, id: string, caller: Caller): Promise<BatchJob> {
  const job = visibleTo(caller, id, await ctx.deps.store.read(id));
  if (job.kind !== 'batch') throw new InvalidStateError(`Job ${id} is not a batch`);
  return job;
}

/** A step or chunk whose job is not there (yet): held while young, dropped when old. */
export function unborn(ctx: BatchContext, jobId: string, sentAt: number | undefined, what: string): BatchVerdict {
  const verdict = unbornVerdict(ctx.deps.clock, sentAt);
  if (verdict.kind === 'done') ctx.log('warn', `${what} message for an unknown or unreleased batch dropped`, { jobId });
  return verdict;
}

/** A name no other attempt picks: what makes an object key unique to the write that made it. */
export function token(): string {
  return randomBytes(6).toString('base64url');
}
