import { type CallFailure, callProcessor } from '../call-processor.js';
import { createOnce, replayOf, type Submitted } from '../create-job.js';
import { type DeliveryHooks, DONE, messageAge, retryIn, UNBORN_JOB_GRACE_MS, type Verdict } from '../delivery.js';
import { NotFoundError } from '../errors.js';
import type { Job } from '../model.js';
import { type Caller, canSee } from '../owners.js';
import { processorJobView, taskInput } from '../ports.js';
import type { Processor } from '../processors.js';
import type { SubmitTasks } from '../schemas.js';
import { ConflictError, VersionedUpdates } from '../versioned-update.js';
import { fateOfApplied, fateOfUnapplied } from './fate.js';
import { prepareTaskJob, type TaskMessage, taskMessage } from './intake.js';
import type { TaskEngineDeps } from './model.js';

export type { TaskEngineDeps };

import { abortJob, failTask, poisonTask, reissueTickets, resumeAfterRestart, strandedTasks } from './repairs.js';
import {
  type AttemptOutcome,
  completeAttempt,
  completeUnrecorded,
  DEFAULT_LEASE_MARGIN_SECONDS,
  type Delivery,
  type StartDecision,
  startAttempt,
  type Transition,
} from './transitions.js';

/** How long a worker waits before its one second look for a job that was not written yet. */
const UNBORN_LOOK_AGAIN_MS = 250;

/** An attempt under way: the job it started on, its processor, and whether its start is written. */
interface Run {
  job: Job;
  index: number;
  processor: Processor;
  delivery: Delivery;
  startedAt: Date;
  attempt: number;
  recorded: boolean;
  /** The job as last written by this run, while only this run writes it (a sequential job). */
  basis: Job | undefined;
}

/**
 * The use cases of jobs of tasks. Each state change is: read the job, apply one pure transition
 * (`transitions.ts`), write it conditioned on the version read, and only then act on the outside
 * world (send messages). A crash between the write and the send is repaired by redelivery of the
 * message that caused the write (it is deleted only after both).
 */
export class TaskEngine {
  private readonly leaseMargin: number;
  private readonly recordStartAfterMs: number;
  private readonly updates: VersionedUpdates<Job>;

  constructor(private readonly deps: TaskEngineDeps) {
    this.leaseMargin = deps.leaseMarginSeconds ?? DEFAULT_LEASE_MARGIN_SECONDS;
    this.recordStartAfterMs = deps.recordStartAfterMs ?? 1000;
    this.updates = new VersionedUpdates<Job>({
      read: (id) => deps.store.get(id),
      replace: (job, version) => deps.store.replace(job, version),
    });
  }

  private log(level: 'info' | 'warn' | 'error', message: string, data?: Record<string, unknown>) {
    this.deps.log?.(level, message, data);
  }

  /** Builds a job of tasks from a validated request for `owner`, writing nothing (see `intake.ts`). */
  prepare(request: SubmitTasks, owner: string, key: string | undefined): Transition {
    return prepareTaskJob(request, owner, key, this.deps.processors, this.deps.clock.now());
  }

