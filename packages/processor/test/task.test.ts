import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as z from 'zod';
import { classifyReply } from '../../../shared/aws/processor-invoker.js';
import {
  DeadlineError,
  defineTaskProcessor,
  JobAbortedError,
  ProcessorError,
  type TaskContext,
  type TaskRequest,
} from '../src/index.js';

const request = (input: unknown, attempt = 1): TaskRequest => ({
  job: { id: 'job-1', type: 'invoice', name: 'March', meta: { team: 'billing' } },
  task: { id: 'job-1.0', name: 'render', processor: 'invoice.render', attempt, input },
});

const render = defineTaskProcessor({
  input: z.object({ invoice: z.string().regex(/^INV-\d+$/), copies: z.number().int().min(1).default(1) }),
  run: async ({ invoice, copies }, ctx) => {
    ctx.log('rendering', { invoice });
    return { pdf: `${invoice}.pdf`, copies, attempt: ctx.attempt };
  },
});

afterEach(() => {
  vi.useRealTimers();
});

describe('defineTaskProcessor', () => {
  it('answers a valid input with its result and log, which the worker reads as a success', async () => {
    const reply = await render(request({ invoice: 'INV-7' }, 2));
    expect(reply).toEqual({
      status: 'ok',
      result: { pdf: 'INV-7.pdf', copies: 1, attempt: 2 },
      log: [{ level: 'info', message: 'rendering', data: { invoice: 'INV-7' } }],
    });
    // The worker's own reading of the reply (shared/aws/processor-invoker.ts).
    expect(classifyReply(reply)).toEqual({
      status: 'ok',
      result: { pdf: 'INV-7.pdf', copies: 1, attempt: 2 },
      log: [{ level: 'info', message: 'rendering', data: { invoice: 'INV-7' } }],
    });
  });

  it('gives the run the job, the task and the attempt', async () => {
    let seen: Omit<TaskContext, 'signal' | 'log'> | undefined;
    const handler = defineTaskProcessor({
      input: z.unknown(),
      run: (_input, { job, task, attempt }) => {
        seen = { job, task, attempt };
      },
    });
    expect(await handler(request({}, 3))).toEqual({ status: 'ok' });
    expect(seen).toEqual({
      job: { id: 'job-1', type: 'invoice', name: 'March', meta: { team: 'billing' } },
      task: { id: 'job-1.0', name: 'render', processor: 'invoice.render', attempt: 3 },
      attempt: 3,
    });
  });

  it('refuses a bad input with the final error INVALID_INPUT naming each problem, without running', async () => {
    const run = vi.fn();
    const handler = defineTaskProcessor({ input: z.object({ invoice: z.string(), copies: z.number() }), run });
    const reply = await handler(request({ copies: 'two' }));
    expect(reply).toEqual({
      status: 'error',
      error: {
        code: 'INVALID_INPUT',
        message:
          'invoice: Invalid input: expected string, received undefined; copies: Invalid input: expected number, received string',
        retryable: false,
      },
    });
    expect(run).not.toHaveBeenCalled();
    expect(classifyReply(reply)).toMatchObject({ status: 'error', retryable: false, error: { code: 'INVALID_INPUT' } });
    // A missing input is an input like any other.
    expect((await handler(request(undefined))).status).toBe('error');
  });

  it('turns a thrown ProcessorError into the error reply, retryable only when it says so', async () => {
    const handler = defineTaskProcessor({
      input: z.object({ retry: z.boolean() }),
      run: ({ retry }, ctx) => {
        ctx.log.warn('upstream refused');
        throw new ProcessorError('UPSTREAM_429', 'the renderer is busy', { retryable: retry });
      },
    });
    const final = await handler(request({ retry: false }));
    expect(final).toEqual({
      status: 'error',
      error: { code: 'UPSTREAM_429', message: 'the renderer is busy', retryable: false },
      log: [{ level: 'warn', message: 'upstream refused' }],
    });
    expect(classifyReply(final)).toMatchObject({ status: 'error', retryable: false });
    expect(classifyReply(await handler(request({ retry: true })))).toMatchObject({ status: 'error', retryable: true });
  });

  it('lets anything else thrown through: Lambda reports it and the worker retries it as a crash', async () => {
    const bug = new RangeError('index out of range');
    const handler = defineTaskProcessor({
      input: z.unknown(),
      run: () => {
        throw bug;
      },
    });
    await expect(handler(request({}))).rejects.toBe(bug);
  });

  it('replies CONTRACT_VIOLATION, final, for a result the contract cannot carry', async () => {
    const deep: Record<string, unknown> = {};
    let at = deep;
    for (let i = 0; i < 80; i++) at = at.next = {};
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    for (const [result, message] of [
      [{ total: 10n }, 'result.total is a bigint, which is not JSON'],
      [deep, 'nests deeper than 64 levels'],
      [cyclic, 'nests deeper than 64 levels (or refers to itself)'],
    ] as const) {
      const handler = defineTaskProcessor({ input: z.unknown(), run: () => result as never });
      const reply = await handler(request({}));
      expect(reply).toMatchObject({ status: 'error', error: { code: 'CONTRACT_VIOLATION', retryable: false } });
      expect(reply.status === 'error' && reply.error?.message).toContain(message);
    }
  });

  it('keeps the log within the contract: long messages cut, oversized data replaced, extra entries counted', async () => {
    const handler = defineTaskProcessor({
      input: z.unknown(),
      run: (_input, ctx) => {
        ctx.log('x'.repeat(1500));
        ctx.log.error('big', { blob: 'y'.repeat(3000) });
        for (let i = 0; i < 30; i++) ctx.log(`step ${i}`);
        return 'done';
      },
    });
    const reply = await handler(request({}));
    expect(reply.log).toHaveLength(20);
    expect(reply.log?.[0]?.message).toHaveLength(1000);
    expect(reply.log?.[1]).toEqual({
      level: 'error',
      message: 'big',
      data: { dropped: 'data is 3011 bytes serialized; at most 2048' },
    });
    expect(reply.log?.[19]).toEqual({ level: 'warn', message: '13 more log entries dropped (at most 20 per reply)' });
    expect(classifyReply(reply).status).toBe('ok');
  });

  it('aborts ctx.signal the margin before the Lambda deadline, with a DeadlineError', async () => {
    vi.useFakeTimers();
    let signal: AbortSignal | undefined;
    let release = () => {};
    const handler = defineTaskProcessor({
      input: z.unknown(),
      deadlineMarginMs: 500,
      run: (_input, ctx) => {
        signal = ctx.signal;
        return new Promise<string>((resolve) => {
          release = () => resolve('finished');
        });
      },
    });
    const replied = handler(request({}), { getRemainingTimeInMillis: () => 3000 });
    await vi.advanceTimersByTimeAsync(2499);
    expect(signal?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBeInstanceOf(DeadlineError);
    release();
    // A run that finishes anyway still answers with its result.
    expect(await replied).toEqual({ status: 'ok', result: 'finished' });
  });

  it('is a crash when the run gives up at the deadline (retried, as a timeout is)', async () => {
    const handler = defineTaskProcessor({
      input: z.unknown(),
      deadlineMarginMs: 1000,
      run: (_input, { signal }) => sleep(60_000, undefined, { signal }),
    });
    await expect(handler(request({}), { getRemainingTimeInMillis: () => 100 })).rejects.toMatchObject({
      name: 'AbortError',
    });
  });

  it('never takes more than a quarter of the time left as the margin', async () => {
    vi.useFakeTimers();
    let signal: AbortSignal | undefined;
    const handler = defineTaskProcessor({
      input: z.unknown(),
      run: (_input, ctx) => {
        signal = ctx.signal;
        return new Promise<null>((resolve) => setTimeout(() => resolve(null), 900));
      },
    });
    // A 1 s function with the default 1 s margin: stopped at 750 ms, not before it starts.
    const replied = handler(request({}), { getRemainingTimeInMillis: () => 1000 });
    await vi.advanceTimersByTimeAsync(749);
    expect(signal?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(signal?.reason).toMatchObject({ name: 'DeadlineError', remainingMs: 250 });
    await vi.advanceTimersByTimeAsync(200);
    expect(await replied).toEqual({ status: 'ok', result: null });
  });

  describe('cancelOnAbort', () => {
    it('looks once per interval while the task runs and stops it with the final error ABORTED', async () => {
      vi.useFakeTimers();
      const looks: string[] = [];
      const handler = defineTaskProcessor({
        input: z.unknown(),
        cancelOnAbort: {
          everySeconds: 2,
          isAborted: (job) => {
            looks.push(job.id);
            return looks.length === 3;
          },
        },
        run: (_input, { signal }) => sleep(60_000, 'slept', { signal }),
      });
      const replied = handler(request({}));
      await vi.advanceTimersByTimeAsync(1999);
      expect(looks).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      expect(looks).toEqual(['job-1']);
      await vi.advanceTimersByTimeAsync(4000);
      expect(await replied).toEqual({
        status: 'error',
        error: { code: 'ABORTED', message: 'job aborted; stopped early', retryable: false },
      });
      expect(looks).toHaveLength(3);
      // No look after the reply.
      await vi.advanceTimersByTimeAsync(10_000);
      expect(looks).toHaveLength(3);
    });

    it('reads the job through a client: any end of the job stops the task; a failed read does not', async () => {
      vi.useFakeTimers();
      const answers: (() => Promise<{ status: string }>)[] = [
        async () => ({ status: 'RUNNING' }),
        () => Promise.reject(new Error('503 from the API')),
        async () => ({ status: 'FAILED' }),
      ];
      const get = vi.fn((_id: string) => (answers.shift() as () => Promise<{ status: string }>)());
      let reason: unknown;
      const handler = defineTaskProcessor({
        input: z.unknown(),
        cancelOnAbort: { everySeconds: 1, client: { get } },
        run: async (_input, { signal }) => {
          await sleep(60_000, undefined, { signal }).catch(() => {});
          reason = signal.reason;
          throw signal.reason;
        },
      });
      const replied = handler(request({}));
      await vi.advanceTimersByTimeAsync(3000);
      expect(await replied).toMatchObject({ status: 'error', error: { code: 'ABORTED' } });
      expect(reason).toBeInstanceOf(JobAbortedError);
      expect(get.mock.calls).toEqual([['job-1'], ['job-1'], ['job-1']]);
    });

    it('is refused when misconfigured, when the processor is defined', () => {
      const run = () => null;
      expect(() => defineTaskProcessor({ input: z.unknown(), run, cancelOnAbort: { everySeconds: 1 } })).toThrow(
        'cancelOnAbort needs exactly one of isAborted or client',
      );
      expect(() =>
        defineTaskProcessor({ input: z.unknown(), run, cancelOnAbort: { everySeconds: 0, isAborted: () => false } }),
      ).toThrow('cancelOnAbort.everySeconds must be a number of at least 0.1, not 0');
    });
  });

  it('says so when the function is sent something other than a task', async () => {
    const handler = defineTaskProcessor({ input: z.unknown(), run: () => null });
    await expect(handler({ job: { id: 'j', type: 't' }, chunk: { rows: [] } } as never)).rejects.toThrow(
      'a task processor was sent a batch chunk: build chunk processors with defineRowProcessor',
    );
    await expect(handler({} as never)).rejects.toThrow('the event is not a task request');
  });

  it('knows a ProcessorError from another copy of the kit', () => {
    const foreign = Object.assign(new Error('x'), { [Symbol.for('@serverless-jobs/processor.ProcessorError')]: true });
    expect(foreign instanceof ProcessorError).toBe(true);
    expect(new ProcessorError('A', 'b') instanceof JobAbortedError).toBe(false);
    expect(new Error('x') instanceof ProcessorError).toBe(false);
  });
});
