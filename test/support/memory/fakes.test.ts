import { describe, expect, it, vi } from 'vitest';
import { InputChangedError, InputMissingError } from '../../../shared/core/errors.js';
import { createJob } from '../../../shared/core/tasks/transitions.js';
import { testProcessor } from '../processors.js';
import { startTestStack } from '../stack.js';
import { Gate, memoryPorts } from './index.js';

/**
 * What the fakes do for tests beyond their ports (the ports' own promises are the contract suites
 * in test/shared/ports): reads that lag, writers that race, messages lost or delivered again.
 */

const job = (id: string) =>
  createJob(
    { type: 't', strategy: 'sequential', failFast: false, tasks: [{ processor: 'p' }] },
    { jobId: id, taskIds: [`${id}.0`] },
    new Date('2030-01-01T00:00:00Z'),
    { owner: 'o', requestHash: 'h' },
  ).job;

describe('the in-memory job store, told to', () => {
  it('lag: peek misses writes made after lagPeeks until settle, while get sees them', async () => {
    const { store } = memoryPorts();
    await store.create(job('a'));
    store.lagPeeks();
    await store.create(job('b'));
    await store.replace({ ...job('a'), version: 2, name: 'new' }, 1);
    expect(await store.peek('b')).toBeUndefined();
    expect((await store.peek('a'))?.name).toBeUndefined();
    expect((await store.get('a'))?.name).toBe('new');
    store.settle();
    expect(await store.peek('b')).toBeDefined();
  });

  it('contend: the next writes lose to another writer, then one wins on the version it reads', async () => {
    const { store } = memoryPorts();
    await store.create(job('a'));
    store.contend('a', 2);
    expect(await store.replace({ ...job('a'), version: 2 }, 1)).toBe(false);
    const read = (await store.get('a'))!;
    expect(read.version).toBe(2);
    expect(await store.replace({ ...read, version: 3 }, 2)).toBe(false);
    expect(await store.replace({ ...read, version: 4 }, 3)).toBe(true);
  });
});

describe('the in-memory queue', () => {
  it('records every send with its delay, and lets a test take, deliver again or lose messages', async () => {
    const { queue, clock } = memoryPorts();
    await queue.send([{ jobId: 'a', task: 0 }], { delaySeconds: 3 });
    clock.advance(1000);
    await queue.send([
      { jobId: 'b', task: 0 },
      { jobId: 'c', task: 0 },
    ]);
    expect(queue.sends).toEqual([{ messages: 1, delaySeconds: 3 }, { messages: 2 }]);
    const a = queue.take();
    expect(a).toMatchObject({ body: { jobId: 'a' }, delaySeconds: 3, receiveCount: 1 });
    queue.redeliver(a);
    expect(queue.lose((m) => m.jobId === 'b')).toHaveLength(1);
    expect(queue.take((m) => m.jobId === 'a')).toMatchObject({ messageId: a.messageId, receiveCount: 2 });
    expect(queue.take().sentAt).toBe(a.sentAt + 1000);
    expect(() => queue.take()).toThrow(/no pending message/);
    queue.failNextSend();
    await expect(queue.send([{ jobId: 'd', task: 0 }])).rejects.toThrow();
    expect(queue.sent).toHaveLength(3);
  });
});

describe('the in-memory batch files', () => {
  it('resumes reading rows from a position it handed out, and refuses a changed or missing input', async () => {
    const { files } = memoryPorts();
    files.putObject('in', 'f.jsonl', '1\n\n"two"\n{"three":3}\n');
    const part = { kind: 'file' as const, bucket: 'in', key: 'f.jsonl', format: 'jsonl' as const };
    const all = [];
    for await (const row of files.rows([part])) all.push(row);
    expect(all.map((r) => r.input)).toEqual([1, 'two', { three: 3 }]);
    const rest = [];
    for await (const row of files.rows([part], all[1]!.at)) rest.push(row.input);
    expect(rest).toEqual(['two', { three: 3 }]);

    const etag = (await files.head('in', 'f.jsonl'))!.etag;
    files.putObject('in', 'f.jsonl', '9\n');
    const read = async (p: typeof part & { etag?: string }) => {
      for await (const _ of files.rows([p])) {
      }
    };
    await expect(read({ ...part, etag })).rejects.toBeInstanceOf(InputChangedError);
    await expect(read({ ...part, key: 'gone' })).rejects.toBeInstanceOf(InputMissingError);
    await expect(read({ ...part, format: 'csv' as never })).rejects.toThrow(/JSON Lines only/);
  });
});

describe('the scripted invoker', () => {
  const p = testProcessor('p', { timeoutSeconds: 1, maxAttempts: 1, backoff: { type: 'fixed', delaySeconds: 0 } });
  const request = { job: { id: 'j', type: 't' }, task: { id: 'j.0', processor: 'p', attempt: 1, input: 'in' } };

  it('answers in order, then by default; hangs until its signal aborts; waits at a gate', async () => {
    const { invoker } = memoryPorts();
    const gate = new Gate<{ status: 'ok'; result: unknown }>();
    invoker.reply('p', { status: 'ok', result: 'first' }, { hang: true }, { gate: gate as never });
    const never = new AbortController().signal;
    expect(await invoker.invoke(p, request, never)).toEqual({ status: 'ok', result: 'first' });
    const stop = new AbortController();
    const hung = invoker.invoke(p, request, stop.signal);
    stop.abort();
    expect(await hung).toMatchObject({ status: 'error', retryable: true });
    const gated = invoker.invoke(p, request, never);
    await gate.entered;
    gate.open({ status: 'ok', result: 'released' });
    expect(await gated).toEqual({ status: 'ok', result: 'released' });
    expect(await invoker.invoke(p, request, never)).toEqual({ status: 'ok', result: 'in' });
    expect(invoker.calls).toHaveLength(4);
  });
});

describe('the unit suite', () => {
  it('refuses to start the local stack (UNIT_ONLY=1), so no unit test boots an emulator', async () => {
    vi.stubEnv('UNIT_ONLY', '1');
    await expect(startTestStack()).rejects.toThrow(/not a unit test/);
    vi.unstubAllEnvs();
  });
});
