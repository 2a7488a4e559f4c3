import { afterEach, describe, expect, it, vi } from 'vitest';
import { IdempotencyMismatchError, InvalidStateError, NotFoundError } from '../../../../shared/core/errors.js';
import type { Job } from '../../../../shared/core/model.js';
import { type Processor, ProcessorRegistry } from '../../../../shared/core/processors.js';
import type { TaskMessage } from '../../../../shared/core/schemas.js';
import { type AttemptOutcome, createJob, type Transition } from '../../../../shared/core/tasks/transitions.js';
import { taskJobs } from '../../../support/engines.js';
import { type Envelope, Gate, memoryPorts, waitFor } from '../../../support/memory/index.js';
import { testProcessor } from '../../../support/processors.js';

/**
 * The task engine's use cases on the in-memory ports: each test is a scenario from a job's life,
 * and every path of `runTask` that decides what becomes of the message (delete it, bring it back
 * after a delay, or leave it to the attempt whose lease it is) is one of them.
 *
 * Real time passes only where the engine waits on a timer of its own (the look again for a job not
 * written yet, a long run's start after `recordStartAfterMs`, a processor's deadline), all short here;
 * the manual clock jumps past leases, backoffs and grace periods.
 */

const processor = (name: string, over: Partial<Processor> = {}): Processor =>
  testProcessor(name, { backoff: { type: 'fixed', delaySeconds: 7 }, ...over });
const echo = processor('echo');
/** One attempt only. */
const once = processor('once', { maxAttempts: 1 });
/** Answers within 50 ms or is cut off. */
const quick = processor('quick', { timeoutSeconds: 0.05 });
const MARGIN = 10;

function world(options: { processors?: Processor[]; recordStartAfterMs?: number } = {}) {
  const ports = memoryPorts();
  const logs: { level: string; message: string }[] = [];
  const engineWith = (processors: Processor[], recordStartAfterMs = options.recordStartAfterMs ?? 20) =>
    taskJobs({
      store: ports.store,
      queue: ports.queue,
      invoker: ports.invoker,
      payloads: ports.payloads,
      processors: new ProcessorRegistry(processors),
      clock: ports.clock,
      leaseMarginSeconds: MARGIN,
      recordStartAfterMs,
      log: (level, message) => logs.push({ level, message }),
    });
  const engine = engineWith(options.processors ?? [echo, once, quick]);
  const deliver = (
    envelope: Envelope,
    hooks?: { onLease?: (seconds: number) => Promise<void>; signal?: AbortSignal },
    by = engine,
  ) =>
    by.runTask(envelope.body as TaskMessage, { messageId: envelope.messageId, sentAt: envelope.sentAt }, hooks ?? {});
  const job = async (id: string) => (await ports.store.get(id)) as Job;
  const submit = async (tasks: { processor: string; input?: unknown }[], more: Record<string, unknown> = {}) =>
    (await engine.submit({ type: 'report', tasks, ...more }, 'alice')).job as Job;
  /** The pending message of task `task`. */
  const take = (task = 0) => ports.queue.take((body) => 'task' in body && body.task === task);
  return { ...ports, engine, engineWith, logs, deliver, job, submit, take };
}

const ALICE = { owner: 'alice', admin: false };

afterEach(() => {
  vi.restoreAllMocks();
});

describe('a message whose job is not written yet', () => {
  it('looks once more, then comes back in 2 s while young (its job is about to be written)', async () => {
    const w = world();
    await w.queue.send([{ jobId: 'job-not-yet', task: 0, ticket: 't' }]);
    expect(await w.deliver(w.take())).toEqual({ kind: 'retry', delaySeconds: 2 });
    expect(w.invoker.calls).toHaveLength(0);
  });

  it('runs when the job is written while the worker looks again', async () => {
    const w = world();
    // What a submission does: the message goes out first, the job is written a moment later.
    const prepared = w.engine.prepare({ type: 'report', tasks: [{ processor: 'echo', input: 'hi' }] }, 'alice');
    const { job } = prepared as Transition;
    await w.queue.send([{ jobId: job.id, task: 0, ticket: job.tasks[0]!.ticket! }]);
    const verdict = w.deliver(w.take());
    setTimeout(() => void w.store.create(job), 50);
    expect(await verdict).toEqual({ kind: 'done' });
    expect((await w.job(job.id)).tasks[0]).toMatchObject({ status: 'SUCCEEDED', result: 'hi' });
  });

  it('is dropped once older than the grace period (its job was never written)', async () => {
    const w = world();
    await w.queue.send([{ jobId: 'job-never', task: 0, ticket: 't' }]);
    w.clock.advance(61_000);
    expect(await w.deliver(w.take())).toEqual({ kind: 'done' });
    expect(w.logs).toContainEqual({ level: 'warn', message: 'message for an unknown job dropped' });
  });
});

