import { InvalidStateError } from '../errors.js';
import { newTicket } from '../ids.js';
import { isTerminal, type Job, type Task, type TaskError } from '../model.js';
import { holdsTicket, next, type Transition } from './model.js';
import { abortUnfinished, endJob, finishTask } from './strategy.js';

/**
 * The transitions that do not come from an attempt: a caller's abort, a dead letter, a task that
 * cannot run, and the repairs of lost messages (resends under new tickets, the sweep, a restart).
 */

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
