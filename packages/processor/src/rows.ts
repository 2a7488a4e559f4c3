import * as z from 'zod';
import type { ChunkRequest, ProcessorJobView } from '../../../shared/core/ports.js';
import { chunkReplySchema } from '../../../shared/core/processor-replies.js';
import { ContractError, DeadlineError, describe, ProcessorError } from './errors.js';
import { type JsonResult, type JsonValue, jsonProblem } from './json.js';
import { checkMargin, type DeadlineContext, runSignal } from './signal.js';
import { issuesLine, type RunOptions } from './task.js';

/** What a Lambda chunk processor replies (the server's own schema: shared/core/batches/rules.ts). */
export type ChunkReply = z.input<typeof chunkReplySchema>;
export type RowReply = ChunkReply['rows'][number];

const rowReplySchema = chunkReplySchema.shape.rows.element;
const MAX_MESSAGES = 100;

export interface RowOutputs {
  /**
   * Writes this row's line of the output file `name` (assembled in line order into one object,
   * `batch.outputs.NAME`). One line of text: no line breaks, at most 64 KiB; `name` is 1..64 of
   * A-Z a-z 0-9 _ . - and not `results` or `errors`. A second write to a name replaces the first.
   * Kept only when the row succeeds.
   */
  write(name: string, line: string): void;
}

export interface RowContext {
  job: ProcessorJobView;
  chunk: { index: number; attempt: number; context: Record<string, unknown> };
  /** The row's line in the batch's input (1-based). */
  line: number;
  /** The chunk's round: 1, then one more each time rows asked to be retried. */
  attempt: number;
  /** Aborts before the Lambda deadline (`DeadlineError`): rows not finished by then are retried. */
  signal: AbortSignal;
  outputs: RowOutputs;
  /** Adds a message to the row's outcome (`GET /v1/jobs/{id}/rows`), kept whether it succeeds or fails; at most 100. */
  message(value: JsonValue): void;
}

export interface RowProcessorOptions<S extends z.core.$ZodType, R> {
  /** Each row's input is parsed with it; a bad row fails alone with `INVALID_ROW`. */
  row: S;
  /** How many rows of a chunk run at once (default 1). */
  concurrency?: number;
  /** One row's work: what it returns is the row's result; a `ProcessorError` it throws is the row's error. */
  run(row: z.output<S>, ctx: RowContext): R | Promise<R>;
  /** How long before the Lambda deadline `ctx.signal` aborts (default 1000 ms). */
  deadlineMarginMs?: number;
}

/** A Lambda handler speaking the chunk contract; `process` is the same without a Lambda context. */
export interface RowProcessor {
  (event: ChunkRequest, context?: DeadlineContext): Promise<ChunkReply>;
  readonly kind: 'chunks';
  process(event: ChunkRequest, options?: RunOptions): Promise<ChunkReply>;
}