describe('a message the job has no run for', () => {
  it('names a task the job does not have: dropped, the job untouched', async () => {
    const w = world();
    const job = await w.submit([{ processor: 'echo' }]);
    await w.queue.send([{ jobId: job.id, task: 5 }]);
    expect(await w.deliver(w.take(5))).toEqual({ kind: 'done' });
    expect(await w.job(job.id)).toEqual(job);
  });

  it('names a processor this worker does not know: the task fails (UNKNOWN_PROCESSOR), not loops forever', async () => {
    const w = world({ processors: [echo, processor('renamed')] });
    const job = await w.submit([{ processor: 'renamed' }, { processor: 'echo' }]);
    const worker = w.engineWith([echo]);
    expect(await w.deliver(w.take(), {}, worker)).toEqual({ kind: 'done' });
    const failed = await w.job(job.id);
    expect(failed.status).toBe('FAILED');
    expect(failed.tasks[0]?.error).toMatchObject({ kind: 'crash', code: 'UNKNOWN_PROCESSOR' });
    expect(failed.tasks[1]?.status).toBe('ABORTED');
    expect(w.invoker.calls).toHaveLength(0);
  });

  it('comes from a replayed submission (not the ticket its task waits for): dropped, nothing runs', async () => {
    const w = world();
    const job = await w.submit([{ processor: 'echo' }]);
    await w.queue.send([{ jobId: job.id, task: 0, ticket: 'another-requests-ticket' }]);
    const stray = w.queue.take((body) => 'ticket' in body && body.ticket === 'another-requests-ticket');
    expect(await w.deliver(stray)).toEqual({ kind: 'done' });
    expect(w.invoker.calls).toHaveLength(0);
    expect((await w.job(job.id)).tasks[0]?.status).toBe('QUEUED');
  });
});

describe('a task that runs', () => {
  it('succeeds: the message is deleted, the result kept, and the next task of a sequential job queued', async () => {
    const w = world();
    const job = await w.submit([
      { processor: 'echo', input: { n: 1 } },
      { processor: 'echo', input: { n: 2 } },
    ]);
    expect(await w.deliver(w.take(0))).toEqual({ kind: 'done' });
    expect(w.invoker.calls[0]?.request).toEqual({
      job: { id: job.id, type: 'report' },
      task: { id: job.tasks[0]!.id, processor: 'echo', attempt: 1, input: { n: 1 } },
    });
    const after = await w.job(job.id);
    expect(after.tasks.map((t) => t.status)).toEqual(['SUCCEEDED', 'QUEUED']);
    expect(after.tasks[0]?.result).toEqual({ n: 1 });
    // The one write of a fast task: its start and outcome together.
    expect(after.version).toBe(2);
    const next = w.take(1);
    expect(next.body).toEqual({ jobId: job.id, task: 1, ticket: after.tasks[1]!.ticket });
    expect(await w.deliver(next)).toEqual({ kind: 'done' });
    expect((await w.job(job.id)).status).toBe('SUCCEEDED');
  });

  it('repairs a lost send of the next task: the finished task’s message, back again, re-sends it', async () => {
    const w = world();
    const job = await w.submit([{ processor: 'echo' }, { processor: 'echo' }]);
    const first = w.take();
    // The outcome is written, then the send of the next task's message fails (the worker dies).
    w.queue.failNextSend();
    await expect(w.deliver(first)).rejects.toThrow('queue unavailable');
    expect((await w.job(job.id)).tasks.map((t) => t.status)).toEqual(['SUCCEEDED', 'QUEUED']);
    expect(await w.deliver(first)).toEqual({ kind: 'done' });
    const next = w.take(1);
    expect(next.delaySeconds).toBe(3);
    expect(await w.deliver(next)).toEqual({ kind: 'done' });
    expect((await w.job(job.id)).status).toBe('SUCCEEDED');
    expect(w.invoker.calls).toHaveLength(2);
  });

  it('reads an input kept apart (claim-check) and hands the processor its value', async () => {
    const w = world();
    const { job } = createJob(
      { type: 'report', strategy: 'sequential', failFast: false, tasks: [{ processor: 'echo' }] },
      { jobId: 'job-large-input', taskIds: ['job-large-input.0'] },
      w.clock.now(),
      { owner: 'alice', requestHash: 'h' },
    );
    job.tasks[0]!.inputRef = w.payloads.offload(job.id, 'input-0', { rows: 'x'.repeat(1000) });
    w.store.put(job);
    await w.queue.send([{ jobId: job.id, task: 0, ticket: job.tasks[0]!.ticket! }]);
    expect(await w.deliver(w.take())).toEqual({ kind: 'done' });
    expect(w.invoker.calls[0]?.request.task.input).toEqual({ rows: 'x'.repeat(1000) });
  });

  it('fails for good on a final error: the rest of a sequential job is aborted and nothing more is sent', async () => {
    const w = world();
    w.invoker.reply('echo', {
      status: 'error',
      error: { kind: 'error', code: 'BAD_INPUT', message: 'cannot read it' },
      retryable: false,
    });
    const job = await w.submit([{ processor: 'echo' }, { processor: 'echo' }]);
    expect(await w.deliver(w.take())).toEqual({ kind: 'done' });
    const failed = await w.job(job.id);
    expect(failed.status).toBe('FAILED');
    expect(failed.tasks[0]?.error).toEqual({ kind: 'error', code: 'BAD_INPUT', message: 'cannot read it' });
    expect(failed.tasks[1]?.status).toBe('ABORTED');
    expect(w.queue.pending).toHaveLength(0);
  });

  it('retries a retryable error after its backoff: the message comes back when the retry is due', async () => {
    const w = world();
    w.invoker.reply('echo', { status: 'error', error: { kind: 'error', message: 'busy' }, retryable: true });
    const job = await w.submit([{ processor: 'echo', input: 'again' }]);
    const message = w.take();
    expect(await w.deliver(message)).toEqual({ kind: 'retry', delaySeconds: 7 });
    expect((await w.job(job.id)).tasks[0]).toMatchObject({ status: 'RETRYING', error: { message: 'busy' } });

    // Back early (its visibility change was lost): held for the rest of the backoff.
    w.clock.advance(3000);
    expect(await w.deliver(message)).toEqual({ kind: 'retry', delaySeconds: 4 });
    expect(w.invoker.calls).toHaveLength(1);

    w.clock.advance(4000);
    expect(await w.deliver(message)).toEqual({ kind: 'done' });
    const done = await w.job(job.id);
    expect(done.tasks[0]).toMatchObject({ status: 'SUCCEEDED', attempts: 2, result: 'again' });
    expect(w.invoker.calls.map((c) => c.request.task.attempt)).toEqual([1, 2]);
  });

  it('records a thrown invoker error as a crash and retries it', async () => {
    const w = world();
    w.invoker.reply('echo', { throws: new Error('socket hang up') });
    const job = await w.submit([{ processor: 'echo' }]);
    expect(await w.deliver(w.take())).toEqual({ kind: 'retry', delaySeconds: 7 });
    expect((await w.job(job.id)).tasks[0]?.error).toMatchObject({ kind: 'crash', message: 'Error: socket hang up' });
  });
});