  /**
   * Makes prepared jobs real: each job is written, then all their first messages go out together
   * (ten to an SQS request). Write first, then send, so that a worker never receives a message
   * for a job not written yet (on an engine whose long poll answers at once, a third of the jobs
   * did, and their worker waited inside its invocation). Should the send fail, the jobs written
   * here are discarded, so a failed send leaves nothing behind (the caller gets an error and may
   * retry); a message that did go finds no job and is dropped. Should the submitter die between
   * the write and the send, the job's replay — the submit message redelivered, the caller's retry
   * with its key, or a replay found by an earlier look-up (`known`) — sends its first messages
   * again: a job not changed since it was written (version 1) may never have had them.
   */
  async commit(
    prepared: Transition[],
    known: readonly (Job | undefined)[] = [],
  ): Promise<(Submitted | { error: unknown })[]> {
    const written = await Promise.all(
      prepared.map(async ({ job }, i): Promise<Submitted | { error: unknown }> => {
        try {
          const existing = known[i];
          return existing ? replayOf(job, existing) : await createOnce(this.deps.store, job);
        } catch (error) {
          return { error };
        }
      }),
    );
    // What each submission sends: a job written here, its first messages; the replay of a job not
    // changed since its write (version 1), copies of them, as its first send may never have happened.
    const plans = written.map((outcome, i) => {
      if ('error' in outcome || (!outcome.created && outcome.job.version !== 1))
        return { created: false, messages: [] };
      const messages = prepared[i]!.enqueue.map((task) => taskMessage(outcome.job as Job, task));
      return { created: outcome.created, messages };
    });
    const answers = [...written];
    const failAll = (created: boolean, error: unknown) =>
      plans.forEach((plan, i) => {
        if (plan.created === created && plan.messages.length > 0) answers[i] = { error };
      });
    const firsts = plans.filter((plan) => plan.created).flatMap((plan) => plan.messages);
    try {
      if (firsts.length > 0) await this.deps.queue.send(firsts);
    } catch (error) {
      await Promise.all(
        written.map(async (outcome, i) => {
          if (!plans[i]!.created) return;
          const { id, version } = (outcome as Submitted).job;
          const discarded = await this.deps.store.discard(id, version).catch(() => false);
          // Not discarded: it changed (a message did go and ran) or the store failed too; the
          // caller's retry replays it, and a job left unchanged re-sends its first messages then.
          if (!discarded) this.log('warn', 'job kept after its first messages failed to send', { jobId: id });
        }),
      );
      failAll(true, error);
    }
    const copies = plans.filter((plan) => !plan.created).flatMap((plan) => plan.messages);
    if (copies.length > 0) {
      // A replay's copies carry the job's own tickets, so they are held back past an attempt's
      // unwritten first second: should the first messages have gone after all, their run has
      // either ended or written its start by then, and a copy finds it and runs nothing.
      const delaySeconds = Math.ceil(this.recordStartAfterMs / 1000) + 2;
      await this.deps.queue.send(copies, { delaySeconds }).catch((error: unknown) => failAll(false, error));
    }
    for (const outcome of answers) {
      if ('error' in outcome || !outcome.created) continue;
      const { job } = outcome;
      this.log('info', 'job submitted', { jobId: job.id, type: job.type, tasks: (job as Job).tasks.length });
    }
    return answers;
  }

  /** Abort. `first`: the job as just read (the facade routed on it), so the first try reads nothing. */
  async abort(id: string, caller: Caller, first?: Job): Promise<{ job: Job; changed: boolean }> {
    const result = await this.updates.apply(
      id,
      (job) => {
        // Checked on the very read the abort is written on: a foreign job is a missing one.
        if (!canSee(caller, job)) throw new NotFoundError(`No job ${id}`);
        const aborted = abortJob(job, this.deps.clock.now());
        return { write: aborted.changed ? aborted.job : undefined, value: aborted };
      },
      first ? { first } : {},
    );
    if (result.changed) this.log('info', 'job aborted', { jobId: id });
    return result;
  }

  /**
   * One delivery of a task's message: start an attempt, call the processor, record the outcome.
   * Returns what becomes of the message (see `Verdict`).
   */
  async runTask(message: TaskMessage, received: Omit<Delivery, 'ticket'>, hooks: DeliveryHooks = {}): Promise<Verdict> {
    const delivery: Delivery = message.ticket !== undefined ? { ...received, ticket: message.ticket } : received;
    const start = await this.start(message, delivery);
    if (start.kind === 'verdict') return start.verdict;
    const outcome = await this.call(start.run, hooks);
    return this.record(start.run, outcome);
  }

