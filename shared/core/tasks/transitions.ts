import { backoffDelay } from '../backoff.js';
import { InvalidStateError } from '../errors.js';
import { newTicket } from '../ids.js';
import {
  type AttemptRecord,
  isTerminal,
  type Job,
  newJobFields,
  type Strategy,
  type Task,
  type TaskError,
} from '../model.js';
import type { Processor } from '../processors.js';
import { nextVersion } from '../versioned-update.js';

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

/** Attempt records kept per task (the most recent), and the length of their error messages. */
export const MAX_ATTEMPT_RECORDS = 20;
export const MAX_RECORD_MESSAGE = 256;

function bounded(error: TaskError, limit = MAX_ERROR_MESSAGE): TaskError {
  return error.message.length > limit ? { ...error, message: `${error.message.slice(0, limit - 1)}…` } : error;
}

/**
 * Records an attempt that ended. A task that ends on its first attempt records nothing (that
 * attempt is the task's own times and error), so the common job's item does not grow; once a task
 * has a record, every later attempt gets one too, its last included.
 */
function recordAttempt(task: Task, record: AttemptRecord, final: boolean): void {
  if (final && !task.tries?.length && record.attempt <= 1) return;
  const kept: AttemptRecord = {
    ...record,
    ...(record.error ? { error: bounded(record.error, MAX_RECORD_MESSAGE) } : {}),
  };
  task.tries = [...(task.tries ?? []), kept].slice(-MAX_ATTEMPT_RECORDS);
}

/** When the task's current attempt began. */
function attemptStart(task: Task, fallback: Date): string {
  return task.lease?.since ?? task.startedAt ?? fallback.toISOString();
}

/**
 * Whether a delivery's message is the one its task waits for: the one to carry its next attempt.
 * Tasks from before tickets existed take any message.
 */
export function holdsTicket(task: Task, delivery: { ticket?: string }): boolean {
  return task.ticket === undefined || task.ticket === delivery.ticket;
}

const next = nextVersion<Job>;

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
      ...(queued ? { queuedAt: at, ticket: newTicket() } : {}),
    };
  });
  const job: Job = {
    ...newJobFields(request, { id: ids.jobId, ...identity }, now),
    kind: 'tasks',
    strategy: request.strategy,
    failFast: request.failFast,
    status: 'PENDING',
    tasks,
  };
  return { job, enqueue: tasks.filter((t) => t.status === 'QUEUED').map((t) => t.index) };
}