describe('a processor that does not answer in time', () => {
  it('is cut off at its deadline: the attempt counts as a timeout and is retried', async () => {
    const w = world();
    w.invoker.reply('quick', { hang: true });
    const job = await w.submit([{ processor: 'quick' }]);
    expect(await w.deliver(w.take())).toEqual({ kind: 'retry', delaySeconds: 7 });
    expect(w.invoker.calls[0]?.signal.aborted).toBe(true);
    expect((await w.job(job.id)).tasks[0]).toMatchObject({
      status: 'RETRYING',
      error: { kind: 'timeout', message: 'no reply within 0.05 s' },
    });
  });

  it('is a crash, not a timeout, when the worker itself runs out of time first', async () => {
    const w = world();
    w.invoker.reply('echo', { hang: true });
    const job = await w.submit([{ processor: 'echo' }]);
    const verdict = await w.deliver(w.take(), { signal: AbortSignal.abort() });
    expect(verdict).toEqual({ kind: 'retry', delaySeconds: 7 });
    expect((await w.job(job.id)).tasks[0]?.error).toMatchObject({ kind: 'crash' });
  });
});

describe('a run longer than a moment', () => {
  it('gets its start written (RUNNING, with a lease) and its message hidden for the timeout and margin', async () => {
    const w = world();
    const gate = new Gate<AttemptOutcome>();
    w.invoker.reply('echo', { gate });
    const job = await w.submit([{ processor: 'echo' }]);
    const message = w.take();
    const leases: number[] = [];
    const verdict = w.deliver(message, { onLease: async (seconds) => void leases.push(seconds) });
    await waitFor(async () => (await w.job(job.id)).tasks[0]?.status === 'RUNNING');
    const running = await w.job(job.id);
    expect(running.status).toBe('RUNNING');
    expect(running.tasks[0]).toMatchObject({ attempts: 1, lease: { messageId: message.messageId } });
    await waitFor(() => leases.length > 0);
    expect(leases).toEqual([echo.timeoutSeconds + MARGIN]);
    gate.open({ status: 'ok', result: 'late but fine' });
    expect(await verdict).toEqual({ kind: 'done' });
    expect((await w.job(job.id)).tasks[0]).toMatchObject({ status: 'SUCCEEDED', attempts: 1, result: 'late but fine' });
  });

  it('still records its outcome when hiding the message fails', async () => {
    const w = world();
    const gate = new Gate<AttemptOutcome>();
    w.invoker.reply('echo', { gate });
    const job = await w.submit([{ processor: 'echo' }]);
    const verdict = w.deliver(w.take(), { onLease: () => Promise.reject(new Error('SQS throttled')) });
    await waitFor(() => w.logs.some((l) => l.message === 'lease visibility not set'));
    gate.open({ status: 'ok', result: 1 });
    expect(await verdict).toEqual({ kind: 'done' });
    expect((await w.job(job.id)).tasks[0]?.status).toBe('SUCCEEDED');
  });
});

