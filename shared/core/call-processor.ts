import type { TaskError } from './model.js';
import type { Processor } from './processors.js';

/** A processor call that gave no reply to use: why, and whether another attempt may help. */
export interface CallFailure {
  status: 'error';
  error: TaskError;
  retryable: boolean;
}

export interface CallOptions {
  /** The worker's own deadline: aborts the call early (a retryable crash, not a timeout). */
  signal?: AbortSignal;
  /** Something to do once the call has run this long (write a lease); awaited before returning. */
  whileRunning?: { afterMs: number; run: () => Promise<void> };
}

/**
 * Calls a processor within its timeout, for tasks and chunks alike. The call gets a signal that
 * aborts at the processor's `timeoutSeconds` (or the worker's own deadline); an invoker that
 * throws is a retryable crash; and only what the deadline cut short becomes a `timeout` — a final
 * error that raced it stays what it was.
 */
export async function callProcessor<R extends { status: string }>(
  processor: Pick<Processor, 'timeoutSeconds'>,
  call: (signal: AbortSignal) => Promise<R | CallFailure>,
  options: CallOptions = {},
): Promise<R | CallFailure> {
  const deadline = AbortSignal.timeout(processor.timeoutSeconds * 1000);
  const signal = options.signal ? AbortSignal.any([deadline, options.signal]) : deadline;
  let running: Promise<void> | undefined;
  const timer = options.whileRunning
    ? setTimeout(() => {
        running = options.whileRunning!.run();
      }, options.whileRunning.afterMs)
    : undefined;
  let outcome: R | CallFailure;
  try {
    outcome = await call(signal);
  } catch (error) {
    outcome = { status: 'error', error: { kind: 'crash', message: String(error) }, retryable: true };
  } finally {
    clearTimeout(timer);
    await running;
  }
  if (deadline.aborted && isRetryableFailure(outcome)) {
    return {
      status: 'error',
      error: { kind: 'timeout', message: `no reply within ${processor.timeoutSeconds} s` },
      retryable: true,
    };
  }
  return outcome;
}

function isRetryableFailure(outcome: { status: string }): outcome is CallFailure {
  return outcome.status === 'error' && (outcome as CallFailure).retryable;
}
