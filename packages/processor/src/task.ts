import * as z from 'zod';
import type { ProcessorJobView, TaskRequest } from '../../../shared/core/ports.js';
import { taskReplySchema } from '../../../shared/core/processor-replies.js';
import { ContractError, JobAbortedError, ProcessorError } from './errors.js';
import { type JsonResult, jsonProblem } from './json.js';
import { collectLog, type Log } from './log.js';
import { type CancelOnAbort, checkCancel, checkMargin, type DeadlineContext, runSignal } from './signal.js';

/** What a Lambda task processor replies (the server's own schema: shared/core/schemas.ts). */
export type TaskReply = z.input<typeof taskReplySchema>;

export interface TaskContext {
  job: ProcessorJobView;
  task: { id: string; name?: string; processor: string; attempt: number };
  /** 1 on the first attempt, counting up on each retry. */
  attempt: number;
  /** Aborts before the Lambda deadline (`DeadlineError`) and, with `cancelOnAbort`, when the job ended (`JobAbortedError`). */
  signal: AbortSignal;
  log: Log;
}

export interface TaskProcessorOptions<S extends z.core.$ZodType, R> {
  /** The task's `input` is parsed with it; a bad input is the final error `INVALID_INPUT`. */
  input: S;
  /** The task's work: what it returns is the result; a `ProcessorError` it throws is the task's error. */
  run(input: z.output<S>, ctx: TaskContext): R | Promise<R>;
  cancelOnAbort?: CancelOnAbort;
  /** How long before the Lambda deadline `ctx.signal` aborts (default 1000 ms). */
  deadlineMarginMs?: number;
}

/** How the HTTP adapters (or a test) run a processor without a Lambda context. */
export interface RunOptions {
  /** Aborts `ctx.signal` too (an HTTP caller that hung up). */
  signal?: AbortSignal;
  /** Time left before a deadline; none, no deadline. */
  remainingMs?: number;
}

/** A Lambda handler speaking the task contract; `process` is the same without a Lambda context. */
export interface TaskProcessor {
  (event: TaskRequest, context?: DeadlineContext): Promise<TaskReply>;
  readonly kind: 'tasks';
  process(event: TaskRequest, options?: RunOptions): Promise<TaskReply>;
}

/** One line naming every problem zod found: where, and what. */
export function issuesLine(error: z.core.$ZodError, what: string): string {
  const issues = error.issues.map((issue) => {
    // A record's bad key says only "Invalid key in record"; why is in the issues it carries.
    const inner = 'issues' in issue ? (issue.issues as { message: string }[]).map((i) => i.message).join(', ') : '';
    return `${issue.path.map(String).join('.') || what}: ${inner || issue.message}`;
  });
  const shown = issues.slice(0, 10).join('; ');
  return (issues.length > 10 ? `${shown}; and ${issues.length - 10} more` : shown).slice(0, 4096);
}

function errorReply(error: ProcessorError): TaskReply {
  return { status: 'error', error: { code: error.code, message: error.message, retryable: error.retryable } };
}

export function defineTaskProcessor<S extends z.core.$ZodType, R>(
  options: TaskProcessorOptions<S, R> & JsonResult<R>,
): TaskProcessor {
  checkCancel(options.cancelOnAbort);
  const marginMs = checkMargin(options.deadlineMarginMs);

  const process = async (event: TaskRequest, run: RunOptions = {}): Promise<TaskReply> => {
    const task = taskOf(event);
    const { log, entries } = collectLog();
    const withLog = (reply: TaskReply): TaskReply => {
      const logged = entries();
      return logged.length > 0 ? { ...reply, log: logged } : reply;
    };
    const parsed = await z.safeParseAsync(options.input, task.input);
    if (!parsed.success) {
      return errorReply(new ProcessorError('INVALID_INPUT', issuesLine(parsed.error, 'input')));
    }
    const { signal, dispose } = runSignal({
      job: event.job,
      remainingMs: run.remainingMs,
      marginMs,
      external: run.signal,
      cancel: options.cancelOnAbort,
    });
    const ctx: TaskContext = {
      job: event.job,
      task: {
        id: task.id,
        ...(task.name !== undefined ? { name: task.name } : {}),
        processor: task.processor,
        attempt: task.attempt,
      },
      attempt: task.attempt,
      signal,
      log,
    };
    let result: unknown;
    try {
      result = await options.run(parsed.data, ctx);
    } catch (thrown) {
      if (thrown instanceof ProcessorError) return withLog(errorReply(thrown));
      // However the run gave up (an AbortError from a timer, its own error), the job's end is why.
      if (signal.reason instanceof JobAbortedError) return withLog(errorReply(signal.reason));
      // A crash: Lambda reports the throw and the worker retries it by the policy.
      throw thrown;
    } finally {
      dispose();
    }
    const problem = jsonProblem(result);
    const reply = withLog(
      problem ? errorReply(new ContractError(problem)) : { status: 'ok', ...(result !== undefined ? { result } : {}) },
    );
    const checked = taskReplySchema.safeParse(reply);
    if (!checked.success) return withLog(errorReply(new ContractError(issuesLine(checked.error, 'reply'))));
    return reply;
  };

  const handler = ((event: TaskRequest, context?: DeadlineContext) =>
    process(event, {
      ...(typeof context?.getRemainingTimeInMillis === 'function'
        ? { remainingMs: context.getRemainingTimeInMillis() }
        : {}),
    })) as TaskProcessor;
  Object.defineProperty(handler, 'kind', { value: 'tasks' });
  handler.process = process;
  return handler;
}

/** The request's task, or a clear crash when the function was wired to something else. */
function taskOf(event: TaskRequest): TaskRequest['task'] {
  const task = (event as Partial<TaskRequest> | undefined)?.task;
  if (typeof task !== 'object' || task === null || typeof task.attempt !== 'number' || typeof event.job !== 'object') {
    const chunk = typeof (event as { chunk?: unknown } | undefined)?.chunk === 'object';
    throw new TypeError(
      chunk
        ? 'a task processor was sent a batch chunk: build chunk processors with defineRowProcessor and register them with kind "chunks"'
        : 'the event is not a task request of the processor contract ({"job": {...}, "task": {...}})',
    );
  }
  return task;
}
