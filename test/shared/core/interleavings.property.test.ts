import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidStateError } from '../../../shared/core/errors.js';
import { isTerminal, type Job, type Strategy } from '../../../shared/core/model.js';
import type { Processor } from '../../../shared/core/processors.js';
import {
  type AttemptOutcome,
  abortJob,
  completeAttempt,
  completeUnrecorded,
  createJob,
  poisonTask,
  startAttempt,
} from '../../../shared/core/transitions.js';

/**
 * Drives the pure core the way SQS and the workers would, with every fault at once: messages
 * delivered twice or sent twice, workers that die (and come back as zombies), outcomes of every
 * kind, aborts at any moment and a clock that jumps. After every step the invariants of the
 * product must hold; after the faults stop, every job must end terminal.
 */

const processor: Processor = {
  name: 'p',
  kind: 'tasks',
  target: { type: 'lambda', functionName: 'p' },
  timeoutSeconds: 5,
  maxAttempts: 3,
  backoff: { type: 'fixed', delaySeconds: 1 },
};
const MARGIN = 1;
const MAX_RECEIVES = 10;

interface Message {
  id: string;
  task: number;
  visibleAt: number;
  receives: number;
}
interface Worker {
  messageId: string;
  task: number;
  /** Set once the attempt's start is written; a fast attempt never writes it. */
  attempt?: number;
  startedAt: number;
}

/** The queue's own visibility: what a message keeps while a fast attempt has written no lease. */
const QUEUE_VISIBILITY_MS = 1800_000;

type OutcomeKind = 'ok' | 'error' | 'retryable' | 'crash' | 'timeout';
type Step =
  | { kind: 'deliver'; pick: number; fast: boolean }
  | { kind: 'promote'; pick: number }
  | { kind: 'complete'; pick: number; outcome: OutcomeKind }
  | { kind: 'zombie'; pick: number; outcome: OutcomeKind }
  | { kind: 'die'; pick: number }
  | { kind: 'duplicateSend'; pick: number }
  | { kind: 'redeliverNow'; pick: number }
  | { kind: 'abort' }
  | { kind: 'tick'; ms: number };

function toOutcome(kind: OutcomeKind, attempt: number): AttemptOutcome {
  switch (kind) {
    case 'ok':
      return { status: 'ok', result: { attempt } };
    case 'error':
      return { status: 'error', error: { kind: 'error', code: 'E', message: 'no' }, retryable: false };
    case 'retryable':
      return { status: 'error', error: { kind: 'error', message: 'again' }, retryable: true };
    case 'crash':
      return { status: 'error', error: { kind: 'crash', message: 'threw' }, retryable: true };
    case 'timeout':
      return { status: 'error', error: { kind: 'timeout', message: 'slow' }, retryable: true };
  }
}

class Simulation {
  job: Job;
  now = Date.parse('2026-01-01T00:00:00Z');
  messages: Message[] = [];
  workers: Worker[] = [];
  zombies: Worker[] = [];
  private ids = 0;
  /** Per task, how many times it went from unfinished to finished. */
  private finishes: number[];
  private readonly terminalSnapshot = new Map<number, string>();
  private jobTerminal: string | undefined;

  constructor(strategy: Strategy, failFast: boolean, taskCount: number) {
    const created = createJob(
      { type: 't', strategy, failFast, tasks: Array.from({ length: taskCount }, () => ({ processor: 'p', input: 1 })) },
      { jobId: 'j', taskIds: Array.from({ length: taskCount }, (_, i) => `j.${i}`) },
      new Date(this.now),
      { owner: 'o', requestHash: 'h' },
    );
    this.job = created.job;
    this.finishes = Array(taskCount).fill(0);
    this.send(created.enqueue);
    this.check();
  }

  private date() {
    return new Date(this.now);
  }

  private send(tasks: number[]) {
    for (const task of tasks) this.messages.push({ id: `m${++this.ids}`, task, visibleAt: this.now, receives: 0 });
  }

  private remove(id: string) {
    this.messages = this.messages.filter((m) => m.id !== id);
  }

  private write(next: Job) {
    const before = this.job;
    expect(next.version).toBe(before.version + 1);
    next.tasks.forEach((task, i) => {
      if (!isTerminal(before.tasks[i]!.status) && isTerminal(task.status)) this.finishes[i]! += 1;
    });
    this.job = next;
    this.check();
  }

