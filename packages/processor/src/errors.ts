/** The contract's bounds on an error's fields (shared/core/schemas.ts `taskReplySchema`). */
const MAX_CODE = 256;
const MAX_MESSAGE = 4096;

// A brand rather than the class identity, so an error thrown by one copy of the kit (two bundles
// in one function) is still recognised by another.
const BRAND = Symbol.for('@serverless-jobs/processor.ProcessorError');

/**
 * A failure the processor reports on purpose: the task (or row) ends with `code` and `message`.
 * `retryable: true` asks the worker to try again by the processor's retry policy; the default is a
 * final error. Anything else thrown is a crash, which the worker always retries.
 */
export class ProcessorError extends Error {
  readonly code: string;
  readonly retryable: boolean;

  constructor(code: string, message: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super(message.slice(0, MAX_MESSAGE), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProcessorError';
    this.code = code.slice(0, MAX_CODE);
    this.retryable = options.retryable === true;
    Object.defineProperty(this, BRAND, { value: true });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    // Subclasses inherit this: for them, ordinary prototype identity.
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class instanceof was asked about.
    if (this !== ProcessorError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

/**
 * The job was aborted (or otherwise ended) while this task ran: `ctx.signal.reason` when
 * `cancelOnAbort` saw it. Thrown or not, a run that fails after it ends with this final error.
 */
export class JobAbortedError extends ProcessorError {
  constructor() {
    super('ABORTED', 'job aborted; stopped early');
    this.name = 'JobAbortedError';
  }
}

/**
 * The Lambda deadline is near (`ctx.signal.reason`): stop and let the attempt end. A run that fails
 * after it is a crash, retried by the processor's policy, as a timeout is.
 */
export class DeadlineError extends Error {
  constructor(readonly remainingMs: number) {
    super(`the Lambda deadline is ${remainingMs} ms away: stopping before it`);
    this.name = 'DeadlineError';
  }
}

/**
 * A processor's own bug that would put an off-contract reply on the wire (a result that is not
 * JSON, an output name the contract refuses): a final error with code `CONTRACT_VIOLATION`, since
 * running the same code again cannot fix it.
 */
export class ContractError extends ProcessorError {
  constructor(message: string) {
    super('CONTRACT_VIOLATION', message);
    this.name = 'ContractError';
  }
}

/** `Name: message` of anything thrown, for a crash's message. */
export function describe(thrown: unknown): string {
  if (thrown instanceof Error) return `${thrown.name}: ${thrown.message}`.slice(0, MAX_MESSAGE);
  return String(thrown).slice(0, MAX_MESSAGE);
}