  /** Starts an attempt (in memory: its start is written only if it runs a while), or says why not. */
  private async start(
    message: TaskMessage,
    delivery: Delivery,
    lookedAgain = false,
  ): Promise<{ kind: 'verdict'; verdict: Verdict } | { kind: 'run'; run: Run }> {
    const { jobId, task: index } = message;
    // In a sequential job only the running task's message writes, so the job read to start it is
    // still current when it ends (an abort or a duplicate would make the write conflict and re-read):
    // the completion is written on it, saving a read per task.
    let basis: Job | undefined;
    let decision: StartDecision | undefined;
    try {
      decision = await this.updates.apply(
        jobId,
        (job) => {
          basis = job.strategy === 'sequential' ? job : undefined;
          const d = this.startDecision(job, index, delivery);
          // A run's start is not written yet: most tasks finish before it would be worth it.
          return { write: d.action === 'settle' ? d.job : undefined, value: d };
        },
        { missing: 'undefined' },
      );
    } catch (error) {
      // Lost too many races to start (a crowded concurrent job): try again shortly, not after the
      // queue's long default visibility.
      if (error instanceof ConflictError) return verdict(retryIn(1 + Math.floor(Math.random() * 4)));
      throw error;
    }
    if (!decision) {
      if (messageAge(this.deps.clock, delivery.sentAt) >= UNBORN_JOB_GRACE_MS) {
        this.log('warn', 'message for an unknown job dropped', { jobId, task: index });
        return verdict(DONE);
      }
      // Usually the job's write lands a moment later: one more look is cheaper than sending the
      // message round again (a visibility change, a receive, a read and an invocation).
      if (lookedAgain) return verdict(retryIn(2));
      await new Promise((r) => setTimeout(r, UNBORN_LOOK_AGAIN_MS));
      return this.start(message, delivery, true);
    }
    switch (decision.action) {
      case 'hold':
        this.log('info', `delivery held: ${decision.reason}`, {
          jobId,
          task: index,
          delaySeconds: decision.delaySeconds,
        });
        return verdict(retryIn(decision.delaySeconds));
      case 'drop':
        this.log('info', `delivery dropped: ${decision.reason}`, { jobId, task: index });
        await this.resend(jobId, decision.enqueue);
        return verdict(DONE);
      case 'settle':
        this.log('warn', 'task failed: attempts exhausted', { jobId, task: index });
        await this.send(decision.job, decision.enqueue);
        return verdict(DONE);
    }
    const task = decision.job.tasks[index]!;
    return {
      kind: 'run',
      run: {
        job: decision.job,
        index,
        processor: this.deps.processors.get(task.processor)!,
        delivery,
        startedAt: this.deps.clock.now(),
        attempt: decision.attempt,
        recorded: false,
        basis,
      },
    };
  }

  /** Whether this delivery may run an attempt of task `index` (pure but for the registry and clock). */
  private startDecision(job: Job, index: number, delivery: Delivery): StartDecision {
    const task = job.tasks[index];
    if (!task) return { action: 'drop', reason: 'no such task', enqueue: [] };
    const processor = this.deps.processors.get(task.processor);
    if (processor) return startAttempt(job, index, delivery, processor, this.deps.clock.now(), this.leaseMargin);
    // Configuration drift (a processor removed or renamed): fail the task rather than let its
    // message be dropped and re-sent forever.
    const failed = failTask(job, index, this.deps.clock.now(), {
      kind: 'crash',
      code: 'UNKNOWN_PROCESSOR',
      message: `processor '${task.processor}' is not registered with the worker`,
    });
    return failed ? { action: 'settle', ...failed } : { action: 'drop', reason: 'task already final', enqueue: [] };
  }

  /** Calls the processor; a run still going after `recordStartAfterMs` gets its start written. */
  private async call(run: Run, hooks: DeliveryHooks): Promise<AttemptOutcome | CallFailure> {
    const task = run.job.tasks[run.index]!;
    return callProcessor(
      run.processor,
      // The input is read inside the call: a payload that cannot be read fails this attempt.
      async (signal) =>
        this.deps.invoker.invoke(
          run.processor,
          {
            job: processorJobView(run.job),
            task: {
              id: task.id,
              ...(task.name !== undefined ? { name: task.name } : {}),
              processor: task.processor,
              attempt: run.attempt,
              input: await taskInput(this.deps.payloads, run.job.id, task),
            },
          },
          signal,
        ),
      {
        ...(hooks.signal ? { signal: hooks.signal } : {}),
        whileRunning: { afterMs: this.recordStartAfterMs, run: () => this.recordStart(run, hooks) },
      },
    );
  }