  /** The product's invariants, checked after every write. */
  check() {
    const job = this.job;
    // Terminal states never change.
    const jobSnapshot = JSON.stringify({ status: job.status, endedAt: job.endedAt });
    if (this.jobTerminal) expect(jobSnapshot).toBe(this.jobTerminal);
    if (isTerminal(job.status)) this.jobTerminal = jobSnapshot;
    job.tasks.forEach((task, i) => {
      const snapshot = JSON.stringify({ s: task.status, r: task.result, e: task.error, end: task.endedAt });
      const seen = this.terminalSnapshot.get(i);
      if (seen) expect(snapshot).toBe(seen);
      if (isTerminal(task.status)) this.terminalSnapshot.set(i, snapshot);
      expect(task.attempts).toBeLessThanOrEqual(processor.maxAttempts);
    });
    // No task finished twice.
    for (const count of this.finishes) expect(count).toBeLessThanOrEqual(1);
    // Counts add up and the job's status agrees with its tasks.
    if (isTerminal(job.status)) {
      expect(job.tasks.every((t) => isTerminal(t.status))).toBe(true);
      if (job.status === 'SUCCEEDED') expect(job.tasks.every((t) => t.status === 'SUCCEEDED')).toBe(true);
      if (job.status === 'FAILED') expect(job.tasks.some((t) => t.status === 'FAILED')).toBe(true);
    } else {
      expect(job.tasks.some((t) => !isTerminal(t.status))).toBe(true);
    }
    if (job.strategy === 'sequential') {
      // A task has started only if every task before it succeeded.
      job.tasks.forEach((task, i) => {
        if (task.attempts > 0) expect(job.tasks.slice(0, i).every((t) => t.status === 'SUCCEEDED')).toBe(true);
      });
    }
  }

  deliver(message: Message, fast = false) {
    message.receives++;
    if (message.receives > MAX_RECEIVES) {
      // Redrive: the dead-letter consumer records poison.
      this.remove(message.id);
      const poisoned = poisonTask(this.job, message.task, this.date(), 'dead-lettered');
      if (poisoned) {
        this.write(poisoned.job);
        this.send(poisoned.enqueue);
      }
      return;
    }
    const decision = startAttempt(this.job, message.task, { messageId: message.id }, processor, this.date(), MARGIN);
    switch (decision.action) {
      case 'run':
        if (fast) {
          // The engine's fast path: nothing is written until the outcome.
          message.visibleAt = this.now + QUEUE_VISIBILITY_MS;
          this.workers.push({ messageId: message.id, task: message.task, startedAt: this.now });
          return;
        }
        this.write(decision.job);
        message.visibleAt = this.now + (processor.timeoutSeconds + MARGIN) * 1000;
        this.workers.push({
          messageId: message.id,
          task: message.task,
          attempt: decision.attempt,
          startedAt: this.now,
        });
        return;
      case 'hold':
        message.visibleAt = this.now + decision.delaySeconds * 1000;
        return;
      case 'drop':
        this.remove(message.id);
        this.send(decision.enqueue);
        return;
      case 'settle':
        this.write(decision.job);
        this.remove(message.id);
        this.send(decision.enqueue);
        return;
    }
  }

  /** The engine writes the start of an attempt still running after a moment (and sets its lease). */
  promote(worker: Worker) {
    if (worker.attempt !== undefined) return;
    const decision = startAttempt(
      this.job,
      worker.task,
      { messageId: worker.messageId },
      processor,
      new Date(worker.startedAt),
      MARGIN,
    );
    if (decision.action !== 'run') return;
    this.write(decision.job);
    worker.attempt = decision.attempt;
    const message = this.messages.find((m) => m.id === worker.messageId);
    if (message) message.visibleAt = this.now + (processor.timeoutSeconds + MARGIN) * 1000;
  }