describe('a worker that went quiet (its lease lapsed)', () => {
  it('on its last attempt: the task fails as a timeout when the message comes back', async () => {
    const w = world();
    const zombie = new Gate<AttemptOutcome>();
    w.invoker.reply('once', { gate: zombie });
    const job = await w.submit([{ processor: 'once' }]);
    const message = w.take();
    const first = w.deliver(message);
    await waitFor(async () => (await w.job(job.id)).tasks[0]?.status === 'RUNNING');

    w.clock.advance((once.timeoutSeconds + MARGIN + 1) * 1000);
    expect(await w.deliver(message)).toEqual({ kind: 'done' });
    const failed = await w.job(job.id);
    expect(failed.status).toBe('FAILED');
    expect(failed.tasks[0]?.error).toEqual({
      kind: 'timeout',
      message: 'attempt 1 did not report back within its lease',
    });
    expect(w.logs).toContainEqual({ level: 'warn', message: 'task failed: attempts exhausted' });

    // The quiet worker reports after all: too late, kept as history only.
    zombie.open({ status: 'ok', result: 'too late' });
    expect(await first).toEqual({ kind: 'done' });
    const after = await w.job(job.id);
    expect(after.status).toBe('FAILED');
    expect(after.tasks[0]?.late).toEqual([expect.objectContaining({ attempt: 1, status: 'ok' })]);
  });

  it('with attempts left: the next attempt runs, and the old one’s late report leaves the message to it (keep)', async () => {
    const w = world();
    const zombie = new Gate<AttemptOutcome>();
    const current = new Gate<AttemptOutcome>();
    w.invoker.reply('echo', { gate: zombie }, { gate: current });
    const job = await w.submit([{ processor: 'echo' }]);
    const message = w.take();
    const first = w.deliver(message);
    await waitFor(async () => (await w.job(job.id)).tasks[0]?.attempts === 1);

    w.clock.advance((echo.timeoutSeconds + MARGIN + 1) * 1000);
    const second = w.deliver(message);
    await waitFor(async () => (await w.job(job.id)).tasks[0]?.attempts === 2);

    // Attempt 1 reports while attempt 2 holds the message as its lease: neither delete nor hide it.
    zombie.open({ status: 'ok', result: 'from attempt 1' });
    expect(await first).toEqual({ kind: 'keep' });
    current.open({ status: 'ok', result: 'from attempt 2' });
    expect(await second).toEqual({ kind: 'done' });
    const done = await w.job(job.id);
    expect(done.tasks[0]).toMatchObject({ status: 'SUCCEEDED', attempts: 2, result: 'from attempt 2' });
    expect(done.tasks[0]?.late).toEqual([expect.objectContaining({ attempt: 1, status: 'ok' })]);
    expect(done.tasks[0]?.tries?.map((t) => t.error?.kind ?? 'ok')).toEqual(['timeout', 'ok']);
  });
});

