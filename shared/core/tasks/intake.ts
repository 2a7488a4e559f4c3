import { UnknownProcessorError, ValidationError } from '../errors.js';
import { jobIdForKey, newJobId, requestHash, taskId } from '../ids.js';
import type { Job } from '../model.js';
import type { ProcessorRegistry } from '../processors.js';
import type { SubmitTasks } from '../schemas.js';
import type { Transition } from './model.js';
import { createJob } from './transitions.js';

/** A job item holds all its tasks: without inputs it must stay well inside DynamoDB's 400 KB. */
export const MAX_JOB_SKELETON_BYTES = 200_000;

/** A task's message: which task of which job, and the ticket that lets it start an attempt. */
export type TaskMessage = { jobId: string; task: number; ticket?: string };

export function taskMessage(job: Job, task: number): TaskMessage {
  const ticket = job.tasks[task]?.ticket;
  return { jobId: job.id, task, ...(ticket !== undefined ? { ticket } : {}) };
}

/**
 * Builds a job of tasks from a validated request for `owner`, writing nothing. Throws the
 * contract's errors. The idempotency key is the owner's: the job id derives from both.
 */
export function prepareTaskJob(
  request: SubmitTasks,
  owner: string,
  key: string | undefined,
  processors: ProcessorRegistry,
  now: Date,
): Transition {
  checkProcessors(request, processors);
  // An absent input is a null input: the two must hash alike for idempotent replays.
  const { idempotencyKey: _, ...rest } = request;
  const fields = { ...rest, tasks: rest.tasks.map((task) => ({ ...task, input: task.input ?? null })) };
  const jobId = key !== undefined ? jobIdForKey(owner, key) : newJobId(now);
  const prepared = createJob(fields, { jobId, taskIds: request.tasks.map((_, i) => taskId(jobId, i)) }, now, {
    owner,
    requestHash: requestHash(fields),
    ...(key !== undefined ? { idempotencyKey: key } : {}),
  });
  const skeleton = Buffer.byteLength(
    JSON.stringify({ ...prepared.job, tasks: prepared.job.tasks.map((t) => ({ ...t, input: null })) }),
  );
  if (skeleton > MAX_JOB_SKELETON_BYTES) {
    throw new ValidationError(`Job is too large to track as one unit (${skeleton} bytes without inputs)`, [
      { path: 'tasks', message: `use fewer tasks or shorter names (limit ${MAX_JOB_SKELETON_BYTES} bytes)` },
    ]);
  }
  return prepared;
}

function checkProcessors(request: SubmitTasks, processors: ProcessorRegistry): void {
  const refused = request.tasks
    .map((task, index) => ({
      index,
      name: task.processor,
      why: processors.refusal(task.processor, 'tasks'),
    }))
    .filter((t) => t.why !== undefined);
  if (refused.length === 0) return;
  const names = [...new Set(refused.map((u) => u.name))];
  const unregistered = names.filter((n) => !processors.get(n));
  throw new UnknownProcessorError(
    unregistered.length === names.length
      ? `Unknown processor${names.length > 1 ? 's' : ''}: ${names.join(', ')}`
      : `Not a task processor: ${names.map((n) => refused.find((u) => u.name === n)?.why).join('; ')}`,
    refused.map((u) => ({ path: `tasks[${u.index}].processor`, message: u.why as string })),
  );
}
