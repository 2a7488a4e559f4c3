import { newTicket } from '../ids.js';
import { isTerminal, type Job, type Task, type TaskError } from '../model.js';
import { bounded, next, type Transition } from './model.js';

/**
 * The strategies: what a task's end means for the rest of its job (sequential: the next task, or
 * the end; concurrent: the end once all are final, or at once with failFast). Mutate fresh copies.
 */

/** Ends a task and lets the job's strategy decide what follows. */
export function finishTask(
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
export function advance(job: Job, index: number, now: Date): number[] {
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

export function abortUnfinished(job: Job, at: string, message: string): void {
  for (const other of job.tasks) {
    if (isTerminal(other.status)) continue;
    other.status = 'ABORTED';
    other.endedAt = at;
    other.error = { kind: 'aborted', message };
    delete other.lease;
    delete other.retryAt;
  }
}

export function endJob(job: Job, status: 'SUCCEEDED' | 'FAILED' | 'ABORTED', at: string): void {
  job.status = status;
  job.endedAt = at;
  job.startedAt ??= at;
}
