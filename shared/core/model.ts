/**
 * The domain's vocabulary, exactly as API.md names it. No AWS imports here or anywhere in core.
 */

export const JOB_STATUSES = ['HELD', 'PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'ABORTED'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export const TASK_STATUSES = ['PENDING', 'QUEUED', 'RUNNING', 'RETRYING', 'SUCCEEDED', 'FAILED', 'ABORTED'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export type Terminal = 'SUCCEEDED' | 'FAILED' | 'ABORTED';

export function isTerminal(status: JobStatus | TaskStatus): status is Terminal {
  return status === 'SUCCEEDED' || status === 'FAILED' || status === 'ABORTED';
}

/**
 * Done changing for someone waiting on it (a long poll): terminal, and for a batch, its outputs
 * assembled, since a batch ends before its files are.
 */
export function settled(job: { status: JobStatus; kind: string; batch?: { outputs?: unknown } }): boolean {
  return isTerminal(job.status) && (job.kind !== 'batch' || job.batch?.outputs !== undefined);
}

export type Strategy = 'sequential' | 'concurrent';

export const ERROR_KINDS = ['error', 'crash', 'timeout', 'poison', 'aborted'] as const;
export type ErrorKind = (typeof ERROR_KINDS)[number];

export interface TaskError {
  kind: ErrorKind;
  code?: string;
  message: string;
}

/** A result or error that arrived after its task had moved on (stale attempt, abort): kept, not applied. */
export interface LateOutcome {
  attempt: number;
  at: string;
  status: 'ok' | 'error';
  error?: TaskError;
}

/** One attempt of a task that ended: how long it ran and how it went (no error: it succeeded). */
export interface AttemptRecord {
  attempt: number;
  startedAt: string;
  endedAt: string;
  error?: TaskError;
  /** For an attempt that was retried: how long after it ended the next one was due. */
  retryDelaySeconds?: number;
}

export interface Task {
  id: string;
  index: number;
  name?: string;
  processor: string;
  status: TaskStatus;
  /** Attempts started so far; attempt n is the n-th start. Fences stale workers. */
  attempts: number;
  input: unknown;
  result?: unknown;
  /**
   * Where an input or result too large for the job item lives (claim-check). Only the store sets
   * these, in attributes of their own: a user value, whatever its shape, is always just a value.
   */
  inputRef?: string;
  resultRef?: string;
  error?: TaskError;
  queuedAt?: string;
  startedAt?: string;
  endedAt?: string;
  /**
   * SQS message id holding the current attempt's lease, when that lease lapses, and when the
   * attempt began (`since`, absent on leases written before it was kept).
   */
  lease?: { messageId: string; until: string; since?: string };
  /**
   * The ticket of the one message that may start this task's next attempt: it rides in the message
   * body. Any other message for the task (a replayed submit's, a stray copy's) is a duplicate and
   * runs nothing, even while an attempt's start is not written yet. Absent on older tasks.
   */
  ticket?: string;
  /**
   * Attempts that ended, oldest first, the last MAX_ATTEMPT_RECORDS of them. Empty (absent) for a
   * task that ended on its first attempt: that attempt is the task's own startedAt/endedAt/error.
   */
  tries?: AttemptRecord[];
  /** When a RETRYING task is due again. */
  retryAt?: string;
  late?: LateOutcome[];
  /** Entries the processor added to the job's log through its replies (bounded). */
  log?: LogEntry[];
}

export interface LogEntry {
  at: string;
  level: 'info' | 'warn' | 'error';
  message: string;
  data?: Record<string, unknown>;
}

export interface Job {
  id: string;
  /** Who submitted it (see owners.ts): the only caller, besides an admin, who may see or change it. */
  owner: string;
  type: string;
  name?: string;
  meta?: Record<string, unknown>;
  kind: 'tasks';
  strategy: Strategy;
  failFast: boolean;
  status: JobStatus;
  createdAt: string;
  updatedAt: string;
  startedAt?: string;
  endedAt?: string;
  tasks: Task[];
  /** Idempotency: the key the job was made under (scoped to its owner) and a hash of the request. */
  idempotencyKey?: string;
  requestHash: string;
  /** Bumped by every write: the optimistic lock each transition is conditioned on. */
  version: number;
}

/** Who makes a new job, under which id and request (and the idempotency key, if the caller chose one). */
export interface JobIdentity {
  id: string;
  owner: string;
  requestHash: string;
  idempotencyKey?: string;
}

/** The fields a new job of either kind starts with: who made it, what it is called, its first version. */
export function newJobFields(
  request: { type: string; name?: string; meta?: Record<string, unknown> },
  who: JobIdentity,
  now: Date,
) {
  const at = now.toISOString();
  return {
    id: who.id,
    owner: who.owner,
    type: request.type,
    ...(request.name !== undefined ? { name: request.name } : {}),
    ...(request.meta !== undefined ? { meta: request.meta } : {}),
    createdAt: at,
    updatedAt: at,
    requestHash: who.requestHash,
    ...(who.idempotencyKey !== undefined ? { idempotencyKey: who.idempotencyKey } : {}),
    version: 1,
  };
}

/** One attempt as the job view shows it (API: `tasks[].attemptLog`). */
export interface AttemptView {
  attempt: number;
  startedAt: string | null;
  endedAt: string | null;
  /** `retried`: failed and retried; `lost`: never reported back within its lease. */
  outcome: 'running' | 'succeeded' | 'failed' | 'retried' | 'lost' | 'aborted';
  error: TaskError | null;
  retryDelaySeconds: number | null;
}

/**
 * Every attempt of a task, oldest first: its records, and the attempt the task's own fields
 * describe when it has none (a task done at its first attempt stores none; a running or aborted
 * one has none yet). `dropped`: earlier attempts no longer kept.
 */
export function attemptLog(task: Task): { attempts: AttemptView[]; dropped: number } {
  const tries = task.tries ?? [];
  const last = tries.at(-1);
  const attempts: AttemptView[] = tries.map((record) => ({
    attempt: record.attempt,
    startedAt: record.startedAt,
    endedAt: record.endedAt,
    outcome: !record.error
      ? 'succeeded'
      : record.retryDelaySeconds !== undefined
        ? 'retried'
        : record === last && task.status === 'FAILED'
          ? 'failed'
          : 'lost',
    error: record.error ?? null,
    retryDelaySeconds: record.retryDelaySeconds ?? null,
  }));
  if (task.attempts > 0 && (last?.attempt ?? 0) < task.attempts) {
    const outcome =
      task.status === 'RUNNING'
        ? 'running'
        : task.status === 'SUCCEEDED'
          ? 'succeeded'
          : task.status === 'FAILED'
            ? 'failed'
            : task.status === 'ABORTED'
              ? 'aborted'
              : undefined;
    if (outcome) {
      attempts.push({
        attempt: task.attempts,
        startedAt: task.lease?.since ?? (tries.length ? null : (task.startedAt ?? null)),
        endedAt: task.status === 'RUNNING' ? null : (task.endedAt ?? null),
        outcome,
        error: outcome === 'failed' ? (task.error ?? null) : null,
        retryDelaySeconds: null,
      });
    }
  }
  return { attempts, dropped: tries.length ? (tries[0] as AttemptRecord).attempt - 1 : 0 };
}

export interface Counts {
  total: number;
  pending: number;
  running: number;
  succeeded: number;
  failed: number;
  aborted: number;
}

/** Counts as API.md shows them: queued and retrying tasks count as pending. */
export function countTasks(tasks: readonly Task[]): Counts {
  const counts: Counts = { total: tasks.length, pending: 0, running: 0, succeeded: 0, failed: 0, aborted: 0 };
  for (const task of tasks) {
    switch (task.status) {
      case 'SUCCEEDED':
        counts.succeeded++;
        break;
      case 'FAILED':
        counts.failed++;
        break;
      case 'ABORTED':
        counts.aborted++;
        break;
      case 'RUNNING':
        counts.running++;
        break;
      default:
        counts.pending++;
    }
  }
  return counts;
}

export function progress(counts: Counts): number {
  if (counts.total === 0) return 0;
  return Math.round(((counts.succeeded + counts.failed + counts.aborted) / counts.total) * 100) / 100;
}
