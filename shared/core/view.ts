import type { RowOutcome } from './batches/model.js';
import { attemptLog, countTasks, type Job, progress } from './model.js';
import type { Caller } from './owners.js';
import { type PayloadStore, taskResult } from './ports.js';
import type { RowView, TaskJobSummary, TaskJobView, TaskSummaryView } from './responses.js';

/**
 * The job as API.md shows it (its schema: responses.ts). Internal fields (version, request hash, leases) stay inside; large
 * values come back from S3 so callers never see a reference. `history` lists outcomes that arrived
 * too late to count (a stale attempt, or after an abort); `attemptLog` every attempt and how it
 * went (the last MAX_ATTEMPT_RECORDS; `attemptsDropped` counts the earlier ones).
 */
export async function toJobView(job: Job, payloads: PayloadStore): Promise<TaskJobView> {
  return {
    ...toJobSummary(job),
    tasks: await Promise.all(
      job.tasks.map(async (task) => ({
        id: task.id,
        index: task.index,
        name: task.name ?? null,
        processor: task.processor,
        status: task.status,
        attempts: task.attempts,
        result: await taskResult(payloads, job.id, task),
        error: task.error ?? null,
        queuedAt: task.queuedAt ?? null,
        startedAt: task.startedAt ?? null,
        endedAt: task.endedAt ?? null,
        ...(task.retryAt ? { retryAt: task.retryAt } : {}),
        history: task.late ?? [],
        ...(({ attempts, dropped }) => ({ attemptLog: attempts, attemptsDropped: dropped }))(attemptLog(task)),
      })),
    ),
  };
}

export type JobView = Awaited<ReturnType<typeof toJobView>>;

/** What every job's view begins with, whatever its kind: what the job is, and whose. */
export function jobHeading<K extends string>(job: {
  id: string;
  owner: string;
  type: string;
  name?: string;
  meta?: Record<string, unknown>;
  kind: K;
}) {
  return { id: job.id, owner: job.owner, type: job.type, name: job.name ?? null, meta: job.meta ?? {}, kind: job.kind };
}

/** A job of tasks as search results show it: everything but the tasks (and so no payload reads). */
export function toJobSummary(job: Job): TaskJobSummary {
  const counts = countTasks(job.tasks);
  return {
    ...jobHeading(job),
    strategy: job.strategy,
    failFast: job.failFast,
    status: job.status,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    startedAt: job.startedAt ?? null,
    endedAt: job.endedAt ?? null,
    counts,
    progress: progress(counts),
    ...(job.idempotencyKey !== undefined ? { idempotencyKey: job.idempotencyKey } : {}),
  };
}

/** A task as task search shows it: where it belongs and how it went, without its input or result. */
export function toTaskSummary(jobId: string, jobType: string, task: Job['tasks'][number]): TaskSummaryView {
  return {
    id: task.id,
    jobId,
    jobType,
    index: task.index,
    name: task.name ?? null,
    processor: task.processor,
    status: task.status,
    attempts: task.attempts,
    error: task.error ?? null,
    queuedAt: task.queuedAt ?? null,
    startedAt: task.startedAt ?? null,
    endedAt: task.endedAt ?? null,
  };
}

/**
 * A view as `caller` may see it: the idempotency key is its owner's alone (an admin reading another
 * owner's job does not get it), since knowing a key is what a replay needs.
 */
export function shownTo<V extends { owner: string; idempotencyKey?: string }>(caller: Caller, view: V): V {
  if (view.owner === caller.owner || view.idempotencyKey === undefined) return view;
  const { idempotencyKey: _, ...rest } = view;
  return rest as V;
}

/** A batch row's outcome as `GET /v1/jobs/{id}/rows` shows it: every field there, `null` or empty when unset. */
export function toRowView({ line, status, result, messages, error, outputs }: RowOutcome): RowView {
  return {
    line,
    status,
    result: result ?? null,
    messages: messages ?? [],
    error: error ?? null,
    ...(outputs ? { outputs } : {}),
  };
}