/** One delivery of a task's message: its id (the lease), when it was sent (epoch ms), its ticket. */
export interface Delivery {
  messageId: string;
  sentAt?: number;
  ticket?: string;
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
 *
 * Only the message holding the task's ticket may start an attempt: an attempt's start is written
 * only after its first second, so until then a second message would find nothing to stop it.
 * `began`: the attempt already began under the ticket (its start or outcome is being written now),
 * so the ticket is not asked for again. Should a resend have reissued it meanwhile, the resent
 * message carries what follows (a retry, the next attempt after a lapsed lease): it waits for
 * this attempt's lease, and this attempt's own message is done with once it reports.
 */
export function startAttempt(
  job: Job,
  index: number,
  delivery: Delivery,
  processor: Processor,
  now: Date,
  leaseMarginSeconds = DEFAULT_LEASE_MARGIN_SECONDS,
  began = false,
): StartDecision {
  const task = job.tasks[index];
  if (!task) return { action: 'drop', reason: 'no such task', enqueue: [] };
  if (isTerminal(job.status)) return { action: 'drop', reason: `job ${job.status}`, enqueue: [] };
  if (isTerminal(task.status)) {
    // Only the task's own message coming back suggests its successor's send was lost.
    const enqueue = holdsTicket(task, delivery) ? successorsToResend(job, index) : [];
    return { action: 'drop', reason: `task ${task.status}`, enqueue };
  }
  if (task.status === 'PENDING') return { action: 'drop', reason: 'task not yet due', enqueue: [] };
  if (!began && !holdsTicket(task, delivery)) {
    return { action: 'drop', reason: 'duplicate (not the message the task waits for)', enqueue: [] };
  }
  if (task.status === 'RUNNING' && task.lease) {
    const remainingMs = Date.parse(task.lease.until) - now.getTime();
    if (remainingMs > 0) {
      if (task.lease.messageId !== delivery.messageId) {
        // A resend's message (the ticket was reissued under a live attempt) waits for it to end.
        if (task.ticket !== undefined) {
          return { action: 'hold', delaySeconds: Math.ceil(remainingMs / 1000), reason: 'an earlier lease still live' };
        }
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
    const settled = finishTask(job, index, 'FAILED', now, { error: { kind, message } });
    if (task.status === 'RUNNING') recordAttempt(settled.job.tasks[index] as Task, lost(task, now), true);
    return { action: 'settle', ...settled };
  }
  const updated = next(job, now);
  const running = updated.tasks[index] as Task;
  // A lapsed lease: its attempt never reported back and counts as lost.
  if (task.status === 'RUNNING') recordAttempt(running, lost(task, now), false);
  running.status = 'RUNNING';
  running.attempts += 1;
  running.startedAt ??= now.toISOString();
  running.lease = {
    messageId: delivery.messageId,
    until: seconds(now, processor.timeoutSeconds + leaseMarginSeconds),
    since: now.toISOString(),
  };
  delete running.retryAt;
  if (updated.status === 'PENDING') {
    updated.status = 'RUNNING';
    updated.startedAt = now.toISOString();
  }
  return { action: 'run', job: updated, attempt: running.attempts };
}

/** The record of a RUNNING task's attempt whose lease lapsed without a report. */
function lost(task: Task, now: Date): AttemptRecord {
  const until = task.lease?.until ?? now.toISOString();
  return {
    attempt: task.attempts,
    startedAt: attemptStart(task, now),
    endedAt: until < now.toISOString() ? until : now.toISOString(),
    error: { kind: 'timeout', message: 'did not report back within its lease' },
  };
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
    return lateOutcome(job, index, attempt, outcome, now, task.attempts !== attempt || otherLease);
  }
  const record: AttemptRecord = { attempt, startedAt: attemptStart(task, now), endedAt: now.toISOString() };
  if (outcome.status === 'ok') {
    const done = finishTask(job, index, 'SUCCEEDED', now, { result: outcome.result });
    recordAttempt(done.job.tasks[index] as Task, record, true);
    appendLog(done.job.tasks[index] as Task, outcome.log, now);
    return { applied: true, ...done };
  }
  const retry = outcome.retryable && attempt < processor.maxAttempts;
  if (!retry) {
    const done = finishTask(job, index, 'FAILED', now, { error: outcome.error });
    recordAttempt(done.job.tasks[index] as Task, { ...record, error: outcome.error }, true);
    appendLog(done.job.tasks[index] as Task, outcome.log, now);
    return { applied: true, ...done };
  }
  const delay = backoffDelay(processor.backoff, attempt, random);
  const updated = next(job, now);
  const retrying = updated.tasks[index] as Task;
  recordAttempt(retrying, { ...record, error: outcome.error, retryDelaySeconds: delay }, false);
  retrying.status = 'RETRYING';
  retrying.error = bounded(outcome.error);
  retrying.retryAt = seconds(now, delay);
  delete retrying.lease;
  appendLog(retrying, outcome.log, now);
  return { applied: true, job: updated, enqueue: [], retryDelaySeconds: delay };
}

/** An outcome that no longer counts: kept as history (once per attempt, a few per task). */
function lateOutcome(
  job: Job,
  index: number,
  attempt: number,
  outcome: AttemptOutcome,
  now: Date,
  superseded: boolean,
): CompleteResult {
  const task = job.tasks[index] as Task;
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
        successor.ticket = newTicket();
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
  ticket?: string,
): Transition | undefined {
  const task = job.tasks[index];
  // A PENDING task has no message yet, so a dead letter cannot be about it.
  if (!task || isTerminal(job.status) || isTerminal(task.status) || task.status === 'PENDING') return undefined;
  // A duplicate's dead letter: the message the task waits for is still about and decides.
  if (ticket !== undefined && !holdsTicket(task, { ticket })) return undefined;
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
 * A resend (the sweeper's, or the repair of a send lost to a crash): the tasks get new tickets and
 * the caller sends their messages, so any earlier message of theirs still about is a duplicate
 * from now on. A RUNNING task keeps its ticket while its lease is live (its holder reports back).
 * The caller delays the new messages past an attempt's unwritten first second: an old message
 * that began just before still gets to write its start (and take its ticket back) first.
 */
export function reissueTickets(job: Job, indexes: readonly number[], now: Date): Transition | undefined {
  if (isTerminal(job.status)) return undefined;
  const due = indexes.filter((i) => {
    const task = job.tasks[i];
    if (!task || isTerminal(task.status) || task.status === 'PENDING') return false;
    return !(task.status === 'RUNNING' && task.lease && Date.parse(task.lease.until) > now.getTime());
  });
  if (due.length === 0) return undefined;
  const updated = next(job, now);
  for (const i of due) (updated.tasks[i] as Task).ticket = newTicket();
  return { job: updated, enqueue: due };
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
 * the queue's redrive bounds how often that can happen. `ranAs`: the attempt number the processor
 * was given, under which a late outcome is kept.
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
  ranAs?: number,
): CompleteResult & { attempt?: number } {
  const start = startAttempt(job, index, delivery, processor, startedAt, leaseMarginSeconds, true);
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
  // Not ours any more (say the job was aborted meanwhile): a late outcome of the attempt it ran as,
  // which did run, so the task counts it. Never applied: whatever lease the task has, this run
  // did not write it (even one under the same message id is another delivery's).
  const attempt = ranAs ?? task.attempts + 1;
  const late = lateOutcome(job, index, attempt, outcome, now, task.attempts !== attempt || task.lease !== undefined);
  const lateTask = late.job?.tasks[index];
  if (lateTask && lateTask.attempts < attempt) lateTask.attempts = attempt;
  return late;
}

/**
 * After a restart that lost every message and every worker (the local queues keep nothing): each
 * unfinished task is resumed now. A live lease means nothing once its worker is gone, so it is
 * lapsed — the re-sent message then starts attempt n+1, which fences n should it ever report — and
 * every unfinished task gets a new ticket for the message sent now. Returns the job to write and
 * the tasks to send (with how long a retrying one still waits).
 */
export function resumeAfterRestart(
  job: Job,
  now: Date,
): { job: Job; send: { index: number; delaySeconds: number }[] } | undefined {
  if (isTerminal(job.status)) return undefined;
  const lapsed = structuredClone(job);
  for (const task of lapsed.tasks) {
    if (task.status === 'RUNNING' && task.lease && Date.parse(task.lease.until) > now.getTime()) {
      task.lease.until = now.toISOString();
    }
  }
  const unfinished = lapsed.tasks
    .filter((task) => task.status === 'QUEUED' || task.status === 'RETRYING' || task.status === 'RUNNING')
    .map((task) => task.index);
  const reissued = reissueTickets(lapsed, unfinished, now);
  if (!reissued) return undefined;
  return {
    job: reissued.job,
    send: reissued.enqueue.map((index) => {
      const task = reissued.job.tasks[index] as Task;
      const wait = task.status === 'RETRYING' && task.retryAt ? Date.parse(task.retryAt) - now.getTime() : 0;
      return { index, delaySeconds: Math.max(0, Math.ceil(wait / 1000)) };
    }),
  };
}