  complete(worker: Worker, kind: OutcomeKind) {
    const before = this.job.tasks[worker.task]!;
    const holder = before.attempts;
    const recorded = worker.attempt !== undefined;
    const outcome = toOutcome(kind, worker.attempt ?? holder + 1);
    const result = recorded
      ? completeAttempt(
          this.job,
          worker.task,
          worker.attempt as number,
          outcome,
          processor,
          this.date(),
          () => 0.5,
          worker.messageId,
        )
      : completeUnrecorded(
          this.job,
          worker.task,
          { messageId: worker.messageId },
          outcome,
          processor,
          new Date(worker.startedAt),
          this.date(),
          MARGIN,
          () => 0.5,
        );
    const current = this.job;
    const task = current.tasks[worker.task]!;
    const disposable =
      isTerminal(current.status) ||
      isTerminal(task.status) ||
      (task.status === 'RUNNING' &&
        task.lease !== undefined &&
        task.lease.messageId !== worker.messageId &&
        Date.parse(task.lease.until) > this.now);
    if (result.job) this.write(result.job);
    const message = this.messages.find((m) => m.id === worker.messageId);
    if (!result.applied) {
      const remove = recorded ? !result.superseded : disposable;
      if (remove && message) this.remove(message.id);
      else if (!recorded && message && task.lease?.messageId !== worker.messageId) {
        // Still needed but nobody's lease: it comes back when the task is due.
        message.visibleAt = Math.max(this.now + 1000, task.retryAt ? Date.parse(task.retryAt) : 0);
      }
      return;
    }
    // Only the attempt that holds the task may change it: a stale (zombie) attempt is fenced off.
    if (recorded) expect(worker.attempt).toBe(holder);
    else expect((result as { attempt?: number }).attempt).toBe(holder + 1);
    this.send(result.enqueue);
    if (!message) return;
    if (result.retryDelaySeconds !== undefined) message.visibleAt = this.now + result.retryDelaySeconds * 1000;
    else this.remove(message.id);
  }

  step(step: Step) {
    const visible = this.messages.filter((m) => m.visibleAt <= this.now);
    switch (step.kind) {
      case 'deliver':
        if (visible.length) this.deliver(visible[step.pick % visible.length]!, step.fast);
        return;
      case 'promote':
        if (this.workers.length) this.promote(this.workers[step.pick % this.workers.length]!);
        return;
      case 'complete': {
        if (!this.workers.length) return;
        const [worker] = this.workers.splice(step.pick % this.workers.length, 1);
        this.complete(worker!, step.outcome);
        return;
      }
      case 'die':
        if (this.workers.length) this.zombies.push(...this.workers.splice(step.pick % this.workers.length, 1));
        return;
      case 'zombie': {
        if (!this.zombies.length) return;
        const [zombie] = this.zombies.splice(step.pick % this.zombies.length, 1);
        this.complete(zombie!, step.outcome);
        return;
      }
      case 'duplicateSend':
        if (this.messages.length) this.send([this.messages[step.pick % this.messages.length]!.task]);
        return;
      case 'redeliverNow':
        if (this.messages.length) this.messages[step.pick % this.messages.length]!.visibleAt = this.now;
        return;
      case 'abort':
        try {
          const { job, changed } = abortJob(this.job, this.date());
          if (changed) this.write(job);
        } catch (error) {
          expect(error).toBeInstanceOf(InvalidStateError);
          expect(['SUCCEEDED', 'FAILED']).toContain(this.job.status);
        }
        return;
      case 'tick':
        this.now += step.ms;
        return;
    }
  }

  /** No more faults: workers finish, time passes, messages are delivered, until nothing is left. */
  drain() {
    for (let i = 0; i < 2000; i++) {
      if (this.workers.length) {
        this.complete(this.workers.shift()!, 'ok');
        continue;
      }
      const visible = this.messages.find((m) => m.visibleAt <= this.now);
      if (visible) {
        this.deliver(visible);
        continue;
      }
      if (!this.messages.length) return;
      this.now = Math.min(...this.messages.map((m) => m.visibleAt));
    }
    throw new Error('did not settle');
  }
}

const outcomeKind = fc.constantFrom<OutcomeKind>('ok', 'ok', 'error', 'retryable', 'crash', 'timeout');
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('deliver' as const), pick: fc.nat(), fast: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('promote' as const), pick: fc.nat() }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('complete' as const), pick: fc.nat(), outcome: outcomeKind }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('die' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('zombie' as const), pick: fc.nat(), outcome: outcomeKind }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('duplicateSend' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('redeliverNow' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'abort' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 8000 }) }) },
);

describe('the core under random interleavings of deliveries, duplicates, crashes, timeouts and aborts', () => {
  it('keeps every invariant and ends every job terminal', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<Strategy>('sequential', 'concurrent'),
        fc.boolean(),
        fc.integer({ min: 1, max: 5 }),
        fc.array(stepArb, { maxLength: 120 }),
        (strategy, failFast, taskCount, steps) => {
          const sim = new Simulation(strategy, strategy === 'concurrent' && failFast, taskCount);
          for (const step of steps) sim.step(step);
          sim.drain();
          expect(isTerminal(sim.job.status)).toBe(true);
          expect(sim.messages).toEqual([]);
        },
      ),
      { numRuns: 400 },
    );
  });
});
