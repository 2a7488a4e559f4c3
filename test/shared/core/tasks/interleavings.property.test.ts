import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidStateError } from '../../../../shared/core/errors.js';
import { isTerminal, type Job, type Strategy } from '../../../../shared/core/model.js';
import { abortJob, poisonTask, reissueTickets } from '../../../../shared/core/tasks/repairs.js';
import {
  type AttemptOutcome,
  completeAttempt,
  completeUnrecorded,
  createJob,
  holdsTicket,
  startAttempt,
} from '../../../../shared/core/tasks/transitions.js';
import { testProcessor } from '../../../support/processors.js';

/**
 * Drives the pure core the way SQS and the workers would, with every fault at once: messages
 * delivered twice or sent twice, workers that die (and come back as zombies), outcomes of every
 * kind, aborts at any moment and a clock that jumps. After every step the invariants of the
 * product must hold; after the faults stop, every job must end terminal.
 *
 * Duplicates come as the engine would meet them: a replayed submit's message (a ticket of its
 * own), SQS's own copy of a message (same id, same ticket), and resends under a reissued ticket
 * (the sweeper's, the lost-send repair's), held back past an attempt's first second. Time only
 * passes on `tick`, so everything between two ticks lands within one attempt's unwritten first
 * second; a tick promotes (writes the start of) every live attempt older than a second, as the
 * engine's timer does.
 */

const processor = testProcessor('p');
const MARGIN = 1;
const MAX_RECEIVES = 10;

/** One physical copy of a message: SQS's own duplicates share the id (and ticket), not the key. */
interface Message {
  key: string;
  id: string;
  task: number;
  ticket?: string;
  visibleAt: number;
  /** Sent with a delay: not receivable before this, whatever else happens to it. */
  notBefore: number;
  receives: number;
}
interface Worker {
  messageId: string;
  key: string;
  ticket?: string;
  task: number;
  /** Set once the attempt's start is written; a fast attempt never writes it. */
  attempt?: number;
  /** The attempt number the processor was given. */
  told: number;
  startedAt: number;
}

