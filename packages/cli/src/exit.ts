import { JobsApiError, TransferError, WaitTimeoutError } from '@serverless-jobs/client';

/**
 * The exit codes, one per thing a script may want to tell apart (README "Exit codes"). A job's
 * own outcome is kept apart from the CLI's: `watch` exits 10 when the job failed, even though
 * every call it made succeeded.
 */
export const EXIT = {
  OK: 0,
  /** A bug, or a local failure (a file that cannot be written). */
  ERROR: 1,
  /** Unknown command or option, bad argument, missing or bad configuration. */
  USAGE: 2,
  /** The API refused the request (VALIDATION_FAILED, UNKNOWN_PROCESSOR, INVALID_STATE, …). */
  REFUSED: 3,
  NOT_FOUND: 4,
  /** UNAUTHORIZED or FORBIDDEN: the credentials, or their lack. */
  AUTH: 5,
  /** No answer, or not one in the contract's shape: unreachable, INTERNAL, THROTTLED, a failed transfer. */
  UNAVAILABLE: 6,
  /** The job ended FAILED. */
  JOB_FAILED: 10,
  /** The job ended ABORTED. */
  JOB_ABORTED: 11,
  /** `--timeout` passed before the job settled. */
  TIMEOUT: 12,
  /** Ctrl-C: the job goes on, only watching stopped. */
  INTERRUPTED: 130,
} as const;

/** A mistake on the command line or in the configuration: exit 2, its message only. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** An error of the CLI's own with a contract-like code (a batch with no outputs yet). */
export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

function exitCodeOf(error: JobsApiError): number {
  if (error.code === 'NOT_FOUND') return EXIT.NOT_FOUND;
  if (error.code === 'UNAUTHORIZED' || error.code === 'FORBIDDEN') return EXIT.AUTH;
  if (error.status >= 500 || error.code === 'THROTTLED' || error.code === 'UNEXPECTED_RESPONSE')
    return EXIT.UNAVAILABLE;
  return EXIT.REFUSED;
}

export interface Report {
  code: string;
  message: string;
  details?: { path: string; message: string }[];
  exitCode: number;
}

/** What an error means to the user: a code, a message, details, and the exit code. */
export function reportOf(error: unknown, endpoint?: string): Report {
  if (error instanceof UsageError) return { code: 'USAGE', message: error.message, exitCode: EXIT.USAGE };
  if (error instanceof CliError) return { code: error.code, message: error.message, exitCode: error.exitCode };
  if (error instanceof JobsApiError) {
    return {
      code: error.code,
      message: error.message,
      ...(error.details.length ? { details: error.details } : {}),
      exitCode: exitCodeOf(error),
    };
  }
  if (error instanceof TransferError) {
    const message = `${error.code} (HTTP ${error.status}): ${error.message}`;
    return { code: 'TRANSFER_FAILED', message, exitCode: EXIT.UNAVAILABLE };
  }
  if (error instanceof WaitTimeoutError) {
    return { code: 'TIMEOUT', message: error.message, exitCode: EXIT.TIMEOUT };
  }
  // fetch's TypeError for no reply at all: the cause says why (ECONNREFUSED, ENOTFOUND…).
  if (error instanceof TypeError && error.cause instanceof Error) {
    const cause = error.cause as NodeJS.ErrnoException;
    return {
      code: 'UNREACHABLE',
      message: `no answer from ${endpoint ?? 'the API'}: ${cause.code ?? cause.message}`,
      exitCode: EXIT.UNAVAILABLE,
    };
  }
  const fsError = error as NodeJS.ErrnoException;
  if (error instanceof Error && typeof fsError.code === 'string' && typeof fsError.syscall === 'string') {
    return { code: fsError.code, message: error.message, exitCode: EXIT.ERROR };
  }
  return {
    code: 'ERROR',
    message: error instanceof Error ? (error.stack ?? error.message) : String(error),
    exitCode: 1,
  };
}

/** `code: message` and one line per detail; with --json the contract's error shape instead. */
export function formatReport(report: Report, json: boolean): string {
  if (json) {
    const { exitCode: _, ...error } = report;
    return `${JSON.stringify({ error })}\n`;
  }
  const lines = [report.code === 'USAGE' ? `error: ${report.message}` : `error: ${report.code}: ${report.message}`];
  for (const detail of report.details ?? []) lines.push(`  ${detail.path || '(body)'}: ${detail.message}`);
  return `${lines.join('\n')}\n`;
}