  /**
   * Writes the start (RUNNING, the attempt, the lease) of a task still running after a moment;
   * then the message's visibility becomes the lease, as a dead worker's must lapse.
   */
  private async recordStart(run: Run, hooks: DeliveryHooks): Promise<void> {
    const { job, index, processor, delivery, startedAt } = run;
    const decision = await this.updates
      .apply(job.id, (current) => {
        const d = startAttempt(current, index, delivery, processor, startedAt, this.leaseMargin, true);
        return { write: d.action === 'run' ? d.job : undefined, value: d };
      })
      .catch(() => undefined);
    if (decision?.action !== 'run') return;
    if (run.basis) run.basis = decision.job;
    run.recorded = true;
    run.attempt = decision.attempt;
    const taskId = job.tasks[index]!.id;
    this.log('info', 'task running', { jobId: job.id, taskId, attempt: run.attempt });
    // The lease is recorded; should the message's visibility fail to follow, the queue's longer
    // visibility still covers it. Losing the run's outcome over it would be worse.
    await hooks.onLease?.(processor.timeoutSeconds + this.leaseMargin).catch((error: unknown) => {
      this.log('warn', 'lease visibility not set', {
        jobId: job.id,
        taskId,
        attempt: run.attempt,
        error: String(error),
      });
    });
  }

  /** Writes the attempt's outcome and decides the message's fate from what the write found. */
  private async record(run: Run, outcome: AttemptOutcome): Promise<Verdict> {
    const { job, index, processor, delivery, startedAt, attempt, recorded } = run;
    const taskId = job.tasks[index]!.id;
    const completed = await this.updates.apply(
      job.id,
      (current) => {
        const now = this.deps.clock.now();
        const result = recorded
          ? completeAttempt(current, index, attempt, outcome, processor, now, Math.random, delivery.messageId)
          : completeUnrecorded(
              current,
              index,
              delivery,
              outcome,
              processor,
              startedAt,
              now,
              this.leaseMargin,
              Math.random,
              attempt,
            );
        return { write: result.job, value: { result, current, now } };
      },
      run.basis ? { first: run.basis } : {},
    );
    const { result } = completed;
    if (!result.applied) {
      this.log('warn', `outcome not applied: ${result.reason}`, { jobId: job.id, taskId, attempt });
      return fateOfUnapplied(completed.current, index, delivery, { recorded, result }, completed.now);
    }
    const after = result.job.tasks[index]!;
    this.log(after.status === 'FAILED' ? 'warn' : 'info', `task ${after.status.toLowerCase()}`, {
      jobId: job.id,
      taskId,
      attempt: after.attempts,
      ...(after.error ? { error: after.error } : {}),
      jobStatus: result.job.status,
    });
    await this.send(result.job, result.enqueue);
    return fateOfApplied(result.job, index, delivery, result.retryDelaySeconds);
  }

  /** A task's message reached the dead-letter queue: the task fails as `poison`. */
  async poison(message: TaskMessage, reason: string, messageId?: string): Promise<void> {
    const result = await this.updates.apply(
      message.jobId,
      (job) => {
        const transition = poisonTask(job, message.task, this.deps.clock.now(), reason, messageId, message.ticket);
        return { write: transition?.job, value: transition };
      },
      { missing: 'undefined' },
    );
    if (!result) return;
    this.log('warn', 'task failed: poison', { jobId: message.jobId, task: message.task });
    await this.send(result.job, result.enqueue);
  }

  /**
   * The sweeper's pass over one job: re-sends the messages of tasks that must have been lost (a
   * crash between a write and its send, a lost local queue); after a restart, resumes every task.
   */
  async sweepOne(id: string, graceSeconds: number, options: { afterRestart?: boolean } = {}): Promise<number> {
    if (options.afterRestart) return this.resume(id);
    const job = await this.deps.store.get(id);
    if (!job) return 0;
    const stranded = strandedTasks(job, this.deps.clock.now(), graceSeconds);
    if (stranded.length === 0) return 0;
    this.log('warn', 'sweeper re-sends stranded tasks', { jobId: id, tasks: stranded });
    return this.resend(id, stranded);
  }

  /** Resumes one job after a restart that lost its messages and workers (see `resumeAfterRestart`). */
  private async resume(id: string): Promise<number> {
    const resumed = await this.updates.apply(
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
    const reissued = await this.updates.apply(
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
}

function verdict(v: Verdict): { kind: 'verdict'; verdict: Verdict } {
  return { kind: 'verdict', verdict: v };
}
