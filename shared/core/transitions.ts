import { backoffDelay } from './backoff.js';
import { InvalidStateError } from './errors.js';
import { isTerminal, type Job, type Strategy, type Task, type TaskError } from './model.js';
import type { Processor } from './processors.js';

/**
 * Every state change of a job is one pure function here: (job, event) → next job + what to do
 * next. The store writes `next` with one conditional write on `version`, so each transition is
 * atomic; a conflict means "re-read and apply again". Terminal states are final: no function here
 * ever changes a terminal job or task.
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

function bounded(error: TaskError): TaskError {
  return error.message.length > MAX_ERROR_MESSAGE
    ? { ...error, message: `${error.message.slice(0, MAX_ERROR_MESSAGE - 1)}…` }
    : error;
}

function next(job: Job, now: Date): Job {
  const copy = structuredClone(job);
  copy.version = job.version + 1;
  copy.updatedAt = now.toISOString();
  return copy;
}

function seconds(now: Date, s: number): string {
  return new Date(now.getTime() + s * 1000).toISOString();
}

export function createJob(
  request: NewJob,
  ids: { jobId: string; taskIds: string[] },
  now: Date,
  identity: { owner: string; requestHash: string; idempotencyKey?: string },
): Transition {
  const at = now.toISOString();
  const queuedAll = request.strategy === 'concurrent';
  const tasks: Task[] = request.tasks.map((task, index) => {
    const queued = queuedAll || index === 0;
    return {
      id: ids.taskIds[index] as string,
      index,
      ...(task.name !== undefined ? { name: task.name } : {}),
      processor: task.processor,
      status: queued ? 'QUEUED' : 'PENDING',
      attempts: 0,
      input: task.input ?? null,
      ...(queued ? { queuedAt: at } : {}),
    };
  });
  const job: Job = {
    id: ids.jobId,
    owner: identity.owner,
    type: request.type,
    ...(request.name !== undefined ? { name: request.name } : {}),
    ...(request.meta !== undefined ? { meta: request.meta } : {}),
    kind: 'tasks',
    strategy: request.strategy,
    failFast: request.failFast,
    status: 'PENDING',
    createdAt: at,
    updatedAt: at,
    tasks,
    requestHash: identity.requestHash,
    ...(identity.idempotencyKey !== undefined ? { idempotencyKey: identity.idempotencyKey } : {}),
    version: 1,
  };
  return { job, enqueue: tasks.filter((t) => t.status === 'QUEUED').map((t) => t.index) };
}

/** One delivery of a task's message: its id (the lease) and when it was sent (epoch ms). */
export interface Delivery {
  messageId: string;
  sentAt?: number;
}

export type StartDecision =
  /** Run attempt `attempt` after writing `job`. */
  | { action: 'run'; job: Job; attempt: number }
  /** Not yet: keep the message and let it come back in `delaySeconds` (a live lease, a backoff). */
  | { action: 'hold'; delaySeconds: number; reason: string }
  /** Write `job` (the task failed for good without running) and send `enqueue`. */
  | ({ action: 'settle' } & Transition)
  /** Nothing to run; resend successors' messages that a crash may have lost. */
  | { action: 'drop'; reason: string; enqueue: number[] };

/**
 * A task's message arrived. Decides whether this delivery runs a new attempt. The message is the
 * lease: once a RUNNING task's lease has lapsed (its worker died or hung), the next delivery starts
 * a new attempt, which fences the old one. While the lease is live, a second copy of the lease's
 * own message is held until the lease ends (deleting it would drop the lease), and any other
 * message is a duplicate and is dropped. A RETRYING task's message that comes back early is held
 * until its backoff is over.
 */
