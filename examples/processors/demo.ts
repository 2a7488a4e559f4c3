/**
 * The demo processors of API.md, written as ordinary Lambda handlers: the local stack registers
 * them as local functions, and they could be deployed unchanged.
 */

interface TaskEvent {
  job: { id: string; type: string };
  task: { id: string; attempt: number; input: unknown };
}

type Reply =
  | { status: 'ok'; result?: unknown }
  | { status: 'error'; error: { code?: string; message?: string; retryable?: boolean } };

const inputOf = (event: TaskEvent) => (event.task.input ?? {}) as Record<string, unknown>;

export const echo = async (event: TaskEvent): Promise<Reply> => ({ status: 'ok', result: { echo: event.task.input } });

export const fail = async (event: TaskEvent): Promise<Reply> => {
  const code = typeof inputOf(event).code === 'string' ? (inputOf(event).code as string) : 'DEMO_FAIL';
  return { status: 'error', error: { code, message: `demo.fail failed with ${code}`, retryable: false } };
};

export const crash = async (): Promise<Reply> => {
  throw new Error('demo.crash always throws');
};

export const flaky = async (event: TaskEvent): Promise<Reply> => {
  const failTimes = Number(inputOf(event).failTimes ?? 0);
  if (event.task.attempt <= failTimes)
    throw new Error(`demo.flaky: attempt ${event.task.attempt} of ${failTimes} failing`);
  return { status: 'ok', result: { attempt: event.task.attempt } };
};

/**
 * Waits `input.ms` (≤ 60 s). A cooperative processor: where it knows the jobs API
 * (`JOBS_API_URL`), it checks its job twice a second and stops early once the job is aborted.
 */
export const sleep = async (event: TaskEvent): Promise<Reply> => {
  const ms = Math.min(60_000, Math.max(0, Number(inputOf(event).ms ?? 0)));
  const api = process.env.JOBS_API_URL;
  const until = Date.now() + ms;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, Math.min(500, until - Date.now())));
    if (api && (await jobAborted(api, event.job.id))) {
      return { status: 'error', error: { code: 'ABORTED', message: 'job aborted; stopped early' } };
    }
  }
  return { status: 'ok', result: { slept: ms } };
};

async function jobAborted(api: string, jobId: string): Promise<boolean> {
  try {
    const response = await fetch(`${api}/v1/jobs/${encodeURIComponent(jobId)}`);
    return response.ok && ((await response.json()) as { status?: string }).status === 'ABORTED';
  } catch {
    return false;
  }
}

interface ChunkEvent {
  job: { id: string; type: string };
  chunk: { index: number; attempt: number; context: Record<string, unknown>; rows: { line: number; input: unknown }[] };
}

type RowReply = {
  line: number;
  status: 'ok' | 'error' | 'retry';
  result?: unknown;
  messages?: unknown[];
  outputs?: Record<string, string>;
  error?: { code?: string; message?: string };
};

/** Batch rows: each row echoed (result and an `echo` output line); `{"fail": true}` rows fail. */
export const rows = async (event: ChunkEvent): Promise<{ rows: RowReply[] }> => ({
  rows: event.chunk.rows.map(({ line, input }) =>
    input && typeof input === 'object' && (input as { fail?: unknown }).fail === true
      ? { line, status: 'error', error: { code: 'ROW_FAIL', message: `line ${line} asked to fail` } }
      : { line, status: 'ok', result: { echo: input }, outputs: { echo: JSON.stringify(input) } },
  ),
});
