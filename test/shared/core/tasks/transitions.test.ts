import { describe, expect, it } from 'vitest';
import { InvalidStateError } from '../../../../shared/core/errors.js';
import type { Job } from '../../../../shared/core/model.js';
import { abortJob, poisonTask, reissueTickets, resumeAfterRestart } from '../../../../shared/core/tasks/repairs.js';
import {
  completeAttempt,
  completeUnrecorded,
  createJob,
  MAX_ATTEMPT_RECORDS,
  type NewJob,
  startAttempt,
} from '../../../../shared/core/tasks/transitions.js';
import { testProcessor } from '../../../support/processors.js';

const processor = testProcessor('p', {
  timeoutSeconds: 10,
  maxAttempts: 2,
  backoff: { type: 'fixed', delaySeconds: 5 },
});
const t0 = new Date('2026-05-01T10:00:00Z');
const at = (s: number) => new Date(t0.getTime() + s * 1000);
const ok = (result: unknown = 'r') => ({ status: 'ok' as const, result });
const crash = { status: 'error' as const, error: { kind: 'crash' as const, message: 'threw' }, retryable: true };

function make(strategy: NewJob['strategy'], n: number, failFast = false): { job: Job; enqueue: number[] } {
  return createJob(
    { type: 't', strategy, failFast, tasks: Array.from({ length: n }, (_, i) => ({ processor: 'p', input: i })) },
    { jobId: 'j', taskIds: Array.from({ length: n }, (_, i) => `j.${i}`) },
    t0,
    { owner: 'o', requestHash: 'h' },
  );
}

/** A delivery of the task's own message (it carries the ticket the task waits for). */
const own = (job: Job, index: number, messageId: string) => ({ messageId, ticket: job.tasks[index]?.ticket });

function run(job: Job, index: number, messageId: string, when = t0) {
  const decision = startAttempt(job, index, own(job, index, messageId), processor, when, 10);
  if (decision.action !== 'run') throw new Error(`expected run, got ${decision.action}`);
  return decision;
}

describe('creating a job', () => {
  it('queues only the first task of a sequential job and every task of a concurrent one', () => {
    const seq = make('sequential', 3);
    expect(seq.enqueue).toEqual([0]);
    expect(seq.job.tasks.map((t) => t.status)).toEqual(['QUEUED', 'PENDING', 'PENDING']);
    const conc = make('concurrent', 3);
    expect(conc.enqueue).toEqual([0, 1, 2]);
    expect(conc.job.status).toBe('PENDING');
  });
});

describe('starting attempts', () => {
  it('marks the task RUNNING with attempt 1 and a lease, and the job RUNNING', () => {
    const { job, attempt } = run(make('sequential', 1).job, 0, 'm1');
    expect(attempt).toBe(1);
    expect(job.status).toBe('RUNNING');
    expect(job.tasks[0]).toMatchObject({
      status: 'RUNNING',
      attempts: 1,
      lease: { messageId: 'm1', until: at(20).toISOString() },
    });
    expect(job.version).toBe(2);
  });

  it('drops another message for a live attempt, and holds the lease message itself', () => {
    const { job } = run(make('sequential', 1).job, 0, 'm1');
    expect(startAttempt(job, 0, { messageId: 'm2' }, processor, at(5), 10)).toMatchObject({ action: 'drop' });
    expect(startAttempt(job, 0, own(job, 0, 'm1'), processor, at(5), 10)).toEqual({
      action: 'hold',
      delaySeconds: 15,
      reason: 'lease still live',
    });
  });

  it('starts attempt 2 once the lease has lapsed, and fails the task after the last lease lapses', () => {
    const first = run(make('sequential', 1).job, 0, 'm1');
    const second = run(first.job, 0, 'm1', at(21));
    expect(second.attempt).toBe(2);
    const exhausted = startAttempt(second.job, 0, own(second.job, 0, 'm1'), processor, at(42), 10);
    expect(exhausted.action).toBe('settle');
    if (exhausted.action !== 'settle') return;
    expect(exhausted.job.status).toBe('FAILED');
    expect(exhausted.job.tasks[0]?.error).toMatchObject({ kind: 'timeout' });
  });

  it('holds a retrying task until its backoff is over', () => {
    const started = run(make('sequential', 1).job, 0, 'm1');
    const retried = completeAttempt(started.job, 0, 1, crash, processor, at(1));
    if (!retried.applied) throw new Error('expected applied');
    expect(retried.retryDelaySeconds).toBe(5);
    expect(startAttempt(retried.job, 0, own(retried.job, 0, 'm1'), processor, at(3), 10)).toMatchObject({
      action: 'hold',
      delaySeconds: 3,
    });
    expect(startAttempt(retried.job, 0, own(retried.job, 0, 'm1'), processor, at(6), 10)).toMatchObject({
      action: 'run',
      attempt: 2,
    });
  });

  it('resends the successor of a finished task whose message comes back (lost send repair)', () => {
    const started = run(make('sequential', 2).job, 0, 'm1');
    const done = completeAttempt(started.job, 0, 1, ok(), processor, at(1));
    if (!done.applied) throw new Error('expected applied');
    expect(done.enqueue).toEqual([1]);
    expect(startAttempt(done.job, 0, own(done.job, 0, 'm1'), processor, at(2), 10)).toEqual({
      action: 'drop',
      reason: 'task SUCCEEDED',
      enqueue: [1],
    });
  });
});

