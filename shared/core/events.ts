import type { BatchJob, Tally } from './batches/model.js';
import { attemptLog, type Job } from './model.js';
import type { JobEvent } from './responses.js';

/** One entry of a job's update log (API.md, `GET /v1/jobs/{id}/events`; its schema: responses.ts). */
export type { JobEvent };

/**
 * A job's update log, derived from its item rather than written as items of its own: every
 * transition already records when it happened (queued, each attempt's start and end with its
 * retry, each late outcome, ended), so the log costs no write at all. Entries a processor adds through its reply (`log`)
 * are kept with the task and appear here at the end of that attempt.
 */
export function taskJobEvents(job: Job): JobEvent[] {
  const events: JobEvent[] = [
    {
      at: job.createdAt,
      level: 'info',
      type: 'job.submitted',
      message: `${job.tasks.length} task(s), ${job.strategy}`,
      data: { tasks: job.tasks.length, strategy: job.strategy },
    },
  ];
  if (job.startedAt)
    events.push({ at: job.startedAt, level: 'info', type: 'job.started', message: 'first task started' });
  for (const task of job.tasks) {
    const taskId = task.id;
    if (task.queuedAt)
      events.push({
        at: task.queuedAt,
        level: 'info',
        type: 'task.queued',
        taskId,
        message: `task ${task.index} queued`,
      });
    const { attempts } = attemptLog(task);
    for (const attempt of attempts) {
      const startedAt = attempt.attempt === 1 ? task.startedAt : (attempt.startedAt ?? undefined);
      if (startedAt) {
        events.push({
          at: startedAt,
          level: 'info',
          type: 'task.started',
          taskId,
          message: `task ${task.index} started (attempt ${attempt.attempt})`,
          data: { attempt: attempt.attempt },
        });
      }
      if ((attempt.outcome === 'retried' || attempt.outcome === 'lost') && attempt.endedAt) {
        const error = attempt.error ?? undefined;
        events.push({
          at: attempt.endedAt,
          level: 'warn',
          type: 'task.attempt_failed',
          taskId,
          message: `attempt ${attempt.attempt} ${attempt.outcome === 'lost' ? 'was lost' : 'failed'} (${error?.kind ?? 'error'}${error?.code ? ` ${error.code}` : ''}): ${error?.message ?? ''}`,
          data: { attempt: attempt.attempt, outcome: attempt.outcome, ...(error ? { error } : {}) },
        });
      }
      if (attempt.retryDelaySeconds !== null && attempt.endedAt) {
        const due = new Date(Date.parse(attempt.endedAt) + attempt.retryDelaySeconds * 1000).toISOString();
        events.push({
          at: attempt.endedAt,
          level: 'warn',
          type: 'task.retry_scheduled',
          taskId,
          message: `attempt ${attempt.attempt + 1} in ${attempt.retryDelaySeconds} s`,
          data: { attempt: attempt.attempt, retryDelaySeconds: attempt.retryDelaySeconds, retryAt: due },
        });
      }
    }
    if (task.startedAt && attempts.length === 0) {
      // A task whose start was recorded before attempts were counted this way.
      events.push({
        at: task.startedAt,
        level: 'info',
        type: 'task.started',
        taskId,
        message: `task ${task.index} started (attempt 1)`,
        data: { attempt: 1 },
      });
    }
    for (const late of task.late ?? []) {
      events.push({
        at: late.at,
        level: 'warn',
        type: 'task.late_outcome',
        taskId,
        message: `attempt ${late.attempt} reported ${late.status} after it no longer counted`,
        data: { attempt: late.attempt, status: late.status, ...(late.error ? { error: late.error } : {}) },
      });
    }
    for (const entry of task.log ?? []) {
      events.push({
        at: entry.at,
        level: entry.level,
        type: 'task.log',
        taskId,
        message: entry.message,
        ...(entry.data !== undefined ? { data: entry.data } : {}),
      });
    }
    if (task.endedAt && (task.status === 'SUCCEEDED' || task.status === 'FAILED' || task.status === 'ABORTED')) {
      events.push({
        at: task.endedAt,
        level: task.status === 'SUCCEEDED' ? 'info' : task.status === 'FAILED' ? 'error' : 'warn',
        type: `task.${task.status.toLowerCase()}`,
        taskId,
        message:
          task.status === 'SUCCEEDED'
            ? `task ${task.index} succeeded after ${task.attempts} attempt(s)`
            : `task ${task.index} ${task.status.toLowerCase()}: ${task.error?.kind ?? ''} ${task.error?.message ?? ''}`.trim(),
        data: { attempts: task.attempts, ...(task.error ? { error: task.error } : {}) },
      });
    }
  }
  if (job.endedAt) {
    events.push({
      at: job.endedAt,
      level: job.status === 'SUCCEEDED' ? 'info' : job.status === 'FAILED' ? 'error' : 'warn',
      type: `job.${job.status.toLowerCase()}`,
      message: `job ${job.status.toLowerCase()}`,
    });
  }
  return sortEvents(events);
}