/** How long the engine holds back a resend under a reissued ticket (ms). */
const RESEND_DELAY_MS = 3000;
/** The engine writes an attempt's start once it has run this long. */
const RECORD_START_AFTER_MS = 1000;

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
  | { kind: 'sqsCopy'; pick: number }
  | { kind: 'sweep'; pick: number }
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

  private send(tasks: number[], delayMs = 0, ticket?: (task: number) => string | undefined) {
    for (const task of tasks) {
      const id = `m${++this.ids}`;
      this.messages.push({
        key: id,
        id,
        task,
        ticket: ticket ? ticket(task) : this.job.tasks[task]?.ticket,
        visibleAt: this.now + delayMs,
        notBefore: this.now + delayMs,
        receives: 0,
      });
    }
  }

  /** The engine's resend: new tickets written first, the messages held back. */
  resend(tasks: number[]) {
    const reissued = tasks.length ? reissueTickets(this.job, tasks, this.date()) : undefined;
    if (!reissued) return;
    this.write(reissued.job);
    this.send(reissued.enqueue, RESEND_DELAY_MS);
  }

  private remove(key: string) {
    this.messages = this.messages.filter((m) => m.key !== key);
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
    // Late outcomes are of attempts the task counted, each once.
    for (const task of job.tasks) {
      const late = (task.late ?? []).map((l) => l.attempt);
      expect(new Set(late).size).toBe(late.length);
      for (const attempt of late) expect(attempt).toBeLessThanOrEqual(task.attempts);
    }
    this.checkRuns();
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

  /**
   * No two live runs of one attempt of a task, unless they are SQS's own copies of one message
   * (same id and ticket) within the first second: nothing tells those apart without a write.
   * Dead workers (zombies) are fenced by the attempt that follows them.
   */
  checkRuns() {
    const seen = new Map<string, Worker>();
    for (const worker of this.workers) {
      const slot = `${worker.task}#${worker.told}`;
      const other = seen.get(slot);
      if (other && other.messageId !== worker.messageId) {
        expect(`${other.messageId} and ${worker.messageId} both run ${slot}`).toBe(`${worker.messageId} only`);
      }
      if (!other) seen.set(slot, worker);
    }
  }

  deliver(message: Message, fast = false) {
    message.receives++;
    if (message.receives > MAX_RECEIVES) {
      // Redrive: the dead-letter consumer records poison.
      this.remove(message.key);
      const poisoned = poisonTask(this.job, message.task, this.date(), 'dead-lettered', message.id, message.ticket);
      if (poisoned) {
        this.write(poisoned.job);
        this.send(poisoned.enqueue);
      }
      return;
    }
    const delivery = { messageId: message.id, ...(message.ticket !== undefined ? { ticket: message.ticket } : {}) };
    const decision = startAttempt(this.job, message.task, delivery, processor, this.date(), MARGIN);
    const worker = { messageId: message.id, key: message.key, ticket: message.ticket, task: message.task };
    switch (decision.action) {
      case 'run':
        if (fast) {
          // The engine's fast path: nothing is written until the outcome.
          message.visibleAt = this.now + QUEUE_VISIBILITY_MS;
          this.workers.push({ ...worker, told: decision.attempt, startedAt: this.now });
          this.checkRuns();
          return;
        }
        this.write(decision.job);
        message.visibleAt = this.now + (processor.timeoutSeconds + MARGIN) * 1000;
        this.workers.push({ ...worker, attempt: decision.attempt, told: decision.attempt, startedAt: this.now });
        this.checkRuns();
        return;
      case 'hold':
        message.visibleAt = this.now + decision.delaySeconds * 1000;
        return;
      case 'drop':
        this.remove(message.key);
        this.resend(decision.enqueue);
        return;
      case 'settle':
        this.write(decision.job);
        this.remove(message.key);
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
      { messageId: worker.messageId, ...(worker.ticket !== undefined ? { ticket: worker.ticket } : {}) },
      processor,
      new Date(worker.startedAt),
      MARGIN,
      true,
    );
    if (decision.action !== 'run') return;
    this.write(decision.job);
    worker.attempt = decision.attempt;
    const message = this.messages.find((m) => m.key === worker.key);
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
          { messageId: worker.messageId, ...(worker.ticket !== undefined ? { ticket: worker.ticket } : {}) },
          outcome,
          processor,
          new Date(worker.startedAt),
          this.date(),
          MARGIN,
          () => 0.5,
          worker.told,
        );
    const current = this.job;
    const task = current.tasks[worker.task]!;
    const disposable =
      isTerminal(current.status) ||
      isTerminal(task.status) ||
      !holdsTicket(task, worker) ||
      (task.status === 'RUNNING' &&
        task.lease !== undefined &&
        task.lease.messageId !== worker.messageId &&
        Date.parse(task.lease.until) > this.now);
    if (result.job) this.write(result.job);
    const message = this.messages.find((m) => m.key === worker.key);
    if (!result.applied) {
      const remove = recorded ? !result.superseded : disposable;
      if (remove && message) this.remove(message.key);
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
    const carrier = holdsTicket(result.job.tasks[worker.task]!, worker);
    if (result.retryDelaySeconds !== undefined && carrier)
      message.visibleAt = this.now + result.retryDelaySeconds * 1000;
    else this.remove(message.key);
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
        // A replayed submit's message, or any other sent without the task's ticket.
        if (this.messages.length)
          this.send([this.messages[step.pick % this.messages.length]!.task], 0, () => `replayed-${this.ids}`);
        return;
      case 'sqsCopy': {
        if (!this.messages.length) return;
        const original = this.messages[step.pick % this.messages.length]!;
        const visibleAt = Math.max(this.now, original.notBefore);
        this.messages.push({ ...original, key: `${original.key}'${++this.ids}`, visibleAt, receives: 0 });
        return;
      }
      case 'sweep':
        this.resend([step.pick % this.job.tasks.length]);
        return;
      case 'redeliverNow':
        if (this.messages.length) {
          const message = this.messages[step.pick % this.messages.length]!;
          message.visibleAt = Math.max(this.now, message.notBefore);
        }
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
        this.promoteDue(this.now + step.ms);
        this.now += step.ms;
        return;
    }
  }

  /** What the engine's timer does: an attempt running for a second gets its start written. */
  promoteDue(until: number) {
    for (const worker of [...this.workers]) {
      if (worker.attempt === undefined && worker.startedAt + RECORD_START_AFTER_MS <= until) this.promote(worker);
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
      const next = Math.min(...this.messages.map((m) => m.visibleAt));
      this.promoteDue(next);
      this.now = next;
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
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('sqsCopy' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('sweep' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('redeliverNow' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'abort' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 8000 }) }) },
);

describe('the core under random interleavings of deliveries, duplicates, crashes, timeouts and aborts', () => {
  it("runs nothing for a duplicate that arrives within an attempt's first second, whatever sent it", () => {
    for (const duplicate of [{ kind: 'duplicateSend', pick: 0 } as const, { kind: 'sweep', pick: 0 } as const]) {
      const sim = new Simulation('sequential', false, 1);
      sim.step({ kind: 'deliver', pick: 0, fast: true });
      sim.step(duplicate);
      // The sweeper's resend is held back past the first second; a replay's copy is not.
      sim.step({ kind: 'tick', ms: duplicate.kind === 'sweep' ? 3000 : 0 });
      sim.step({ kind: 'deliver', pick: 0, fast: true });
      expect(sim.workers).toHaveLength(1);
      sim.drain();
      expect(sim.job.tasks[0]).toMatchObject({ status: 'SUCCEEDED', attempts: 1 });
      expect(sim.job.tasks[0]?.late).toBeUndefined();
    }
  });

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
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 400) },
    );
  });
});