describe('duplicates of a task message', () => {
  it("runs only the message the task waits for, even while an attempt's start is not written yet", () => {
    // The fast path: the first delivery runs and writes nothing for its first second.
    const { job } = make('sequential', 1);
    expect(startAttempt(job, 0, own(job, 0, 'm1'), processor, t0, 10)).toMatchObject({ action: 'run' });
    // A replayed submit's message (its own ticket), or one without a ticket, arrives meanwhile.
    for (const copy of [{ messageId: 'm2', ticket: 'replayed' }, { messageId: 'm3' }]) {
      expect(startAttempt(job, 0, copy, processor, at(0.5), 10)).toMatchObject({ action: 'drop', enqueue: [] });
    }
  });

  it("resends a finished task's successor only for that task's own message", () => {
    const started = run(make('sequential', 2).job, 0, 'm1');
    const done = completeAttempt(started.job, 0, 1, ok(), processor, at(1));
    expect(startAttempt(done.job!, 0, { messageId: 'm9', ticket: 'other' }, processor, at(2), 10)).toMatchObject({
      action: 'drop',
      enqueue: [],
    });
  });

  it('a resend reissues the ticket: the old message is a duplicate, yet a run it began still counts', () => {
    const { job } = make('sequential', 1);
    const old = own(job, 0, 'm1');
    const reissued = reissueTickets(job, [0], at(300));
    expect(reissued?.enqueue).toEqual([0]);
    const fresh = reissued!.job;
    expect(fresh.tasks[0]?.ticket).not.toBe(job.tasks[0]?.ticket);
    expect(startAttempt(fresh, 0, { ...old, messageId: 'm1' }, processor, at(301), 10)).toMatchObject({
      action: 'drop',
    });
    // The old message had begun just before the reissue: its outcome is applied, not lost.
    const done = completeUnrecorded(fresh, 0, old, ok(), processor, at(299.5), at(300.2), 10);
    expect(done).toMatchObject({ applied: true, attempt: 1 });
    expect(done.job?.tasks[0]).toMatchObject({ status: 'SUCCEEDED', attempts: 1, ticket: fresh.tasks[0]?.ticket });
    // A live lease keeps its ticket: its holder reports back.
    const leased = run(make('sequential', 1).job, 0, 'm1');
    expect(reissueTickets(leased.job, [0], at(1))).toBeUndefined();
  });

  it('keeps a late outcome under the attempt number the processor was given', () => {
    const { job } = make('sequential', 1);
    const aborted = abortJob(job, at(0.3)).job;
    const late = completeUnrecorded(aborted, 0, own(job, 0, 'm1'), ok(), processor, t0, at(0.8), 10, Math.random, 1);
    expect(late).toMatchObject({ applied: false });
    expect(late.job?.tasks[0]).toMatchObject({
      status: 'ABORTED',
      attempts: 1,
      late: [{ attempt: 1, status: 'ok' }],
    });
  });

  it("ignores a duplicate's dead letter", () => {
    const { job } = make('sequential', 1);
    expect(poisonTask(job, 0, at(1), 'dead-lettered', 'm2', 'replayed')).toBeUndefined();
    expect(poisonTask(job, 0, at(1), 'dead-lettered', 'm1', job.tasks[0]?.ticket)?.job.status).toBe('FAILED');
  });
});