describe('a message delivered twice', () => {
  it('while its first delivery runs with a live lease: the copy is held until the lease ends', async () => {
    const w = world();
    const gate = new Gate<AttemptOutcome>();
    w.invoker.reply('echo', { gate });
    const job = await w.submit([{ processor: 'echo' }]);
    const message = w.take();
    const first = w.deliver(message);
    await waitFor(async () => (await w.job(job.id)).tasks[0]?.status === 'RUNNING');
    w.clock.advance(5000);
    expect(await w.deliver(message)).toEqual({ kind: 'retry', delaySeconds: echo.timeoutSeconds + MARGIN - 5 });
    gate.open({ status: 'ok', result: 1 });
    expect(await first).toEqual({ kind: 'done' });
    expect(w.invoker.calls).toHaveLength(1);
  });

  it('at once, by SQS: the copy that did not write the lease leaves the message alone (it is the lease)', async () => {
    const w = world();
    const a = new Gate<AttemptOutcome>();
    const b = new Gate<AttemptOutcome>();
    w.invoker.reply('echo', { gate: a }, { gate: b });
    const job = await w.submit([{ processor: 'echo' }]);
    const message = w.take();
    const first = w.deliver(message);
    await a.entered;
    const copy = w.deliver(message);
    await b.entered;
    await waitFor(async () => (await w.job(job.id)).tasks[0]?.status === 'RUNNING');
    b.open({ status: 'ok', result: 'copy' });
    expect(await copy).toEqual({ kind: 'keep' });
    a.open({ status: 'ok', result: 'first' });
    expect(await first).toEqual({ kind: 'done' });
    expect((await w.job(job.id)).tasks[0]).toMatchObject({ status: 'SUCCEEDED', result: 'first' });
  });

  it('as two messages of a job from before tickets: the one without the live lease is deleted', async () => {
    const w = world();
    const { job } = createJob(
      { type: 'report', strategy: 'sequential', failFast: false, tasks: [{ processor: 'echo', input: 1 }] },
      { jobId: 'job-before-tickets', taskIds: ['job-before-tickets.0'] },
      w.clock.now(),
      { owner: 'alice', requestHash: 'h' },
    );
    delete job.tasks[0]!.ticket;
    w.store.put(job);
    await w.queue.send([
      { jobId: job.id, task: 0 },
      { jobId: job.id, task: 0 },
    ]);
    const a = new Gate<AttemptOutcome>();
    const b = new Gate<AttemptOutcome>();
    w.invoker.reply('echo', { gate: a }, { gate: b });
    const first = w.deliver(w.take());
    await a.entered;
    const other = w.deliver(w.take());
    await b.entered;
    await waitFor(async () => (await w.job(job.id)).tasks[0]?.status === 'RUNNING');
    b.open({ status: 'ok', result: 'other' });
    expect(await other).toEqual({ kind: 'done' });
    a.open({ status: 'ok', result: 'first' });
    expect(await first).toEqual({ kind: 'done' });
    const done = await w.job(job.id);
    expect(done.tasks[0]).toMatchObject({ status: 'SUCCEEDED', result: 'first', attempts: 1 });
    expect(done.tasks[0]?.late).toEqual([expect.objectContaining({ attempt: 1, status: 'ok' })]);
  });
});

describe('a resend that reissued the ticket while an attempt ran', () => {
  it('leaves the retry to the resent message: the old one is deleted when its attempt reports', async () => {
    // The attempt's start is never written here, so the sweeper finds the task still QUEUED.
    const w = world({ recordStartAfterMs: 60_000 });
    const gate = new Gate<AttemptOutcome>();
    w.invoker.reply('echo', { gate });
    const job = await w.submit([{ processor: 'echo', input: 'x' }]);
    const old = w.take();
    const running = w.deliver(old);
    await gate.entered;

    w.clock.advance(120_000);
    expect(await w.engine.sweep(60)).toEqual({ jobs: 1, resent: 1 });
    const resent = w.take();
    expect(resent.body).not.toEqual(old.body);

    gate.open({ status: 'error', error: { kind: 'error', message: 'busy' }, retryable: true });
    expect(await running).toEqual({ kind: 'done' });
    expect((await w.job(job.id)).tasks[0]?.status).toBe('RETRYING');

    w.clock.advance(7000);
    expect(await w.deliver(resent)).toEqual({ kind: 'done' });
    expect((await w.job(job.id)).tasks[0]).toMatchObject({ status: 'SUCCEEDED', attempts: 2 });
  });

  it('deletes the old message when its attempt reports after the resent one’s attempt already retried', async () => {
    const w = world({ recordStartAfterMs: 60_000 });
    const gate = new Gate<AttemptOutcome>();
    w.invoker.reply('echo', { gate }, { status: 'error', error: { kind: 'error', message: 'busy' }, retryable: true });
    const job = await w.submit([{ processor: 'echo' }]);
    const old = w.take();
    const running = w.deliver(old);
    await gate.entered;
    w.clock.advance(120_000);
    await w.engine.sweep(60);
    w.clock.advance(3000);
    expect(await w.deliver(w.take())).toEqual({ kind: 'retry', delaySeconds: 7 });

    gate.open({ status: 'ok', result: 'the old attempt' });
    expect(await running).toEqual({ kind: 'done' });
    const after = await w.job(job.id);
    expect(after.tasks[0]?.status).toBe('RETRYING');
    expect(after.tasks[0]?.late).toEqual([expect.objectContaining({ status: 'ok' })]);
  });
});

