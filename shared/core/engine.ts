import type { BatchEngine, PreparedBatch } from './batch-engine.js';
import { IdempotencyMismatchError, NotFoundError, UnknownProcessorError, ValidationError } from './errors.js';
import { jobIdForKey, newJobId, requestHash, taskId } from './ids.js';
import { isTerminal, type Job } from './model.js';
import { type Caller, canSee, visibleTo } from './owners.js';
import {
  type AnyJob,
  type Clock,
  type JobStore,
  type PayloadStore,
  type ProcessorInvoker,
  processorJobView,
  taskInput,
  type WorkQueue,
} from './ports.js';
import type { ProcessorRegistry } from './processors.js';
import { parseOrThrow, type SubmitTasks, submitBatchSchema, submitTasksSchema } from './schemas.js';
import {
  type AttemptOutcome,
  abortJob,
  completeAttempt,
  completeUnrecorded,
  createJob,
  DEFAULT_LEASE_MARGIN_SECONDS,
  type Delivery,
  failTask,
  holdsTicket,
  poisonTask,
  reissueTickets,
  resumeAfterRestart,
  startAttempt,
  strandedTasks,
  type Transition,
} from './transitions.js';

export interface EngineDeps {
  store: JobStore;
  queue: WorkQueue;
  invoker: Pick<ProcessorInvoker, 'invoke'>;
  /** Batches (jobs of rows); without them a batch submission is refused. */
  batches?: BatchEngine;
  payloads: PayloadStore;
  processors: ProcessorRegistry;
  clock: Clock;
  /** Seconds past a processor's timeout before its attempt counts as lost (default 10). */
  leaseMarginSeconds?: number;
  /** A task still running after this long gets its start written (default 1000 ms). */
  recordStartAfterMs?: number;
  log?: (level: 'info' | 'warn' | 'error', message: string, data?: Record<string, unknown>) => void;
}

/**
 * What the worker must do with a task's message once `runTask` returns: delete it (`done`), hide it
 * for a while (`retry`), or leave it exactly as it is (`keep`: a stale attempt, whose message is
 * now another attempt's lease and must neither be deleted nor have its visibility changed).
 */
export type TaskVerdict = { kind: 'done' } | { kind: 'retry'; delaySeconds: number } | { kind: 'keep' };

/** How long a task message may wait for its job to be written before it counts as an orphan. */
export const UNBORN_JOB_GRACE_MS = 60_000;

/** How long a worker waits before its one second look for a job that was not written yet. */
const UNBORN_LOOK_AGAIN_MS = 250;

/** A job item holds all its tasks: without inputs it must stay well inside DynamoDB's 400 KB. */
export const MAX_JOB_SKELETON_BYTES = 200_000;

/** How often a conditional write may lose to a concurrent one before we give up (the message is retried). */
const MAX_CONFLICTS = 50;

export class ConflictError extends Error {}

/** A replay's answer: the job its key made, provided it was made by the same request. */
function replayOf(job: AnyJob, existing: AnyJob): Submitted {
  if (existing.requestHash !== job.requestHash || existing.kind !== job.kind) {
    throw new IdempotencyMismatchError('Idempotency key was already used with a different request');
  }
  return { job: existing, created: false };
}

/** A task's message: which task of which job, and the ticket that lets it start an attempt. */
function taskMessage(job: Job, task: number): { jobId: string; task: number; ticket?: string } {
  const ticket = job.tasks[task]?.ticket;
  return { jobId: job.id, task, ...(ticket !== undefined ? { ticket } : {}) };
}

export function idempotencyKeyOf(headerKey: string | undefined, bodyKey: string | undefined): string | undefined {
  if (headerKey !== undefined && bodyKey !== undefined && headerKey !== bodyKey) {
    throw new ValidationError('Idempotency-Key header and idempotencyKey field differ', [
      { path: 'idempotencyKey', message: 'must equal the Idempotency-Key header when both are given' },
    ]);
  }
  return headerKey ?? bodyKey;
}

/** A validated submission, ready to be sent and written. */
export type PreparedJob = (Transition & { kind?: undefined }) | PreparedBatch;

export type Submitted = { job: AnyJob; created: boolean };

/**
 * The use cases of jobs of tasks. Each state change is: read the job, apply one pure transition,
 * write it conditioned on the version read, and only then act on the outside world (send
 * messages). A crash between the write and the send is repaired by redelivery of the message
 * that caused the write (it is deleted only after both).
 */
