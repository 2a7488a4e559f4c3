import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as z from 'zod';
import { readChunkReply } from '../../../shared/core/batches/rules.js';
import { type ChunkRequest, defineRowProcessor, ProcessorError } from '../src/index.js';

const chunk = (inputs: unknown[], attempt = 1, context: Record<string, unknown> = {}): ChunkRequest => ({
  job: { id: 'batch-1', type: 'import' },
  chunk: { index: 4, attempt, context, rows: inputs.map((input, i) => ({ line: 401 + i, input })) },
});

/** What the worker makes of a reply to `request` (shared/core/batches/rules.ts), on round `attempt` of `max`. */
const worker = (reply: unknown, request: ChunkRequest, max = 3) =>
  readChunkReply(
    reply,
    request.chunk.rows.map(({ line, input }) => ({ line, input })),
    request.chunk.attempt,
    max,
  );

/** A wait on the global timers (which fake timers drive), ended early by `signal`. */
const pause = <T>(ms: number, value: T, signal?: AbortSignal) =>
  new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => resolve(value), ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });

afterEach(() => {
  vi.useRealTimers();
});

const account = z.object({ account: z.string().min(1), amount: z.number() });

describe('defineRowProcessor', () => {
  it('answers every row with its result and outputs, in line order; the worker settles them all', async () => {
    const handler = defineRowProcessor({
      row: account,
      run: (row, ctx) => {
        ctx.outputs.write('totals', `${row.account};${row.amount * 2}`);
        ctx.message(`seen in chunk ${ctx.chunk.index}`);
        return { account: row.account, doubled: row.amount * 2, line: ctx.line };
      },
    });
    const request = chunk([
      { account: 'A1', amount: 5 },
      { account: 'A2', amount: 7 },
    ]);
    const reply = await handler(request);
    expect(reply).toEqual({
      rows: [
        {
          line: 401,
          status: 'ok',
          result: { account: 'A1', doubled: 10, line: 401 },
          messages: ['seen in chunk 4'],
          outputs: { totals: 'A1;10' },
        },
        {
          line: 402,
          status: 'ok',
          result: { account: 'A2', doubled: 14, line: 402 },
          messages: ['seen in chunk 4'],
          outputs: { totals: 'A2;14' },
        },
      ],
    });
    expect(worker(reply, request)).toMatchObject({
      kind: 'replied',
      retry: [],
      settled: [
        { line: 401, status: 'SUCCEEDED', outputs: { totals: 'A1;10' } },
        { line: 402, status: 'SUCCEEDED', outputs: { totals: 'A2;14' } },
      ],
    });
  });

  it('fails a bad row alone with INVALID_ROW; the others run', async () => {
    const run = vi.fn((row: z.output<typeof account>) => row.account);
    const handler = defineRowProcessor({ row: account, run });
    const request = chunk([{ account: 'A1', amount: 5 }, { account: '', amount: 'lots' }, 'not a row']);
    const reply = await handler(request);
    expect(reply.rows).toEqual([
      { line: 401, status: 'ok', result: 'A1' },
      {
        line: 402,
        status: 'error',
        error: {
          code: 'INVALID_ROW',
          message:
            'account: Too small: expected string to have >=1 characters; amount: Invalid input: expected number, received string',
        },
      },
      {
        line: 403,
        status: 'error',
        error: { code: 'INVALID_ROW', message: 'row: Invalid input: expected object, received string' },
      },
    ]);
    expect(run).toHaveBeenCalledTimes(1);
    expect(worker(reply, request)).toMatchObject({
      settled: [{ status: 'SUCCEEDED' }, { status: 'FAILED' }, { status: 'FAILED', error: { code: 'INVALID_ROW' } }],
    });
  });

  it('runs at most `concurrency` rows at once, and all of them', async () => {
    let running = 0;
    let most = 0;
    const handler = defineRowProcessor({
      row: z.number(),
      concurrency: 3,
      run: async (n) => {
        running++;
        most = Math.max(most, running);
        // Later rows finish first: the reply is in line order all the same.
        await sleep(20 - n);
        running--;
        return n;
      },
    });
    const reply = await handler(chunk(Array.from({ length: 10 }, (_, i) => i)));
    expect(most).toBe(3);
    expect(reply.rows.map((row) => [row.line, row.result])).toEqual(Array.from({ length: 10 }, (_, i) => [401 + i, i]));
  });

  it('asks the worker to retry a row whose error is retryable, or which crashed; other errors are final', async () => {
    const handler = defineRowProcessor({
      row: z.enum(['ok', 'busy', 'bad', 'bug']),
      run: (row, ctx) => {
        if (row === 'busy') throw new ProcessorError('RATE_LIMITED', 'try later', { retryable: true });
        if (row === 'bad') {
          ctx.message('account closed');
          throw new ProcessorError('CLOSED', 'the account is closed');
        }
        if (row === 'bug') throw new TypeError('cannot read properties of undefined');
        return row;
      },
    });
    const request = chunk(['ok', 'busy', 'bad', 'bug']);
    const reply = await handler(request);
    expect(reply.rows).toEqual([
      { line: 401, status: 'ok', result: 'ok' },
      { line: 402, status: 'retry', error: { code: 'RATE_LIMITED', message: 'try later' } },
      {
        line: 403,
        status: 'error',
        error: { code: 'CLOSED', message: 'the account is closed' },
        messages: ['account closed'],
      },
      { line: 404, status: 'retry', error: { message: 'TypeError: cannot read properties of undefined' } },
    ]);
    const round = worker(reply, request);
    expect(round.kind === 'replied' && round.retry.map((row) => row.line)).toEqual([402, 404]);
    // On the last round, a row still asking to retry fails with its own code, or RETRIES_EXHAUSTED.
    const last = chunk(['busy', 'bug'], 3);
    expect(worker(await handler(last), last)).toMatchObject({
      retry: [],
      settled: [
        { line: 401, status: 'FAILED', error: { code: 'RATE_LIMITED', message: 'try later' } },
        {
          line: 402,
          status: 'FAILED',
          error: { code: 'RETRIES_EXHAUSTED', message: 'TypeError: cannot read properties of undefined' },
        },
      ],
    });
  });

  it('fails a row with CONTRACT_VIOLATION for an output or result the contract refuses', async () => {
    const handler = defineRowProcessor({
      row: z.string(),
      run: (row, ctx) => {
        if (row === 'reserved') ctx.outputs.write('errors', 'x');
        if (row === 'name') ctx.outputs.write('my output', 'x');
        if (row === 'break') ctx.outputs.write('lines', 'two\nlines');
        if (row === 'bigint') return { n: 1n } as never;
        return row;
      },
    });
    const reply = await handler(chunk(['reserved', 'name', 'break', 'bigint', 'fine']));
    expect(reply.rows).toEqual([
      {
        line: 401,
        status: 'error',
        error: { code: 'CONTRACT_VIOLATION', message: 'output errors: results and errors are reserved' },
      },
      {
        line: 402,
        status: 'error',
        error: { code: 'CONTRACT_VIOLATION', message: 'output my output: must be 1..64 of A-Z a-z 0-9 _ . -' },
      },
      {
        line: 403,
        status: 'error',
        error: { code: 'CONTRACT_VIOLATION', message: 'output lines: one line: no line breaks' },
      },
      {
        line: 404,
        status: 'error',
        error: { code: 'CONTRACT_VIOLATION', message: 'result.n is a bigint, which is not JSON' },
      },
      { line: 405, status: 'ok', result: 'fine' },
    ]);
  });

  it('gives each row the chunk, its context and the round', async () => {
    const seen: unknown[] = [];
    const handler = defineRowProcessor({
      row: z.unknown(),
      run: (_row, { job, chunk: c, line, attempt }) => {
        seen.push({ job, chunk: c, line, attempt });
      },
    });
    expect(await handler(chunk(['a'], 2, { ledger: 'eu' }))).toEqual({ rows: [{ line: 401, status: 'ok' }] });
    expect(seen).toEqual([
      {
        job: { id: 'batch-1', type: 'import' },
        chunk: { index: 4, attempt: 2, context: { ledger: 'eu' } },
        line: 401,
        attempt: 2,
      },
    ]);
  });

  it('replies before the Lambda deadline: rows not finished by then are retried, the rest kept', async () => {
    vi.useFakeTimers();
    const handler = defineRowProcessor({
      row: z.number(),
      concurrency: 2,
      deadlineMarginMs: 800,
      // Each row takes a second; a row that sees the signal stops.
      run: (ms, { signal }) => pause(ms, ms, signal),
    });
    const request = chunk([1000, 1000, 1000, 1000, 60_000, 1000, 1000]);
    const replied = handler(request, { getRemainingTimeInMillis: () => 3500 });
    await vi.advanceTimersByTimeAsync(3500);
    const reply = await replied;
    // Rows 1-2 in the first second, 3-4 in the second; rows 5 and 6 were running at the deadline,
    // row 7 never started.
    expect(reply.rows.map((row) => [row.line, row.status])).toEqual([
      [401, 'ok'],
      [402, 'ok'],
      [403, 'ok'],
      [404, 'ok'],
      [405, 'retry'],
      [406, 'retry'],
      [407, 'retry'],
    ]);
    expect(reply.rows[4]).toEqual({
      line: 405,
      status: 'retry',
      error: { code: 'DEADLINE', message: 'the Lambda deadline is 800 ms away: stopping before it' },
    });
    expect(reply.rows[6]).toEqual(reply.rows[4] && { ...reply.rows[4], line: 407 });
    expect(worker(reply, request)).toMatchObject({
      kind: 'replied',
      retry: [{ line: 405 }, { line: 406 }, { line: 407 }],
    });
  });

  it('does not wait on a row that ignores the signal past half the margin', async () => {
    vi.useFakeTimers();
    const handler = defineRowProcessor({
      row: z.number(),
      deadlineMarginMs: 1000,
      run: (ms) => pause(ms, ms),
    });
    // 2 s left: the margin is capped at a quarter of it, 500 ms; the straggler gets 250 ms more.
    let settled = false;
    const replied = handler(chunk([60_000]), { getRemainingTimeInMillis: () => 2000 }).finally(() => {
      settled = true;
    });
    await vi.advanceTimersByTimeAsync(1749);
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect((await replied).rows).toEqual([
      {
        line: 401,
        status: 'retry',
        error: { code: 'DEADLINE', message: 'the Lambda deadline is 500 ms away: stopping before it' },
      },
    ]);
  });

  it('says so when the function is sent a task, and refuses a concurrency below 1', async () => {
    const handler = defineRowProcessor({ row: z.unknown(), run: () => null });
    await expect(handler({ job: { id: 'j', type: 't' }, task: { id: 'j.0' } } as never)).rejects.toThrow(
      'a row processor was sent a task: build task processors with defineTaskProcessor',
    );
    expect(() => defineRowProcessor({ row: z.unknown(), concurrency: 0, run: () => null })).toThrow(
      'concurrency must be a whole number of at least 1, not 0',
    );
  });
});