describe('a job too crowded to write', () => {
  it('takes every outcome when two workers finish tasks of one job at once (the loser writes again)', async () => {
    const w = world();
    const job = await w.submit(
      [
        { processor: 'echo', input: 'a' },
        { processor: 'echo', input: 'b' },
      ],
      { strategy: 'concurrent' },
    );
    const other = w.engineWith([echo]);
    const [a, b] = [w.take(0), w.take(1)];
    expect(await Promise.all([w.deliver(a), w.deliver(b, {}, other)])).toEqual([{ kind: 'done' }, { kind: 'done' }]);
    const done = await w.job(job.id);
    expect(done.status).toBe('SUCCEEDED');
    expect(done.tasks.map((t) => t.result)).toEqual(['a', 'b']);
    expect(w.store.writes.some((write) => write.kind === 'replace' && !write.won)).toBe(true);
  });

  it('comes back in 1–4 s when every write of its verdict loses to another writer', async () => {
    // Full jitter drawn at 0: the fifty write attempts back off for no time at all.
    vi.spyOn(Math, 'random').mockReturnValue(0);
    const w = world({ processors: [echo, processor('removed')] });
    const job = await w.submit([{ processor: 'removed' }]);
    w.store.contend(job.id);
    const verdict = await w.deliver(w.take(), {}, w.engineWith([echo]));
    expect(verdict.kind).toBe('retry');
    const delay = verdict.kind === 'retry' ? verdict.delaySeconds : 0;
    expect(delay).toBeGreaterThanOrEqual(1);
    expect(delay).toBeLessThanOrEqual(4);
    expect(w.store.writes.filter((write) => write.kind === 'replace' && !write.won)).toHaveLength(50);
  });
});

describe('submitting', () => {
  const body = { type: 'report', tasks: [{ processor: 'echo', input: 1 }] };

  it('writes the job, then sends its first messages: a failed send leaves nothing behind', async () => {
    const w = world();
    w.queue.failNextSend();
    await expect(w.engine.submit(body, 'alice')).rejects.toThrow('queue unavailable');
    expect(w.store.ids()).toEqual([]);
    expect(w.store.writes.map((write) => write.kind)).toEqual(['create', 'discard']);
    const { job, created } = await w.engine.submit(body, 'alice');
    expect(created).toBe(true);
    expect(w.queue.sent.map((e) => e.body)).toEqual([
      { jobId: job.id, task: 0, ticket: (job as Job).tasks[0]!.ticket },
    ]);
  });

  it('never sends a message before its job is written, so no worker looks for a job not there yet', async () => {
    const w = world();
    const seen: boolean[] = [];
    const send = w.queue.send.bind(w.queue);
    w.queue.send = async (messages, options) => {
      for (const message of messages) seen.push(w.store.ids().includes(message.jobId));
      return send(messages, options);
    };
    await w.engine.submit(
      { type: 'report', strategy: 'concurrent', tasks: [{ processor: 'echo' }, { processor: 'echo' }] },
      'alice',
    );
    expect(seen).toEqual([true, true]);
  });

  it('re-sends the first messages on the replay of a job its submitter wrote but did not send', async () => {
    const w = world();
    // The submitter died between its write and its send: the job is there, its message is not.
    w.queue.failNextSend();
    const discard = w.store.discard.bind(w.store);
    w.store.discard = async () => false;
    await expect(w.engine.submit(body, 'alice', 'key-died')).rejects.toThrow('queue unavailable');
    w.store.discard = discard;
    expect(w.queue.sent).toHaveLength(0);
    const replay = await w.engine.submit(body, 'alice', 'key-died');
    expect(replay.created).toBe(false);
    expect(w.queue.sent.map((e) => e.body)).toEqual([
      { jobId: replay.job.id, task: 0, ticket: (replay.job as Job).tasks[0]!.ticket },
    ]);
    // Held back past an attempt's unwritten first second, in case the first message did go.
    expect(w.queue.sent[0]!.delaySeconds).toBe(3);
    expect(await w.deliver(w.take())).toEqual({ kind: 'done' });
    expect((await w.job(replay.job.id)).status).toBe('SUCCEEDED');
    // Once it has moved on, a replay sends nothing more.
    await w.engine.submit(body, 'alice', 'key-died');
    expect(w.queue.sent).toHaveLength(1);
  });

  it('answers the replay of a job not sent yet with the error when its copies cannot be sent either, keeping the job', async () => {
    const w = world();
    w.queue.failNextSend();
    w.store.discard = async () => false;
    await expect(w.engine.submit(body, 'alice', 'key-twice')).rejects.toThrow('queue unavailable');
    w.queue.failNextSend();
    await expect(w.engine.submit(body, 'alice', 'key-twice')).rejects.toThrow('queue unavailable');
    expect(w.store.ids()).toHaveLength(1);
    expect(w.queue.sent).toHaveLength(0);
    // The next retry sends them, and the job runs once.
    const replay = await w.engine.submit(body, 'alice', 'key-twice');
    expect(w.queue.sent).toHaveLength(1);
    expect(await w.deliver(w.take())).toEqual({ kind: 'done' });
    expect((await w.job(replay.job.id)).status).toBe('SUCCEEDED');
  });

  it('answers a keyed replay with the first job, sending nothing once the job has moved on', async () => {
    const w = world();
    const first = await w.engine.submit(body, 'alice', 'key-1');
    await w.deliver(w.take());
    const replay = await w.engine.submit(body, 'alice', 'key-1');
    expect(replay).toMatchObject({ job: { id: first.job.id, status: 'SUCCEEDED' }, created: false });
    expect(w.queue.sent).toHaveLength(1);
    // The key is the owner's: another owner's same key is another job.
    const bobs = await w.engine.submit(body, 'bob', 'key-1');
    expect(bobs.created).toBe(true);
    expect(bobs.job.id).not.toBe(first.job.id);
  });

  it('refuses the same key with another request, writing nothing over the first job', async () => {
    const w = world();
    const first = await w.engine.submit(body, 'alice', 'key-2');
    const other = { type: 'report', tasks: [{ processor: 'echo', input: 2 }] };
    await expect(w.engine.submit(other, 'alice', 'key-2')).rejects.toBeInstanceOf(IdempotencyMismatchError);
    expect(w.queue.sent).toHaveLength(1);
    expect(await w.job(first.job.id)).toEqual(first.job);
  });

  it('still refuses a mismatch the replay look-up missed, and sends nothing for the refused request', async () => {
    const w = world();
    // The look-up is an eventually consistent read: a moment after the first write, it misses it.
    w.store.lagPeeks();
    await w.engine.submit(body, 'alice', 'key-3');
    const other = { type: 'report', tasks: [{ processor: 'echo', input: 2 }] };
    await expect(w.engine.submit(other, 'alice', 'key-3')).rejects.toBeInstanceOf(IdempotencyMismatchError);
    w.store.settle();
    // The write refused it before anything was sent.
    expect(w.queue.pending).toHaveLength(1);
    await w.queue.drain((envelope) => w.deliver(envelope));
    expect(w.invoker.calls.map((c) => c.request.task.input)).toEqual([1]);
  });

  it('answers the same key twice in one commit with one job: the first is created, the second replays it', async () => {
    const w = world();
    const other = { type: 'report', tasks: [{ processor: 'echo', input: 2 }] };
    const [a, b, c] = await w.engine.commit([
      w.engine.prepare(body, 'alice', 'key-4'),
      w.engine.prepare(body, 'alice', 'key-4'),
      w.engine.prepare(other, 'alice', 'key-4'),
    ]);
    expect(a).toMatchObject({ created: true });
    expect(b).toEqual({ job: (a as { job: Job }).job, created: false });
    expect((c as { error: unknown }).error).toBeInstanceOf(IdempotencyMismatchError);
    expect(w.queue.sent).toHaveLength(1);
    expect(w.store.writes.filter((write) => write.kind === 'create')).toHaveLength(1);
  });
});