export function startAttempt(
  job: Job,
  index: number,
  delivery: Delivery,
  processor: Processor,
  now: Date,
  leaseMarginSeconds = DEFAULT_LEASE_MARGIN_SECONDS,
): StartDecision {
  const task = job.tasks[index];
  if (!task) return { action: 'drop', reason: 'no such task', enqueue: [] };
  if (isTerminal(job.status)) return { action: 'drop', reason: `job ${job.status}`, enqueue: [] };
  if (isTerminal(task.status)) {
    return { action: 'drop', reason: `task ${task.status}`, enqueue: successorsToResend(job, index) };
  }
  if (task.status === 'PENDING') return { action: 'drop', reason: 'task not yet due', enqueue: [] };
  if (task.status === 'RUNNING' && task.lease) {
    const remainingMs = Date.parse(task.lease.until) - now.getTime();
    if (remainingMs > 0) {
      if (task.lease.messageId !== delivery.messageId) {
        return { action: 'drop', reason: 'duplicate of a live attempt', enqueue: [] };
      }
      return { action: 'hold', delaySeconds: Math.ceil(remainingMs / 1000), reason: 'lease still live' };
    }
  }
  if (task.status === 'RETRYING' && task.retryAt) {
    const remainingMs = Date.parse(task.retryAt) - now.getTime();
    if (remainingMs > 0) return { action: 'hold', delaySeconds: Math.ceil(remainingMs / 1000), reason: 'backoff' };
  }
  if (task.attempts >= processor.maxAttempts) {
    // The last attempt never reported back (worker died or timed out): that is final.
    const kind = task.status === 'RUNNING' ? 'timeout' : (task.error?.kind ?? 'crash');
    const message =
      task.status === 'RUNNING'
        ? `attempt ${task.attempts} did not report back within its lease`
        : (task.error?.message ?? 'attempts exhausted');
    return { action: 'settle', ...finishTask(job, index, 'FAILED', now, { error: { kind, message } }) };
  }
  const updated = next(job, now);
  const running = updated.tasks[index] as Task;
  running.status = 'RUNNING';
  running.attempts += 1;
  running.startedAt ??= now.toISOString();
  running.lease = {
    messageId: delivery.messageId,
    until: seconds(now, processor.timeoutSeconds + leaseMarginSeconds),
  };
  delete running.retryAt;
  if (updated.status === 'PENDING') {
    updated.status = 'RUNNING';
    updated.startedAt = now.toISOString();
  }
  return { action: 'run', job: updated, attempt: running.attempts };
}

/** In a sequential job, the task after a succeeded one is QUEUED; its message may have been lost. */
function successorsToResend(job: Job, index: number): number[] {
  if (job.strategy !== 'sequential') return [];
  const successor = job.tasks[index + 1];
  return job.tasks[index]?.status === 'SUCCEEDED' && successor?.status === 'QUEUED' ? [successor.index] : [];
}

/** A processor's own log entries, as it sent them with its reply. */
export type OutcomeLog = { level: 'info' | 'warn' | 'error'; message: string; data?: Record<string, unknown> }[];

export type AttemptOutcome =
  | { status: 'ok'; result: unknown; log?: OutcomeLog }
  | { status: 'error'; error: TaskError; retryable: boolean; log?: OutcomeLog };

/** Entries kept per task: the most recent ones. */
export const MAX_TASK_LOG = 20;

function appendLog(task: Task, log: OutcomeLog | undefined, now: Date): void {
  if (!log?.length) return;
  const at = now.toISOString();
  task.log = [...(task.log ?? []), ...log.map((entry) => ({ at, ...entry }))].slice(-MAX_TASK_LOG);
}

export type CompleteResult =
  | ({ applied: true; retryDelaySeconds?: number } & Transition)
  /**
   * The attempt was stale or the job had moved on: the outcome is only kept as history.
   * `superseded`: a newer attempt holds the task (and so the message).
   */
  | { applied: false; job: Job | undefined; reason: string; superseded: boolean };

/**
 * Attempt `attempt` of a task reported back. Only the attempt that holds the task may change it;
 * anything else is recorded as a late outcome (or ignored when there is nothing to record on).
 */
export function completeAttempt(
  job: Job,
  index: number,
  attempt: number,
  outcome: AttemptOutcome,
  processor: Processor,
  now: Date,
  random: () => number = Math.random,
  messageId?: string,
): CompleteResult {
  const task = job.tasks[index];
  if (!task) return { applied: false, job: undefined, reason: 'no such task', superseded: false };
  // The attempt holding the task is named by its number and, where known, by its lease's message:
  // two deliveries that never wrote their start could otherwise share a number.
  const otherLease = messageId !== undefined && task.lease !== undefined && task.lease.messageId !== messageId;
  if (isTerminal(job.status) || task.status !== 'RUNNING' || task.attempts !== attempt || otherLease) {
    const superseded = task.attempts !== attempt || otherLease;
    if ((task.late?.length ?? 0) >= MAX_LATE_OUTCOMES || task.late?.some((l) => l.attempt === attempt)) {
      return { applied: false, job: undefined, reason: 'stale attempt (already recorded)', superseded };
    }
    const updated = next(job, now);
    const late = updated.tasks[index] as Task;
    late.late = [
      ...(late.late ?? []),
      {
        attempt,
        at: now.toISOString(),
        status: outcome.status,
        ...(outcome.status === 'error' ? { error: bounded(outcome.error) } : {}),
      },
    ];
    return {
      applied: false,
      job: updated,
      reason: `stale attempt ${attempt} (task ${task.status}, attempt ${task.attempts})`,
      superseded,
    };
  }
  if (outcome.status === 'ok') {
    const done = finishTask(job, index, 'SUCCEEDED', now, { result: outcome.result });
    appendLog(done.job.tasks[index] as Task, outcome.log, now);
    return { applied: true, ...done };
  }
  const retry = outcome.retryable && attempt < processor.maxAttempts;
  if (!retry) {
    const done = finishTask(job, index, 'FAILED', now, { error: outcome.error });
    appendLog(done.job.tasks[index] as Task, outcome.log, now);
    return { applied: true, ...done };
  }
  const delay = backoffDelay(processor.backoff, attempt, random);
  const updated = next(job, now);
  const retrying = updated.tasks[index] as Task;
  retrying.status = 'RETRYING';
  retrying.error = bounded(outcome.error);
  retrying.retryAt = seconds(now, delay);
  delete retrying.lease;
  appendLog(retrying, outcome.log, now);
  return { applied: true, job: updated, enqueue: [], retryDelaySeconds: delay };
}

