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

export type Strategy = 'sequential' | 'concurrent';

export type ErrorKind = 'error' | 'crash' | 'timeout' | 'poison' | 'aborted';

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
  /** SQS message id holding the current attempt's lease, and when that lease lapses. */
  lease?: { messageId: string; until: string };
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
