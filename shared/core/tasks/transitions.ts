import { backoffDelay } from '../backoff.js';
import { newTicket } from '../ids.js';
import { type AttemptRecord, isTerminal, type Job, newJobFields, type Task } from '../model.js';
import type { Processor } from '../processors.js';
import {
  type AttemptOutcome,
  bounded,
  type CompleteResult,
  DEFAULT_LEASE_MARGIN_SECONDS,
  type Delivery,
  holdsTicket,
  MAX_ATTEMPT_RECORDS,
  MAX_LATE_OUTCOMES,
  MAX_RECORD_MESSAGE,
  MAX_TASK_LOG,
  type NewJob,
  next,
  type OutcomeLog,
  type Transition,
} from './model.js';
import { finishTask } from './strategy.js';

/**
 * The attempt lifecycle of a task, each step one pure function: (job, event) → next job + what
 * to do next. The engine writes `next` with one conditional write on `version`, so each
 * transition is atomic; a conflict means "re-read and apply again". Terminal states are final: no
 * function here (nor in `repairs.ts`) ever changes a terminal job or task.
 */

export type {
  AttemptOutcome,
  CompleteResult,
  Delivery,
  NewJob,
  NewTask,
  OutcomeLog,
  Transition,
} from './model.js';
export {
  DEFAULT_LEASE_MARGIN_SECONDS,
  holdsTicket,
  MAX_ATTEMPT_RECORDS,
  MAX_ERROR_MESSAGE,
  MAX_LATE_OUTCOMES,
  MAX_RECORD_MESSAGE,
  MAX_TASK_LOG,
} from './model.js';

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

function seconds(now: Date, s: number): string {
  return new Date(now.getTime() + s * 1000).toISOString();
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

function appendLog(task: Task, log: OutcomeLog | undefined, now: Date): void {
  if (!log?.length) return;
  const at = now.toISOString();
  task.log = [...(task.log ?? []), ...log.map((entry) => ({ at, ...entry }))].slice(-MAX_TASK_LOG);
}

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