/** Ends a task and lets the job's strategy decide what follows. */
function finishTask(
  job: Job,
  index: number,
  status: 'SUCCEEDED' | 'FAILED',
  now: Date,
  outcome: { result?: unknown; error?: TaskError },
): Transition {
  const updated = next(job, now);
  const at = now.toISOString();
  const task = updated.tasks[index] as Task;
  task.status = status;
  task.endedAt = at;
  delete task.lease;
  delete task.retryAt;
  if (status === 'SUCCEEDED') {
    task.result = outcome.result ?? null;
    delete task.resultRef;
    delete task.error;
  } else {
    task.error = bounded(outcome.error as TaskError);
  }
  const enqueue = advance(updated, index, now);
  return { job: updated, enqueue };
}

/** The strategies: what a task's end means for the rest of the job. Mutates `job` (a fresh copy). */
function advance(job: Job, index: number, now: Date): number[] {
  const at = now.toISOString();
  const task = job.tasks[index] as Task;
  if (job.strategy === 'sequential') {
    if (task.status === 'SUCCEEDED') {
      const successor = job.tasks[index + 1];
      if (successor) {
        successor.status = 'QUEUED';
        successor.queuedAt = at;
        return [successor.index];
      }
      endJob(job, 'SUCCEEDED', at);
      return [];
    }
    abortUnfinished(job, at, 'an earlier task failed');
    endJob(job, 'FAILED', at);
    return [];
  }
  if (task.status === 'FAILED' && job.failFast) {
    abortUnfinished(job, at, 'another task failed (failFast)');
    endJob(job, 'FAILED', at);
    return [];
  }
  if (job.tasks.every((t) => isTerminal(t.status))) {
    endJob(job, job.tasks.every((t) => t.status === 'SUCCEEDED') ? 'SUCCEEDED' : 'FAILED', at);
  }
  return [];
}

function abortUnfinished(job: Job, at: string, message: string): void {
  for (const other of job.tasks) {
    if (isTerminal(other.status)) continue;
    other.status = 'ABORTED';
    other.endedAt = at;
    other.error = { kind: 'aborted', message };
    delete other.lease;
    delete other.retryAt;
  }
}

function endJob(job: Job, status: 'SUCCEEDED' | 'FAILED' | 'ABORTED', at: string): void {
  job.status = status;
  job.endedAt = at;
  job.startedAt ??= at;
}

/**
 * Abort: every unfinished task ends ABORTED and the job ABORTED, in one write. Idempotent on an
 * aborted job (returns `changed: false`); refused on a job that already succeeded or failed.
 */
export function abortJob(job: Job, now: Date): { job: Job; changed: boolean } {
  if (job.status === 'ABORTED') return { job, changed: false };
  if (isTerminal(job.status)) {
    throw new InvalidStateError(`Job ${job.id} is ${job.status}; only unfinished jobs can be aborted`);
  }
  const updated = next(job, now);
  const at = now.toISOString();
  abortUnfinished(updated, at, 'job aborted');
  endJob(updated, 'ABORTED', at);
  return { job: updated, changed: true };
}

/**
 * The dead-letter consumer's verdict: a task whose message kept failing ends FAILED (`poison`) and
 * the strategy advances, so no job waits forever. A no-op for anything already final, and for a
 * stray copy: while another message holds a live lease on the task, that attempt decides.
 */