describe('reading and aborting', () => {
  it('shows a job to its owner and an admin only; to anyone else it does not exist', async () => {
    const w = world();
    const job = await w.submit([{ processor: 'echo' }]);
    expect(await w.engine.read(job.id, ALICE)).toEqual(job);
    expect(await w.engine.read(job.id, { owner: 'root', admin: true })).toEqual(job);
    await expect(w.engine.read(job.id, { owner: 'bob', admin: false })).rejects.toBeInstanceOf(NotFoundError);
  });

  it('aborts an unfinished job once; its waiting message then runs nothing, and a finished job refuses', async () => {
    const w = world();
    const job = await w.submit([{ processor: 'echo' }, { processor: 'echo' }]);
    await expect(w.engine.abort(job.id, { owner: 'bob', admin: false })).rejects.toBeInstanceOf(NotFoundError);
    const aborted = await w.engine.abort(job.id, ALICE);
    expect(aborted.changed).toBe(true);
    expect(aborted.job.status).toBe('ABORTED');
    expect(aborted.job.tasks.map((t) => t.status)).toEqual(['ABORTED', 'ABORTED']);
    expect((await w.engine.abort(job.id, ALICE)).changed).toBe(false);
    expect(await w.deliver(w.take())).toEqual({ kind: 'done' });
    expect(w.invoker.calls).toHaveLength(0);

    const done = await w.submit([{ processor: 'echo' }]);
    await w.deliver(w.take());
    await expect(w.engine.abort(done.id, ALICE)).rejects.toBeInstanceOf(InvalidStateError);
  });

  it('keeps the outcome of an attempt the abort overtook as history only', async () => {
    const w = world();
    const gate = new Gate<AttemptOutcome>();
    w.invoker.reply('echo', { gate });
    const job = await w.submit([{ processor: 'echo' }]);
    const running = w.deliver(w.take());
    await gate.entered;
    await w.engine.abort(job.id, ALICE);
    gate.open({ status: 'ok', result: 'after the abort' });
    expect(await running).toEqual({ kind: 'done' });
    const after = await w.job(job.id);
    expect(after.status).toBe('ABORTED');
    expect(after.tasks[0]?.late).toEqual([expect.objectContaining({ attempt: 1, status: 'ok' })]);
  });
});

