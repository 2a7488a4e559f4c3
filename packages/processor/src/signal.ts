import type { ProcessorJobView } from '../../../shared/core/ports.js';
import { DeadlineError, JobAbortedError } from './errors.js';

/** What Lambda's context must offer (the rest of it is not needed). */
export interface DeadlineContext {
  getRemainingTimeInMillis(): number;
}

/**
 * Opt-in: `ctx.signal` also aborts once the job has ended while the task runs (aborted by its
 * owner, or failed by `failFast`), so a long task stops early. Give one of the two ways to look:
 * - `isAborted(job, signal)`: your own check, e.g. a read of your own state;
 * - `client`: anything with `get(id)` answering the public `GET /v1/jobs/{id}` (the
 *   `@serverless-jobs/client` JobsClient is one), with credentials allowed to read the job.
 * Each look is one API call: a strongly consistent DynamoDB read behind API Gateway and the API
 * function (README, "Cost of cancelOnAbort").
 */
export interface CancelOnAbort {
  /** Seconds between looks (at least 0.1); the first look is one interval after the start. */
  everySeconds: number;
  isAborted?: (job: ProcessorJobView, signal: AbortSignal) => boolean | Promise<boolean>;
  client?: { get(id: string): Promise<{ status?: string }> };
}

/** How long before the Lambda deadline `ctx.signal` aborts, by default. */
export const DEFAULT_DEADLINE_MARGIN_MS = 1000;

const ENDED = new Set(['SUCCEEDED', 'FAILED', 'ABORTED']);

/** Refuses a configuration that cannot work, when the processor is defined (at cold start). */
export function checkCancel(cancel: CancelOnAbort | undefined): void {
  if (cancel === undefined) return;
  if (!(Number.isFinite(cancel.everySeconds) && cancel.everySeconds >= 0.1)) {
    throw new TypeError(`cancelOnAbort.everySeconds must be a number of at least 0.1, not ${cancel.everySeconds}`);
  }
  if ((cancel.isAborted === undefined) === (cancel.client === undefined)) {
    throw new TypeError('cancelOnAbort needs exactly one of isAborted or client');
  }
}

export function checkMargin(margin: number | undefined): number {
  if (margin === undefined) return DEFAULT_DEADLINE_MARGIN_MS;
  if (!(Number.isFinite(margin) && margin >= 0)) {
    throw new TypeError(`deadlineMarginMs must be a number of at least 0, not ${margin}`);
  }
  return margin;
}

/**
 * The signal a run gets: aborted `marginMs` before the deadline, but never in the first three
 * quarters of the time left (reason `DeadlineError`), when
 * `external` aborts (an HTTP caller hung up), or when the job ended (reason `JobAbortedError`).
 * `marginMs` is the margin it keeps; `dispose` stops its timers and any look in flight.
 */
export function runSignal(options: {
  job: ProcessorJobView;
  remainingMs: number | undefined;
  marginMs: number;
  external?: AbortSignal | undefined;
  cancel?: CancelOnAbort | undefined;
}): { signal: AbortSignal; marginMs: number; dispose(): void } {
  const controller = new AbortController();
  let deadline: ReturnType<typeof setTimeout> | undefined;
  let poll: ReturnType<typeof setTimeout> | undefined;
  const ended = new AbortController();
  const abort = (reason: unknown) => {
    if (!controller.signal.aborted) controller.abort(reason);
  };
  // A margin as long as the function's whole timeout would stop every run before it starts
  // (every row of every chunk retried until it fails): a run always keeps 3/4 of its time.
  const margin =
    options.remainingMs === undefined
      ? options.marginMs
      : Math.min(options.marginMs, Math.floor(options.remainingMs / 4));
  if (options.remainingMs !== undefined) {
    deadline = setTimeout(() => abort(new DeadlineError(margin)), options.remainingMs - margin);
  }
  const external = options.external;
  const onExternal = () => abort(external?.reason);
  if (external?.aborted) abort(external.reason);
  else external?.addEventListener('abort', onExternal, { once: true });

  const cancel = options.cancel;
  if (cancel) {
    const look = cancel.isAborted
      ? () => cancel.isAborted?.(options.job, ended.signal)
      : async () => ENDED.has(String((await cancel.client?.get(options.job.id))?.status));
    const tick = async () => {
      try {
        if (await look()) return abort(new JobAbortedError());
      } catch {
        // A look that fails says nothing about the job: the next one may.
      }
      if (!ended.signal.aborted && !controller.signal.aborted) schedule();
    };
    const schedule = () => {
      poll = setTimeout(tick, cancel.everySeconds * 1000);
    };
    schedule();
  }
  return {
    signal: controller.signal,
    marginMs: margin,
    dispose: () => {
      clearTimeout(deadline);
      clearTimeout(poll);
      ended.abort();
      external?.removeEventListener('abort', onExternal);
    },
  };
}