export function defineRowProcessor<S extends z.core.$ZodType, R>(
  options: RowProcessorOptions<S, R> & JsonResult<R>,
): RowProcessor {
  const concurrency = options.concurrency ?? 1;
  if (!(Number.isInteger(concurrency) && concurrency >= 1)) {
    throw new TypeError(`concurrency must be a whole number of at least 1, not ${options.concurrency}`);
  }
  const marginMs = checkMargin(options.deadlineMarginMs);

  const runRow = async (
    event: ChunkRequest,
    { line, input }: { line: number; input: unknown },
    signal: AbortSignal,
  ): Promise<RowReply> => {
    const parsed = await z.safeParseAsync(options.row, input);
    if (!parsed.success) {
      return { line, status: 'error', error: { code: 'INVALID_ROW', message: issuesLine(parsed.error, 'row') } };
    }
    const outputs: Record<string, string> = {};
    let wrote = false;
    const messages: JsonValue[] = [];
    const { index, attempt, context } = event.chunk;
    const ctx: RowContext = {
      job: event.job,
      chunk: { index, attempt, context },
      line,
      attempt,
      signal,
      outputs: {
        write: (name, text) => {
          const problem = outputProblem(name, text);
          if (problem) throw new ContractError(problem);
          outputs[name] = text;
          wrote = true;
        },
      },
      message: (value) => {
        if (messages.length >= MAX_MESSAGES) throw new ContractError(`at most ${MAX_MESSAGES} messages per row`);
        const problem = jsonProblem(value, 'message');
        if (problem) throw new ContractError(problem);
        messages.push(value);
      },
    };
    const said = () => (messages.length > 0 ? { messages } : {});
    let result: unknown;
    try {
      result = await options.run(parsed.data, ctx);
    } catch (thrown) {
      if (thrown instanceof ProcessorError) {
        return {
          line,
          status: thrown.retryable ? 'retry' : 'error',
          error: { code: thrown.code, message: thrown.message },
          ...said(),
        };
      }
      // However a row gave up at the deadline, it is retried in a later round, as an unstarted one is.
      if (signal.reason instanceof DeadlineError) return deadlineRetry(line, signal.reason, said());
      // A crash of one row is that row's retry (no code: once retries run out the worker says
      // RETRIES_EXHAUSTED, with this message); the rest of the chunk keeps its outcomes.
      return { line, status: 'retry', error: { message: describe(thrown) }, ...said() };
    }
    const problem = jsonProblem(result);
    if (problem) return { line, status: 'error', error: { code: 'CONTRACT_VIOLATION', message: problem }, ...said() };
    const reply: RowReply = {
      line,
      status: 'ok',
      ...(result !== undefined ? { result } : {}),
      ...said(),
      ...(wrote ? { outputs } : {}),
    };
    const checked = rowReplySchema.safeParse(reply);
    if (!checked.success) {
      const error = { code: 'CONTRACT_VIOLATION', message: issuesLine(checked.error, 'reply') };
      return { line, status: 'error', error };
    }
    return reply;
  };

  const process = async (event: ChunkRequest, run: RunOptions = {}): Promise<ChunkReply> => {
    const rows = rowsOf(event);
    const {
      signal,
      marginMs: margin,
      dispose,
    } = runSignal({
      job: event.job,
      remainingMs: run.remainingMs,
      marginMs,
      external: run.signal,
    });
    const replies: (RowReply | undefined)[] = new Array(rows.length);
    let next = 0;
    let graceTimer: ReturnType<typeof setTimeout> | undefined;
    const worker = async () => {
      // No row starts once the deadline is near; the ones left are retried in a later round.
      while (next < rows.length && !signal.aborted) {
        const i = next++;
        replies[i] = await runRow(event, rows[i] as { line: number; input: unknown }, signal);
      }
    };
    try {
      const all = Promise.all(Array.from({ length: Math.min(concurrency, rows.length) }, worker));
      // Rows still running at the deadline get half the margin to finish; after that the reply
      // goes without them (they are retried) rather than the whole chunk timing out.
      const stop = new Promise<void>((resolve) => {
        const grace = () => {
          graceTimer = setTimeout(resolve, margin / 2);
        };
        if (signal.aborted) grace();
        else signal.addEventListener('abort', grace, { once: true });
      });
      await Promise.race([all, stop]);
    } finally {
      clearTimeout(graceTimer);
      dispose();
    }
    return { rows: rows.map(({ line }, i): RowReply => replies[i] ?? deadlineRetry(line, signal.reason, {})) };
  };

  const handler = ((event: ChunkRequest, context?: DeadlineContext) =>
    process(event, {
      ...(typeof context?.getRemainingTimeInMillis === 'function'
        ? { remainingMs: context.getRemainingTimeInMillis() }
        : {}),
    })) as RowProcessor;
  Object.defineProperty(handler, 'kind', { value: 'chunks' });
  handler.process = process;
  return handler;
}

function deadlineRetry(line: number, reason: unknown, said: { messages?: JsonValue[] }): RowReply {
  const message = reason instanceof Error ? reason.message : 'the chunk stopped before this row finished';
  return { line, status: 'retry', error: { code: 'DEADLINE', message }, ...said };
}

const outputsSchema = rowReplySchema.shape.outputs;

/** The contract's rules for an output line, said when it is written rather than after the row. */
function outputProblem(name: string, line: string): string | undefined {
  const checked = outputsSchema.safeParse({ [name]: line });
  return checked.success ? undefined : `output ${issuesLine(checked.error, name)}`;
}

function rowsOf(event: ChunkRequest): ChunkRequest['chunk']['rows'] {
  const rows = (event as Partial<ChunkRequest> | undefined)?.chunk?.rows;
  if (!Array.isArray(rows) || typeof event.job !== 'object') {
    const task = typeof (event as { task?: unknown } | undefined)?.task === 'object';
    throw new TypeError(
      task
        ? 'a row processor was sent a task: build task processors with defineTaskProcessor and register them with kind "tasks"'
        : 'the event is not a chunk request of the processor contract ({"job": {...}, "chunk": {...}})',
    );
  }
  return rows;
}