describe('a message dead-lettered (poison)', () => {
  it('fails its task as poison and ends a sequential job', async () => {
    const w = world();
    const job = await w.submit([{ processor: 'echo' }, { processor: 'echo' }]);
    const message = w.take();
    await w.engine.poison(message.body as TaskMessage, 'received 10 times', message.messageId);
    const failed = await w.job(job.id);
    expect(failed.status).toBe('FAILED');
    expect(failed.tasks[0]?.error).toEqual({ kind: 'poison', message: 'received 10 times' });
    expect(failed.tasks[1]?.status).toBe('ABORTED');
  });

  it('changes nothing for a stray copy: another ticket, or while another message holds a live lease', async () => {
    const w = world();
    const gate = new Gate<AttemptOutcome>();
    w.invoker.reply('echo', { gate });
    const job = await w.submit([{ processor: 'echo' }]);
    const message = w.take();
    await w.engine.poison({ jobId: job.id, task: 0, ticket: 'not-the-tasks' }, 'stray');
    expect(await w.job(job.id)).toEqual(job);

    const running = w.deliver(message);
    await waitFor(async () => (await w.job(job.id)).tasks[0]?.status === 'RUNNING');
    const before = await w.job(job.id);
    await w.engine.poison(message.body as TaskMessage, 'copy', 'some-other-message');
    expect(await w.job(job.id)).toEqual(before);
    gate.open({ status: 'ok', result: 1 });
    expect(await running).toEqual({ kind: 'done' });
  });
});

describe('the sweeper', () => {
  it('re-sends a task whose message was lost, under a new ticket, so the lost one runs nothing if it turns up', async () => {
    const w = world();
    const job = await w.submit([{ processor: 'echo' }]);
    const [lost] = w.queue.lose();
    w.clock.advance(120_000);
    const young = await w.submit([{ processor: 'echo' }]);
    expect(await w.engine.sweep(60)).toEqual({ jobs: 1, resent: 1 });
    const resent = w.queue.take((body) => body.jobId === job.id);
    expect(resent.body).toMatchObject({ jobId: job.id, task: 0 });
    expect(resent.body).not.toEqual(lost!.body);
    // Held back past an attempt's unwritten first second (recordStartAfterMs 20 ms → 1 s), plus 2 s.
    expect(resent.delaySeconds).toBe(3);

    expect(await w.deliver(lost!)).toEqual({ kind: 'done' });
    expect(w.invoker.calls).toHaveLength(0);
    expect(await w.deliver(resent)).toEqual({ kind: 'done' });
    expect((await w.job(job.id)).status).toBe('SUCCEEDED');
    expect((await w.job(young.id)).status).toBe('PENDING');
  });

  it('after a restart, resumes every unfinished task at once: a live lease is lapsed, a backoff kept', async () => {
    const w = world();
    const gate = new Gate<AttemptOutcome>();
    w.invoker.reply('echo', { gate }, { status: 'error', error: { kind: 'error', message: 'busy' }, retryable: true });
    const job = await w.submit([{ processor: 'echo' }, { processor: 'echo' }], { strategy: 'concurrent' });
    const zombie = w.deliver(w.take(0));
    await waitFor(async () => (await w.job(job.id)).tasks[0]?.status === 'RUNNING');
    expect(await w.deliver(w.take(1))).toEqual({ kind: 'retry', delaySeconds: 7 });

    // The restart lost every message and worker; a second later the sweeper runs.
    w.clock.advance(1000);
    expect(await w.engine.sweep(60, { afterRestart: true })).toEqual({ jobs: 1, resent: 2 });
    const resumed = await w.job(job.id);
    const [zero, one] = [w.take(0), w.take(1)];
    expect(zero.body).toEqual({ jobId: job.id, task: 0, ticket: resumed.tasks[0]!.ticket });
    expect(zero.delaySeconds).toBeUndefined();
    expect(one.delaySeconds).toBe(6);

    expect(await w.deliver(zero)).toEqual({ kind: 'done' });
    w.clock.advance(6000);
    expect(await w.deliver(one)).toEqual({ kind: 'done' });
    const done = await w.job(job.id);
    expect(done.status).toBe('SUCCEEDED');
    expect(done.tasks.map((t) => t.attempts)).toEqual([2, 2]);
    gate.open({ status: 'ok', result: 'from before the restart' });
    expect(await zombie).toEqual({ kind: 'keep' });
  });
});