describe('the record of attempts', () => {
  const flaky: typeof processor = { ...processor, maxAttempts: 30 };

  it('keeps every attempt: when it ran, how it failed and how long until the next', () => {
    let job = run(make('sequential', 1).job, 0, 'm1').job;
    const boom = (n: number) => ({
      status: 'error' as const,
      error: { kind: 'error' as const, code: 'BUSY', message: `busy ${n}` },
      retryable: true,
    });
    let clock = 0;
    for (let attempt = 1; attempt <= 2; attempt++) {
      const retry = completeAttempt(job, 0, attempt, boom(attempt), flaky, at(clock + 1));
      if (!retry.applied) throw new Error('expected applied');
      clock += 10;
      const again = startAttempt(retry.job, 0, own(retry.job, 0, 'm1'), flaky, at(clock), 10);
      if (again.action !== 'run') throw new Error(again.action);
      job = again.job;
    }
    const done = completeAttempt(job, 0, 3, ok(), flaky, at(clock + 2));
    expect(done.job?.tasks[0]?.tries).toEqual([
      {
        attempt: 1,
        startedAt: t0.toISOString(),
        endedAt: at(1).toISOString(),
        error: { kind: 'error', code: 'BUSY', message: 'busy 1' },
        retryDelaySeconds: 5,
      },
      {
        attempt: 2,
        startedAt: at(10).toISOString(),
        endedAt: at(11).toISOString(),
        error: { kind: 'error', code: 'BUSY', message: 'busy 2' },
        retryDelaySeconds: 5,
      },
      { attempt: 3, startedAt: at(20).toISOString(), endedAt: at(22).toISOString() },
    ]);
  });

  it('records an attempt whose lease lapsed as lost, and nothing for a task done at its first attempt', () => {
    const first = run(make('sequential', 1).job, 0, 'm1');
    const second = run(first.job, 0, 'm1', at(21));
    expect(second.job.tasks[0]?.tries).toEqual([
      {
        attempt: 1,
        startedAt: t0.toISOString(),
        endedAt: at(20).toISOString(),
        error: { kind: 'timeout', message: 'did not report back within its lease' },
      },
    ]);
    const once = completeAttempt(run(make('sequential', 1).job, 0, 'm1').job, 0, 1, ok(), processor, at(1));
    expect(once.job?.tasks[0]).not.toHaveProperty('tries');
  });

  it(`keeps the last ${MAX_ATTEMPT_RECORDS} attempts`, () => {
    let job = run(make('sequential', 1).job, 0, 'm1').job;
    for (let attempt = 1; attempt < 25; attempt++) {
      const retry = completeAttempt(job, 0, attempt, crash, flaky, at(attempt * 10 + 1));
      if (!retry.applied) throw new Error('expected applied');
      const again = startAttempt(retry.job, 0, own(retry.job, 0, 'm1'), flaky, at(attempt * 10 + 10), 10);
      if (again.action !== 'run') throw new Error(again.action);
      job = again.job;
    }
    const tries = completeAttempt(job, 0, 25, ok(), flaky, at(300)).job?.tasks[0]?.tries ?? [];
    expect(tries.map((t) => t.attempt)).toEqual(Array.from({ length: 20 }, (_, i) => i + 6));
  });
});

describe('completing attempts', () => {
  it('fails a task for good on an error reply that is not retryable', () => {
    const started = run(make('concurrent', 2).job, 0, 'm1');
    const failed = completeAttempt(
      started.job,
      0,
      1,
      { status: 'error', error: { kind: 'error', code: 'X', message: 'm' }, retryable: false },
      processor,
      at(1),
    );
    expect(failed.applied && failed.job.tasks[0]?.status).toBe('FAILED');
    expect(failed.job?.status).toBe('RUNNING');
  });

  it('fails a crashing task with kind crash after maxAttempts', () => {
    let job = run(make('sequential', 1).job, 0, 'm1').job;
    const retry = completeAttempt(job, 0, 1, crash, processor, at(1));
    if (!retry.applied) throw new Error();
    job = run(retry.job, 0, 'm1', at(7)).job;
    const last = completeAttempt(job, 0, 2, crash, processor, at(8));
    expect(last.applied && last.job.tasks[0]).toMatchObject({
      status: 'FAILED',
      attempts: 2,
      error: { kind: 'crash' },
    });
    expect(last.job?.status).toBe('FAILED');
  });

  it('refuses a stale attempt and keeps its outcome as history', () => {
    const first = run(make('sequential', 1).job, 0, 'm1');
    const second = run(first.job, 0, 'm1', at(21));
    const zombie = completeAttempt(second.job, 0, 1, ok('old'), processor, at(22));
    expect(zombie).toMatchObject({ applied: false, superseded: true });
    expect(zombie.job?.tasks[0]).toMatchObject({
      status: 'RUNNING',
      attempts: 2,
      late: [{ attempt: 1, status: 'ok' }],
    });
  });

  it('ends a sequential job FAILED and aborts the tasks after the failed one', () => {
    const started = run(make('sequential', 3).job, 0, 'm1');
    const failed = completeAttempt(
      started.job,
      0,
      1,
      { status: 'error', error: { kind: 'error', message: 'no' }, retryable: false },
      processor,
      at(1),
    );
    expect(failed.job?.tasks.map((t) => t.status)).toEqual(['FAILED', 'ABORTED', 'ABORTED']);
    expect(failed.job?.status).toBe('FAILED');
    expect(failed.applied && failed.enqueue).toEqual([]);
  });

  it('with failFast, aborts the unfinished tasks of a concurrent job at the first failure', () => {
    const created = make('concurrent', 3, true).job;
    const a = run(created, 0, 'a');
    const b = run(a.job, 1, 'b');
    const failed = completeAttempt(
      b.job,
      0,
      1,
      { status: 'error', error: { kind: 'error', message: 'no' }, retryable: false },
      processor,
      at(1),
    );
    expect(failed.job?.tasks.map((t) => t.status)).toEqual(['FAILED', 'ABORTED', 'ABORTED']);
    const late = completeAttempt(failed.job!, 1, 1, ok(), processor, at(2));
    expect(late).toMatchObject({ applied: false, superseded: false });
    expect(late.job?.tasks[1]).toMatchObject({ status: 'ABORTED', late: [{ attempt: 1, status: 'ok' }] });
  });
});