export function poisonTask(
  job: Job,
  index: number,
  now: Date,
  reason: string,
  messageId?: string,
): Transition | undefined {
  const task = job.tasks[index];
  // A PENDING task has no message yet, so a dead letter cannot be about it.
  if (!task || isTerminal(job.status) || isTerminal(task.status) || task.status === 'PENDING') return undefined;
  const liveLease = task.lease && Date.parse(task.lease.until) > now.getTime();
  if (task.status === 'RUNNING' && liveLease && messageId !== undefined && task.lease?.messageId !== messageId) {
    return undefined;
  }
  return failTask(job, index, now, { kind: 'poison', message: reason });
}

/** A task that cannot run at all (its processor is not registered where it runs) fails for good. */
export function failTask(job: Job, index: number, now: Date, error: TaskError): Transition | undefined {
  const task = job.tasks[index];
  if (!task || isTerminal(job.status) || isTerminal(task.status)) return undefined;
  return finishTask(job, index, 'FAILED', now, { error });
}

/**
 * Tasks whose message should exist but, by the clock, must have been lost: queued, retrying or
 * leased long past the moment their message was due back. Re-sending is always safe (a duplicate
 * is dropped on receipt), so the sweeper errs on the side of sending.
 */
export function strandedTasks(job: Job, now: Date, graceSeconds: number): number[] {
  if (isTerminal(job.status)) return [];
  const due = (iso: string | undefined) => iso !== undefined && Date.parse(iso) + graceSeconds * 1000 < now.getTime();
  return job.tasks
    .filter(
      (task) =>
        (task.status === 'QUEUED' && due(task.queuedAt)) ||
        (task.status === 'RETRYING' && due(task.retryAt)) ||
        (task.status === 'RUNNING' && due(task.lease?.until)),
    )
    .map((task) => task.index);
}

/**
 * The fast path: an attempt that finished before its start was ever written (most tasks answer
 * well within a second, and writing RUNNING for them would cost a write, a read and a visibility
 * change). Its start is applied now, as of when it began, and its outcome at once, on the job as
 * it is now: if the task is no longer this delivery's to run, the outcome is only kept as history.
 * An attempt whose worker died before writing its start leaves no trace, so it is not counted;
 * the queue's redrive bounds how often that can happen.
 */
export function completeUnrecorded(
  job: Job,
  index: number,
  delivery: Delivery,
  outcome: AttemptOutcome,
  processor: Processor,
  startedAt: Date,
  now: Date,
  leaseMarginSeconds = DEFAULT_LEASE_MARGIN_SECONDS,
  random: () => number = Math.random,
): CompleteResult & { attempt?: number } {
  const start = startAttempt(job, index, delivery, processor, startedAt, leaseMarginSeconds);
  if (start.action === 'run') {
    const result = completeAttempt(
      start.job,
      index,
      start.attempt,
      outcome,
      processor,
      now,
      random,
      delivery.messageId,
    );
    // One write for both steps: the version the caller read is what it is conditioned on.
    if (result.job) result.job.version = job.version + 1;
    return { ...result, attempt: start.attempt };
  }
  const task = job.tasks[index];
  if (!task) return { applied: false, job: undefined, reason: 'no such task', superseded: false };
  // Not ours any more: record as a late outcome of the attempt it would have been.
  return completeAttempt(job, index, task.attempts + 1, outcome, processor, now, random, delivery.messageId);
}

/**
 * After a restart that lost every message and every worker (the local queues keep nothing): each
 * unfinished task is resumed now. A live lease means nothing once its worker is gone, so it is
 * lapsed — the re-sent message then starts attempt n+1, which fences n should it ever report.
 * Returns the tasks to send again (and how long a retrying one still waits), and the job to write
 * when a lease had to be lapsed.
 */
export function resumeAfterRestart(
  job: Job,
  now: Date,
): { job?: Job; send: { index: number; delaySeconds: number }[] } {
  if (isTerminal(job.status)) return { send: [] };
  const live = job.tasks.filter(
    (task) => task.status === 'RUNNING' && task.lease && Date.parse(task.lease.until) > now.getTime(),
  );
  const written = live.length > 0 ? next(job, now) : undefined;
  for (const task of live) {
    const lease = (written as Job).tasks[task.index]!.lease!;
    lease.until = now.toISOString();
  }
  const send = job.tasks
    .filter((task) => task.status === 'QUEUED' || task.status === 'RETRYING' || task.status === 'RUNNING')
    .map((task) => ({
      index: task.index,
      delaySeconds:
        task.status === 'RETRYING' && task.retryAt
          ? Math.max(0, Math.ceil((Date.parse(task.retryAt) - now.getTime()) / 1000))
          : 0,
    }));
  return { ...(written ? { job: written } : {}), send };
}
