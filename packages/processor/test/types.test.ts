import { describe, expect, expectTypeOf, it } from 'vitest';
import * as z from 'zod';
import type { chunkReplySchema, taskReplySchema } from '../../../shared/core/processor-replies.js';
import { type ChunkReply, defineRowProcessor, defineTaskProcessor, type TaskReply } from '../src/index.js';

/**
 * The compile-time half of the contract: `npx tsc -p .` (npm test's typecheck) fails if a line
 * marked @ts-expect-error compiles, i.e. if a result that is not JSON stops being a type error.
 */
interface Posting {
  account: string;
  amountMinor: number;
  note?: string;
  tags: readonly string[];
}

describe('types', () => {
  it('take the reply types from the server schemas', () => {
    expectTypeOf<TaskReply>().toEqualTypeOf<z.input<typeof taskReplySchema>>();
    expectTypeOf<ChunkReply>().toEqualTypeOf<z.input<typeof chunkReplySchema>>();
  });

  it('infer the run input from the schema, and accept plain data (interfaces too) as results', async () => {
    const handler = defineTaskProcessor({
      input: z.object({ account: z.string(), cents: z.number().default(0) }),
      run: ({ account, cents }): Posting => {
        expectTypeOf(account).toBeString();
        expectTypeOf(cents).toBeNumber();
        return { account, amountMinor: cents, tags: [] };
      },
    });
    defineTaskProcessor({ input: z.unknown(), run: async (input) => ({ echo: input }) });
    defineTaskProcessor({ input: z.unknown(), run: () => {} });
    defineRowProcessor({ row: z.string(), run: (row) => [row, row.length, null, { nested: true }] });
    const reply = await handler({
      job: { id: 'j', type: 't' },
      task: { id: 'j.0', processor: 'p', attempt: 1, input: { account: 'A' } },
    });
    expect(reply).toEqual({ status: 'ok', result: { account: 'A', amountMinor: 0, tags: [] } });
  });

  it('refuse a run whose result is not JSON at compile time, and reply CONTRACT_VIOLATION at run time', async () => {
    const input = z.object({});
    // @ts-expect-error a Date is not JSON (it would arrive as a string)
    defineTaskProcessor({ input, run: () => ({ at: new Date() }) });
    // @ts-expect-error a bigint cannot be serialized at all
    const bigint = defineTaskProcessor({ input, run: async () => ({ total: 10n }) });
    // @ts-expect-error a Map serializes as {}
    defineRowProcessor({ row: input, run: () => new Map<string, number>() });
    // @ts-expect-error a function is dropped by JSON.stringify
    const fn = defineRowProcessor({ row: input, run: () => ({ format: (n: number) => n.toFixed(2) }) });
    // @ts-expect-error outputs.write takes one line of text, not a value
    defineRowProcessor({ row: input, run: (_row, ctx) => ctx.outputs.write('totals', { n: 1 }) });
    // @ts-expect-error a message is JSON
    defineRowProcessor({ row: input, run: (_row, ctx) => ctx.message(new Set()) });

    const task = await bigint({
      job: { id: 'j', type: 't' },
      task: { id: 'j.0', processor: 'p', attempt: 1, input: {} },
    });
    expect(task).toMatchObject({ status: 'error', error: { code: 'CONTRACT_VIOLATION', retryable: false } });
    const rows = await fn({
      job: { id: 'j', type: 't' },
      chunk: { index: 0, attempt: 1, context: {}, rows: [{ line: 1, input: {} }] },
    });
    expect(rows.rows).toEqual([
      {
        line: 1,
        status: 'error',
        error: { code: 'CONTRACT_VIOLATION', message: 'result.format is a function, which is not JSON' },
      },
    ]);
  });
});