describe('abort and poison', () => {
  it('aborts every unfinished task in one step, is idempotent, and refuses finished jobs', () => {
    const started = run(make('concurrent', 2).job, 0, 'm1');
    const { job, changed } = abortJob(started.job, at(1));
    expect(changed).toBe(true);
    expect(job.status).toBe('ABORTED');
    expect(job.tasks.map((t) => t.error?.kind)).toEqual(['aborted', 'aborted']);
    expect(abortJob(job, at(2))).toEqual({ job, changed: false });
    const done = completeAttempt(run(make('sequential', 1).job, 0, 'm').job, 0, 1, ok(), processor, at(1));
    expect(() => abortJob(done.job!, at(2))).toThrow(InvalidStateError);
  });

  it('records a dead-lettered task as poison and lets the strategy go on', () => {
    const { job } = make('sequential', 2);
    const poisoned = poisonTask(job, 0, at(1), 'dead-lettered');
    expect(poisoned?.job.tasks.map((t) => t.status)).toEqual(['FAILED', 'ABORTED']);
    expect(poisoned?.job.tasks[0]?.error).toEqual({ kind: 'poison', message: 'dead-lettered' });
    expect(poisonTask(poisoned!.job, 0, at(2), 'again')).toBeUndefined();
  });
});

describe('resuming after a restart that lost every message and worker', () => {
  it('lapses a live lease so the re-sent message starts the next attempt, which fences the old one', () => {
    const { job: running } = run(make('concurrent', 2).job, 0, 'm1');
    const resumed = resumeAfterRestart(running, at(3));
    expect(resumed?.send).toEqual([
      { index: 0, delaySeconds: 0 },
      { index: 1, delaySeconds: 0 },
    ]);
    expect(resumed?.job.tasks[0]?.lease?.until).toBe(at(3).toISOString());
    const ticket = resumed?.job.tasks[0]?.ticket;
    const next = startAttempt(resumed?.job as Job, 0, { messageId: 'm2', ticket }, processor, at(3), 10);
    expect(next).toMatchObject({ action: 'run', attempt: 2 });
    // The first worker's late word is refused: attempt 1 is fenced.
    const late = completeAttempt((next as { job: Job }).job, 0, 1, ok(), processor, at(4), () => 0, 'm1');
    expect(late.applied).toBe(false);
  });

  it('sends every unfinished task under a new ticket, a retrying one when it is due, and nothing for a finished job', () => {
    const { job } = make('sequential', 1);
    const fresh = resumeAfterRestart(job, at(1));
    expect(fresh?.send).toEqual([{ index: 0, delaySeconds: 0 }]);
    // A new ticket: the message sent now is the one the task waits for.
    expect(fresh?.job.tasks[0]?.ticket).not.toBe(job.tasks[0]?.ticket);
    const retrying = structuredClone(job);
    retrying.tasks[0]!.status = 'RETRYING';
    retrying.tasks[0]!.retryAt = at(30).toISOString();
    expect(resumeAfterRestart(retrying, at(10))?.send).toEqual([{ index: 0, delaySeconds: 20 }]);
    const done = { ...structuredClone(job), status: 'SUCCEEDED' as const };
    expect(resumeAfterRestart(done, at(1))).toBeUndefined();
  });
});
