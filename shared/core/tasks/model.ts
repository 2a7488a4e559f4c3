import type { Job, Strategy, Task, TaskError } from '../model.js';
import type { Clock, JobStore, PayloadStore, ProcessorInvoker, WorkQueue } from '../ports.js';

export type { AttemptOutcome, OutcomeLog } from '../ports.js';

import type { ProcessorRegistry } from '../processors.js';
import { nextVersion } from '../versioned-update.js';

/**
 * The vocabulary of the task transitions: what a transition returns, what a delivery and an
 * attempt's outcome are, the bounds that keep a job's item small, and the two rules every
 * transition leans on (the ticket; the copy-and-bump).
 */

/** What the caller must do after writing the next job: send these tasks' messages. */
export interface Transition {
  job: Job;
  enqueue: number[];
}

export type NewTask = { name?: string; processor: string; input?: unknown };

export interface NewJob {
  type: string;
  name?: string;
  meta?: Record<string, unknown>;
  strategy: Strategy;
  failFast: boolean;
  tasks: NewTask[];
}

/** Default lease margin past the processor's timeout before a silent attempt counts as lost. */
export const DEFAULT_LEASE_MARGIN_SECONDS = 10;

/** Late outcomes kept per task: enough to see what happened, bounded so the item stays small. */
export const MAX_LATE_OUTCOMES = 5;

/** Error messages are kept to this many characters: a job item must stay within DynamoDB's 400 KB. */
export const MAX_ERROR_MESSAGE = 1024;

/** Attempt records kept per task (the most recent), and the length of their error messages. */
export const MAX_ATTEMPT_RECORDS = 20;
export const MAX_RECORD_MESSAGE = 256;

/** One delivery of a task's message: its id (the lease), when it was sent (epoch ms), its ticket. */
export interface Delivery {
  messageId: string;
  sentAt?: number;
  ticket?: string;
}

/** Entries kept per task: the most recent ones. */
export const MAX_TASK_LOG = 20;

export type CompleteResult =
  | ({ applied: true; retryDelaySeconds?: number } & Transition)
  /**
   * The attempt was stale or the job had moved on: the outcome is only kept as history.
   * `superseded`: a newer attempt holds the task (and so the message).
   */
  | { applied: false; job: Job | undefined; reason: string; superseded: boolean };

/**
 * Whether a delivery's message is the one its task waits for: the one to carry its next attempt.
 * Tasks from before tickets existed take any message.
 */
export function holdsTicket(task: Task, delivery: { ticket?: string }): boolean {
  return task.ticket === undefined || task.ticket === delivery.ticket;
}

export function bounded(error: TaskError, limit = MAX_ERROR_MESSAGE): TaskError {
  return error.message.length > limit ? { ...error, message: `${error.message.slice(0, limit - 1)}…` } : error;
}

export const next = nextVersion<Job>;

/** What the task engine runs on: the ports, the processors, and its two timing settings. */
export interface TaskEngineDeps {
  store: JobStore;
  queue: WorkQueue;
  invoker: Pick<ProcessorInvoker, 'invoke'>;
  payloads: PayloadStore;
  processors: ProcessorRegistry;
  clock: Clock;
  /** Seconds past a processor's timeout before its attempt counts as lost (default 10). */
  leaseMarginSeconds?: number;
  /** A task still running after this long gets its start written (default 1000 ms). */
  recordStartAfterMs?: number;
  log?: (level: 'info' | 'warn' | 'error', message: string, data?: Record<string, unknown>) => void;
}