export function batchJobEvents(job: BatchJob, tallies: Tally[]): JobEvent[] {
  const { batch } = job;
  const events: JobEvent[] = [
    {
      at: job.createdAt,
      level: 'info',
      type: 'job.submitted',
      message: `batch for ${batch.processor}, ${batch.rows} row(s) known, chunks of ${batch.chunkSize}`,
      data: { rows: batch.rows, chunkSize: batch.chunkSize, held: job.status === 'HELD' },
    },
  ];
  if (batch.plan && job.startedAt) {
    events.push({
      at: job.startedAt,
      level: 'info',
      type: 'batch.planned',
      message: `${batch.plan.rows} row(s) in ${batch.plan.chunks} chunk(s)`,
      data: { ...batch.plan },
    });
  }
  for (const tally of tallies) {
    if (!tally.lastAt || tally.commits.size === 0) continue;
    const chunks = [...tally.commits.keys()].sort((a, b) => a - b);
    let succeeded = 0;
    let failed = 0;
    for (const commit of tally.commits.values()) {
      succeeded += commit.succeeded;
      failed += commit.failed;
    }
    events.push({
      at: tally.lastAt,
      level: failed > 0 ? 'warn' : 'info',
      type: 'batch.chunks_done',
      message: `${chunks.length} chunk(s) done (${chunks[0]}…${chunks.at(-1)}): ${succeeded} row(s) succeeded, ${failed} failed`,
      data: { chunks: chunks.length, first: chunks[0], last: chunks.at(-1), succeeded, failed },
    });
  }
  if (batch.abortRequestedAt) {
    events.push({
      at: batch.abortRequestedAt,
      level: 'warn',
      type: 'batch.abort_requested',
      message: 'abort requested',
    });
  }
  if (job.endedAt) {
    events.push({
      at: job.endedAt,
      level: job.status === 'SUCCEEDED' ? 'info' : job.status === 'FAILED' ? 'error' : 'warn',
      type: `job.${job.status.toLowerCase()}`,
      message: batch.error
        ? `job ${job.status.toLowerCase()}: ${batch.error.message}`
        : `job ${job.status.toLowerCase()}`,
      ...(batch.counts ? { data: { ...batch.counts } } : {}),
    });
  }
  if (batch.outputs) {
    events.push({
      at: job.updatedAt,
      level: 'info',
      type: 'batch.finalized',
      message: `outputs assembled: ${Object.keys(batch.outputs).join(', ')}`,
      data: { outputs: Object.fromEntries(Object.entries(batch.outputs).map(([name, o]) => [name, o.lines])) },
    });
  }
  return sortEvents(events);
}

/** Oldest first; entries at the same moment keep the order they were derived in. */
function sortEvents(events: JobEvent[]): JobEvent[] {
  return events
    .map((event, i) => ({ event, i }))
    .sort((a, b) => (a.event.at === b.event.at ? a.i - b.i : a.event.at < b.event.at ? -1 : 1))
    .map(({ event }) => event);
}