export class JobEngine {
  private readonly leaseMargin: number;
  private readonly recordStartAfterMs: number;
  private readonly turns = new Map<string, Promise<void>>();

  constructor(private readonly deps: EngineDeps) {
    this.leaseMargin = deps.leaseMarginSeconds ?? DEFAULT_LEASE_MARGIN_SECONDS;
    this.recordStartAfterMs = deps.recordStartAfterMs ?? 1000;
  }

  private log(level: 'info' | 'warn' | 'error', message: string, data?: Record<string, unknown>) {
    this.deps.log?.(level, message, data);
  }

  /**
   * Submit. With an idempotency key the job id is derived from it, so a replay finds the first job
   * with the same conditional write that would have created it.
   */
  async submit(body: unknown, owner: string, headerKey?: string): Promise<Submitted> {
    const [outcome] = await this.commit([this.prepare(body, owner, headerKey)]);
    if (!outcome || 'error' in outcome) throw outcome?.error;
    return outcome;
  }

  /**
   * Validates a submission and builds its job for `owner`, writing nothing. Throws the contract's
   * errors. The idempotency key is the owner's: the job id derives from both.
   */
  prepare(body: unknown, owner: string, headerKey?: string): PreparedJob {
    if (body && typeof body === 'object' && 'batch' in body) {
      if ('tasks' in body) {
        throw new ValidationError('A job has tasks or a batch, not both', [
          { path: 'batch', message: 'give exactly one of tasks or batch' },
        ]);
      }
      const request = parseOrThrow(submitBatchSchema, body, 'Job');
      if (!this.deps.batches)
        throw new ValidationError('Batches are not enabled here', [{ path: 'batch', message: 'not enabled' }]);
      return this.deps.batches.prepare(request, owner, idempotencyKeyOf(headerKey, request.idempotencyKey));
    }
    const request: SubmitTasks = parseOrThrow(submitTasksSchema, body, 'Job');
    const key = idempotencyKeyOf(headerKey, request.idempotencyKey);
    const refused = request.tasks
      .map((task, index) => ({
        index,
        name: task.processor,
        why: this.deps.processors.refusal(task.processor, 'tasks'),
      }))
      .filter((t) => t.why !== undefined);
    if (refused.length > 0) {
      const names = [...new Set(refused.map((u) => u.name))];
      const unregistered = names.filter((n) => !this.deps.processors.get(n));
      throw new UnknownProcessorError(
        unregistered.length === names.length
          ? `Unknown processor${names.length > 1 ? 's' : ''}: ${names.join(', ')}`
          : `Not a task processor: ${names.map((n) => refused.find((u) => u.name === n)?.why).join('; ')}`,
        refused.map((u) => ({ path: `tasks[${u.index}].processor`, message: u.why as string })),
      );
    }
    // An absent input is a null input: the two must hash alike for idempotent replays.
    const { idempotencyKey: _, ...rest } = request;
    const fields = { ...rest, tasks: rest.tasks.map((task) => ({ ...task, input: task.input ?? null })) };
    const now = this.deps.clock.now();
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

  /**
   * Makes prepared jobs real: all their first messages go out together (ten to an SQS request),
   * then each job is written. Send first, then write: if the send fails nothing is written (the
   * caller gets an error and may retry), and a message whose job is never written finds none and
   * is dropped, so no job is ever left without its first messages. A replay's messages are
   * duplicates and are dropped on receipt.
   */
  async commit(
    prepared: PreparedJob[],
    options: { lookUp?: readonly boolean[] } = {},
  ): Promise<(Submitted | { error: unknown })[]> {
    const replays = await this.replays(prepared, options.lookUp);
    const jobs = prepared.filter((p, i): p is Transition => p.kind !== 'batch' && replays[i] === undefined);
    await this.deps.queue.send(jobs.flatMap(({ job, enqueue }) => enqueue.map((task) => taskMessage(job, task))));
    const outcomes = await Promise.all(
      prepared.map(async (next, i) => {
        try {
          const replay = replays[i];
          if (typeof replay === 'object') return replayOf(next.job, replay);
          if (typeof replay === 'number') return undefined;
          if (next.kind === 'batch') return await this.deps.batches!.commit(next);
          const { job } = next;
          const outcome = await this.deps.store.create(job);
          if (outcome.created) {
            this.log('info', 'job submitted', { jobId: job.id, type: job.type, tasks: job.tasks.length });
            return { job, created: true };
          }
          if (outcome.existing.requestHash !== job.requestHash || outcome.existing.kind !== 'tasks') {
            throw new IdempotencyMismatchError('Idempotency key was already used with a different request');
          }
          return { job: outcome.existing, created: false };
        } catch (error) {
          return { error };
        }
      }),
    );
    return outcomes.map((outcome, i) => (outcome ? outcome : this.sameBatchReplay(prepared, outcomes, replays, i)));
  }

  /**
   * Submissions that are replays, to answer without sending or writing anything: a keyed one whose
   * job is already there (an eventually consistent read, half a read unit; `lookUp[i] === false`
   * skips it, for keys no caller chose: their replays are rare), and a later one of the same job
   * in this very batch (the index of its first). A replay the read misses (a moment after the
   * first write, or racing it) still sends its messages; their tickets are not the job's, so
   * they run nothing.
   */
  private async replays(
    prepared: PreparedJob[],
    lookUp: readonly boolean[] | undefined,
  ): Promise<(AnyJob | number | undefined)[]> {
    const first = new Map<string, number>();
    return Promise.all(
      prepared.map(async ({ job }, i) => {
        const earlier = first.get(job.id);
        if (earlier !== undefined) return earlier;
        first.set(job.id, i);
        if (job.idempotencyKey === undefined || lookUp?.[i] === false) return undefined;
        return this.deps.store.peek(job.id);
      }),
    );
  }

  /** A batch's second submission of one job gets the answer its first got. */
  private sameBatchReplay(
    prepared: PreparedJob[],
    outcomes: (Submitted | { error: unknown } | undefined)[],
    replays: (AnyJob | number | undefined)[],
    i: number,
  ): Submitted | { error: unknown } {
    const first = outcomes[replays[i] as number];
    if (!first || 'error' in first) return first ?? { error: new Error('no first submission') };
    try {
      return replayOf(prepared[i]!.job, first.job);
    } catch (error) {
      return { error };
    }
  }

  /** A job of either kind, if `caller` may see it. */
  async read(id: string, caller: Caller): Promise<AnyJob> {
    return visibleTo(caller, id, await this.deps.store.read(id));
  }

  async abort(id: string, caller: Caller): Promise<{ job: Job; changed: boolean }> {
    return this.update(id, (job) => {
      // Checked on the very read the abort is written on: a foreign job is a missing one.
      if (!canSee(caller, job)) throw new NotFoundError(`No job ${id}`);
      const result = abortJob(job, this.deps.clock.now());
      return { write: result.changed ? result.job : undefined, value: result };
    }).then((r) => {
      if (r.changed) this.log('info', 'job aborted', { jobId: id });
      return r;
    });
  }

  /**
   * One delivery of a task's message: start an attempt, call the processor, record the outcome.
   * Returns whether the message is done with or must come back after a delay.
   */
  async runTask(
    message: { jobId: string; task: number; ticket?: string },
    received: Delivery,
    hooks: { onLease?: (seconds: number) => Promise<void>; signal?: AbortSignal } = {},
    /** Set on the second look at a job that was not there yet. */
    lookedAgain = false,
  ): Promise<TaskVerdict> {
    const { jobId, task: index } = message;
    const delivery: Delivery = message.ticket !== undefined ? { ...received, ticket: message.ticket } : received;
    // In a sequential job only the running task's message writes, so the job read to start it is
    // still current when it ends (an abort or a duplicate would make the write conflict and re-read):
    // the completion is written on it, saving a read per task.
    let basis: Job | undefined;
    const starting = this.update(
      jobId,
      (job) => {
        basis = job.strategy === 'sequential' ? job : undefined;
        const task = job.tasks[index];
        if (!task) return { value: { action: 'drop' as const, reason: 'no such task', enqueue: [] } };
        const processor = this.deps.processors.get(task.processor);
        if (!processor) {
          // Configuration drift (a processor removed or renamed): fail the task rather than let
          // its message be dropped and re-sent forever.
          const failed = failTask(job, index, this.deps.clock.now(), {
            kind: 'crash',
            code: 'UNKNOWN_PROCESSOR',
            message: `processor '${task.processor}' is not registered with the worker`,
          });
          return failed
            ? { write: failed.job, value: { action: 'settle' as const, ...failed } }
            : { value: { action: 'drop' as const, reason: 'task already final', enqueue: [] } };
        }
        const decision = startAttempt(job, index, delivery, processor, this.deps.clock.now(), this.leaseMargin);
        // A run's start is not written yet: most tasks finish before it would be worth it.
        return { write: decision.action === 'settle' ? decision.job : undefined, value: decision };
      },
      { missing: 'undefined' },
    );
    // Lost too many races to start (a crowded concurrent job): try again shortly, not after the
    // queue's long default visibility.
    const started = await starting.catch((error: unknown) => {
      if (error instanceof ConflictError) return 'contended' as const;
      throw error;
    });
    if (started === 'contended') return { kind: 'retry', delaySeconds: 1 + Math.floor(Math.random() * 4) };
    if (!started) {
      // Messages are sent just before their job is written: a young one may have overtaken it.
      const age =
        delivery.sentAt === undefined ? Number.POSITIVE_INFINITY : this.deps.clock.now().getTime() - delivery.sentAt;
      if (age < UNBORN_JOB_GRACE_MS) {
        // Usually the job's write lands a moment later: one more look is cheaper than sending the
        // message round again (a visibility change, a receive, a read and an invocation).
        if (!lookedAgain) {
          await new Promise((r) => setTimeout(r, UNBORN_LOOK_AGAIN_MS));
          return this.runTask(message, received, hooks, true);
        }
        return { kind: 'retry', delaySeconds: 2 };
      }
      this.log('warn', 'message for an unknown job dropped', { jobId, task: index });
      return { kind: 'done' };
    }
    if (started.action === 'hold') {
      this.log('info', `delivery held: ${started.reason}`, { jobId, task: index, delaySeconds: started.delaySeconds });
      return { kind: 'retry', delaySeconds: started.delaySeconds };
    }
    if (started.action === 'drop') {
      this.log('info', `delivery dropped: ${started.reason}`, { jobId, task: index });
      await this.resend(jobId, started.enqueue);
      return { kind: 'done' };
    }
    if (started.action === 'settle') {
      this.log('warn', 'task failed: attempts exhausted', { jobId, task: index });
      await this.send(started.job, started.enqueue);
      return { kind: 'done' };
    }

    const job = started.job;
    const task = job.tasks[index]!;
    const processor = this.deps.processors.get(task.processor)!;
    const startedAt = this.deps.clock.now();
    let attempt = started.attempt;
    let recorded = false;

    // Write the start (RUNNING, the attempt, the lease) only for a task still running after a
    // moment; then the message's visibility becomes the lease, as a dead worker's must lapse.
    const promote = async () => {
      const decision = await this.update(jobId, (current) => {
        const d = startAttempt(current, index, delivery, processor, startedAt, this.leaseMargin, true);
        return { write: d.action === 'run' ? d.job : undefined, value: d };
      }).catch(() => undefined);
      if (decision?.action !== 'run') return;
      if (basis) basis = decision.job;
      recorded = true;
      attempt = decision.attempt;
      this.log('info', 'task running', { jobId, taskId: task.id, attempt });
      // The lease is recorded; should the message's visibility fail to follow, the queue's longer
      // visibility still covers it. Losing the run's outcome over it would be worse.
      await hooks.onLease?.(processor.timeoutSeconds + this.leaseMargin).catch((error: unknown) => {
        this.log('warn', 'lease visibility not set', { jobId, taskId: task.id, attempt, error: String(error) });
      });
    };
    let promotion: Promise<void> | undefined;
    const timer = setTimeout(() => {
      promotion = promote();
    }, this.recordStartAfterMs);

    const deadline = AbortSignal.timeout(processor.timeoutSeconds * 1000);
    const signal = hooks.signal ? AbortSignal.any([deadline, hooks.signal]) : deadline;
    let outcome: AttemptOutcome;
    try {
      outcome = await this.deps.invoker.invoke(
        processor,
        {
          job: processorJobView(job),
          task: {
            id: task.id,
            ...(task.name !== undefined ? { name: task.name } : {}),
            processor: task.processor,
            attempt,
            input: await taskInput(this.deps.payloads, job.id, task),
          },
        },
        signal,
      );
    } catch (error) {
      outcome = { status: 'error', error: { kind: 'crash', message: String(error) }, retryable: true };
    } finally {
      clearTimeout(timer);
      await promotion;
    }
    // Only what the deadline cut short is a timeout; a final error that raced it stays an error.
    if (deadline.aborted && outcome.status === 'error' && outcome.retryable) {
      outcome = {
        status: 'error',
        error: { kind: 'timeout', message: `no reply within ${processor.timeoutSeconds} s` },
        retryable: true,
      };
    }

    const final = outcome;
    let disposable = true;
    let leaseIsOurs = false;
    let comeBackIn = 1;
    const completed = await this.update(
      jobId,
      (current) => {
        const now = this.deps.clock.now();
        const result = recorded
          ? completeAttempt(current, index, attempt, final, processor, now, Math.random, delivery.messageId)
          : completeUnrecorded(
              current,
              index,
              delivery,
              final,
              processor,
              startedAt,
              now,
              this.leaseMargin,
              Math.random,
              attempt,
            );
        // Delete this message only when nothing needs it: the task is over, or another message holds
        // its live lease (ours is a duplicate). A retrying task's message must come back.
        const fresh = current.tasks[index];
        disposable =
          isTerminal(current.status) ||
          !fresh ||
          isTerminal(fresh.status) ||
          // A resend reissued the ticket: its message carries the task on.
          !holdsTicket(fresh, delivery) ||
          (fresh.status === 'RUNNING' &&
            fresh.lease !== undefined &&
            fresh.lease.messageId !== delivery.messageId &&
            Date.parse(fresh.lease.until) > now.getTime());
        leaseIsOurs = fresh?.lease?.messageId === delivery.messageId;
        if (fresh?.retryAt) comeBackIn = Math.max(1, Math.ceil((Date.parse(fresh.retryAt) - now.getTime()) / 1000));
        return { write: result.job, value: result };
      },
      { missing: 'throw', first: basis },
    );
    if (!completed.applied) {
      this.log('warn', `outcome not applied: ${completed.reason}`, { jobId, taskId: task.id, attempt });
      if (recorded) return completed.superseded ? { kind: 'keep' } : { kind: 'done' };
      if (disposable) return { kind: 'done' };
      // Still needed (say the task is retrying) but nobody's lease: bring it back when it is due,
      // not after the queue's long default visibility.
      return leaseIsOurs ? { kind: 'keep' } : { kind: 'retry', delaySeconds: comeBackIn };
    }
    const after = completed.job.tasks[index]!;
    this.log(after.status === 'FAILED' ? 'warn' : 'info', `task ${after.status.toLowerCase()}`, {
      jobId,
      taskId: task.id,
      attempt: after.attempts,
      ...(after.error ? { error: after.error } : {}),
      jobStatus: completed.job.status,
    });
    await this.send(completed.job, completed.enqueue);
    // The retry rides on the message holding the ticket: ours, unless a resend reissued it.
    if (completed.retryDelaySeconds !== undefined && holdsTicket(after, delivery)) {
      return { kind: 'retry', delaySeconds: completed.retryDelaySeconds };
    }
    return { kind: 'done' };
  }

  /** A task's message reached the dead-letter queue: the task fails as `poison`. */
  async poison(
    message: { jobId: string; task: number; ticket?: string },
    reason: string,
    messageId?: string,
  ): Promise<void> {
    const result = await this.update(
      message.jobId,
      (job) => {
        const transition: Transition | undefined = poisonTask(
          job,
          message.task,
          this.deps.clock.now(),
          reason,
          messageId,
          message.ticket,
        );
        return { write: transition?.job, value: transition };
      },
      { missing: 'undefined' },
    );
    if (!result) return;
    this.log('warn', 'task failed: poison', { jobId: message.jobId, task: message.task });
    await this.send(result.job, result.enqueue);
  }

  /**
   * The sweeper: finds unfinished jobs whose task messages must have been lost (a crash between a
   * write and its send, a lost local queue) and sends them again.
   */
  async sweep(
    graceSeconds: number,
    options: { afterRestart?: boolean } = {},
  ): Promise<{ jobs: number; resent: number }> {
    const now = this.deps.clock.now();
    let jobs = 0;
    let resent = 0;
    const before = options.afterRestart ? now : new Date(now.getTime() - graceSeconds * 1000);
    for await (const { id, kind } of this.deps.store.activeJobs(before)) {
      jobs++;
      if (kind === 'batch') {
        if (await this.deps.batches?.sweepOne(id, options.afterRestart ? 0 : graceSeconds)) resent++;
        continue;
      }
      if (options.afterRestart) {
        resent += await this.resume(id);
        continue;
      }
      const job = await this.deps.store.get(id);
      if (!job) continue;
      const stranded = strandedTasks(job, now, graceSeconds);
      if (stranded.length === 0) continue;
      this.log('warn', 'sweeper re-sends stranded tasks', { jobId: id, tasks: stranded });
      resent += await this.resend(id, stranded);
    }
    return { jobs, resent };
  }

  /** Resumes one job after a restart that lost its messages and workers (see `resumeAfterRestart`). */
  private async resume(id: string): Promise<number> {
    const resumed = await this.update(
      id,
      (job) => {
        const transition = resumeAfterRestart(job, this.deps.clock.now());
        return { write: transition?.job, value: transition };
      },
      { missing: 'undefined' },
    );
    if (!resumed) return 0;
    this.log('warn', 'resuming tasks after a restart', { jobId: id, tasks: resumed.send.map((t) => t.index) });
    // No old worker can write any more: only a retrying task's backoff holds its message back.
    for (const delay of new Set(resumed.send.map((t) => Math.min(900, t.delaySeconds)))) {
      const tasks = resumed.send.filter((t) => Math.min(900, t.delaySeconds) === delay).map((t) => t.index);
      await this.send(resumed.job, tasks, delay > 0 ? delay : undefined);
    }
    return resumed.send.length;
  }

  /** Sends the messages of tasks `job` (as written) queued, each with its ticket. */
  private async send(job: Job, tasks: number[], delaySeconds?: number): Promise<void> {
    if (tasks.length === 0) return;
    await this.deps.queue.send(
      tasks.map((task) => taskMessage(job, task)),
      delaySeconds === undefined ? undefined : { delaySeconds },
    );
  }

  /**
   * Sends tasks' messages again, under new tickets (a write) so that an earlier message of theirs
   * still about is a duplicate from now on; held back past an attempt's unwritten first second.
   * Only repairs pay for this (the sweeper, a lost send), never a first delivery.
   */
  private async resend(jobId: string, tasks: number[]): Promise<number> {
    if (tasks.length === 0) return 0;
    const reissued = await this.update(
      jobId,
      (job) => {
        const transition = reissueTickets(job, tasks, this.deps.clock.now());
        return { write: transition?.job, value: transition };
      },
      { missing: 'undefined' },
    );
    if (!reissued) return 0;
    await this.send(reissued.job, reissued.enqueue, Math.ceil(this.recordStartAfterMs / 1000) + 2);
    return reissued.enqueue.length;
  }

  /**
   * Read → transition → conditional write, again on conflict. `apply` returns the job to write
   * (or none) and the value to return once that write has won.
   */
  private async update<T>(
    id: string,
    apply: (job: Job) => { write?: Job; value: T },
    options?: { missing: 'throw'; first?: Job },
  ): Promise<T>;
  private async update<T>(
    id: string,
    apply: (job: Job) => { write?: Job; value: T },
    options: { missing: 'undefined'; first?: Job },
  ): Promise<T | undefined>;
  private async update<T>(
    id: string,
    apply: (job: Job) => { write?: Job; value: T },
    options: { missing: 'throw' | 'undefined'; first?: Job } = { missing: 'throw' },
  ): Promise<T | undefined> {
    // Updates of one job from this process take turns: they would only conflict with each other.
    const previous = this.turns.get(id) ?? Promise.resolve();
    let release: () => void = () => {};
    const mine = new Promise<void>((resolve) => (release = resolve));
    const queue = previous.then(() => mine);
    this.turns.set(id, queue);
    await previous;
    try {
      for (let conflicts = 0; conflicts < MAX_CONFLICTS; conflicts++) {
        // `first`: a job the caller knows to be current; a conflict means it was not, and we read.
        const job = conflicts === 0 && options.first ? options.first : await this.deps.store.get(id);
        if (!job) {
          if (options.missing === 'undefined') return undefined;
          throw new NotFoundError(`No job ${id}`);
        }
        const { write, value } = apply(job);
        if (!write || (await this.deps.store.replace(write, job.version))) return value;
        // Another process won: back off with full jitter, growing to a second.
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(1000, 10 * 2 ** conflicts)));
      }
      throw new ConflictError(`Job ${id}: too many concurrent writes`);
    } finally {
      release();
      if (this.turns.get(id) === queue) this.turns.delete(id);
    }
  }
}
