import { setTimeout as sleepFor } from 'node:timers/promises';
import * as z from 'zod';
import { defineRowProcessor, defineTaskProcessor, ProcessorError } from '../../packages/processor/src/index.js';

/**
 * The demo processors of API.md, built with the processor kit (packages/processor): ordinary
 * Lambda handlers that the local stack registers as local functions, and that deploy unchanged.
 * Their inputs are lenient on purpose (any JSON is accepted, a field of the wrong type reads as
 * absent): they demonstrate outcomes, not validation.
 */

export const echo = defineTaskProcessor({ input: z.unknown(), run: (input) => ({ echo: input }) });

export const fail = defineTaskProcessor({
  input: z.object({ code: z.string().optional().catch(undefined) }).catch({}),
  run: ({ code = 'DEMO_FAIL' }) => {
    throw new ProcessorError(code, `demo.fail failed with ${code}`);
  },
});

export const crash = defineTaskProcessor({
  input: z.unknown(),
  run: () => {
    throw new Error('demo.crash always throws');
  },
});

const count = z.coerce.number().catch(0);

export const flaky = defineTaskProcessor({
  input: z.object({ failTimes: count }).catch({ failTimes: 0 }),
  run: ({ failTimes }, { attempt }) => {
    if (attempt <= failTimes) throw new Error(`demo.flaky: attempt ${attempt} of ${failTimes} failing`);
    return { attempt };
  },
});

/**
 * Waits `input.ms` (≤ 60 s). A cooperative processor: where it knows the jobs API
 * (`JOBS_API_URL`), it checks its job twice a second and stops early once the job is aborted.
 */
export const sleep = defineTaskProcessor({
  input: z.object({ ms: count }).catch({ ms: 0 }),
  cancelOnAbort: { everySeconds: 0.5, isAborted: (job) => jobAborted(job.id) },
  // Its function's timeout is 61 s for a 60 s sleep: stop only in the last half second.
  deadlineMarginMs: 500,
  run: async ({ ms }, { signal }) => {
    const slept = Math.min(60_000, Math.max(0, ms));
    await sleepFor(slept, undefined, { signal });
    return { slept };
  },
});

async function jobAborted(jobId: string): Promise<boolean> {
  const api = process.env.JOBS_API_URL;
  if (!api) return false;
  try {
    const response = await fetch(`${api}/v1/jobs/${encodeURIComponent(jobId)}`);
    return response.ok && ((await response.json()) as { status?: string }).status === 'ABORTED';
  } catch {
    return false;
  }
}

/** Batch rows: each row echoed (result and an `echo` output line); `{"fail": true}` rows fail. */
export const rows = defineRowProcessor({
  row: z.unknown(),
  run: (input, ctx) => {
    if (input && typeof input === 'object' && (input as { fail?: unknown }).fail === true) {
      throw new ProcessorError('ROW_FAIL', `line ${ctx.line} asked to fail`);
    }
    ctx.outputs.write('echo', JSON.stringify(input));
    return { echo: input };
  },
});
