import { DONE, retryIn, type Verdict } from '../delivery.js';
import { isTerminal, type Job } from '../model.js';
import { type CompleteResult, type Delivery, holdsTicket } from './transitions.js';

/**
 * What becomes of a task message once its attempt's outcome is written (or refused): pure rules
 * over the job as the write found it, so every fate is decided in one place and tested alone.
 */

/** The outcome was applied: the message comes back for a retry it holds the ticket for, else it is done. */
export function fateOfApplied(after: Job, index: number, delivery: Delivery, retryDelaySeconds?: number): Verdict {
  const task = after.tasks[index];
  // The retry rides on the message holding the ticket: ours, unless a resend reissued it.
  return retryDelaySeconds !== undefined && task && holdsTicket(task, delivery) ? retryIn(retryDelaySeconds) : DONE;
}

/**
 * The outcome was not applied (a stale attempt, a job that moved on). A recorded attempt's message
 * is the lease: kept while a newer attempt holds the task, else done. An unrecorded one is deleted
 * when nothing needs it — the task is over, or another message holds its live lease (ours is a
 * duplicate), or a resend reissued the ticket — else it must come back: left as it is when the
 * task's lease names it, otherwise when the task is due (not after the queue's long visibility).
 */
export function fateOfUnapplied(
  current: Job,
  index: number,
  delivery: Delivery,
  attempt: { recorded: boolean; result: Extract<CompleteResult, { applied: false }> },
  now: Date,
): Verdict {
  if (attempt.recorded) return attempt.result.superseded ? { kind: 'keep' } : DONE;
  const task = current.tasks[index];
  const disposable =
    isTerminal(current.status) ||
    !task ||
    isTerminal(task.status) ||
    !holdsTicket(task, delivery) ||
    (task.status === 'RUNNING' &&
      task.lease !== undefined &&
      task.lease.messageId !== delivery.messageId &&
      Date.parse(task.lease.until) > now.getTime());
  if (disposable || !task) return DONE;
  if (task.lease?.messageId === delivery.messageId) return { kind: 'keep' };
  const comeBackIn = task.retryAt ? Math.max(1, Math.ceil((Date.parse(task.retryAt) - now.getTime()) / 1000)) : 1;
  return retryIn(comeBackIn);
}
