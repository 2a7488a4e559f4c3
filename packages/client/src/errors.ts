import type { ErrorCode, ErrorDetail } from './types.js';

/** Codes beside the contract's: replies that are not in its error shape (API Gateway's own, a proxy's). */
export type ClientErrorCode = ErrorCode | 'THROTTLED' | 'UNEXPECTED_RESPONSE';

/**
 * A refusal or failure the API answered, with the contract's `code`, `message` and `details`
 * unchanged. Each contract code has a subclass, so `catch (e) { if (e instanceof NotFoundError) … }`.
 */
export class JobsApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ClientErrorCode,
    message: string,
    readonly details: ErrorDetail[] = [],
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class ValidationError extends JobsApiError {
  declare readonly code: 'VALIDATION_FAILED';
}
export class UnknownProcessorError extends JobsApiError {
  declare readonly code: 'UNKNOWN_PROCESSOR';
}
export class NotFoundError extends JobsApiError {
  declare readonly code: 'NOT_FOUND';
}
export class MethodNotAllowedError extends JobsApiError {
  declare readonly code: 'METHOD_NOT_ALLOWED';
}
export class IdempotencyMismatchError extends JobsApiError {
  declare readonly code: 'IDEMPOTENCY_MISMATCH';
}
export class InvalidStateError extends JobsApiError {
  declare readonly code: 'INVALID_STATE';
}
export class PayloadTooLargeError extends JobsApiError {
  declare readonly code: 'PAYLOAD_TOO_LARGE';
}
export class UnsupportedMediaTypeError extends JobsApiError {
  declare readonly code: 'UNSUPPORTED_MEDIA_TYPE';
}
export class UnauthorizedError extends JobsApiError {
  declare readonly code: 'UNAUTHORIZED';
}
export class ForbiddenError extends JobsApiError {
  declare readonly code: 'FORBIDDEN';
}
export class InternalError extends JobsApiError {
  declare readonly code: 'INTERNAL';
}

/** Keyed by the server's own code list: a code added there fails this file's type check until it has a class. */
const CLASSES: Record<ErrorCode, typeof JobsApiError> = {
  VALIDATION_FAILED: ValidationError,
  UNKNOWN_PROCESSOR: UnknownProcessorError,
  NOT_FOUND: NotFoundError,
  METHOD_NOT_ALLOWED: MethodNotAllowedError,
  IDEMPOTENCY_MISMATCH: IdempotencyMismatchError,
  INVALID_STATE: InvalidStateError,
  PAYLOAD_TOO_LARGE: PayloadTooLargeError,
  UNSUPPORTED_MEDIA_TYPE: UnsupportedMediaTypeError,
  UNAUTHORIZED: UnauthorizedError,
  FORBIDDEN: ForbiddenError,
  INTERNAL: InternalError,
};

/** `wait()` ran out of time before the job settled; `last` is the job as last seen. */
export class WaitTimeoutError<V = unknown> extends Error {
  constructor(
    readonly jobId: string,
    readonly last: V | undefined,
  ) {
    super(`Job ${jobId} did not settle in time`);
    this.name = 'WaitTimeoutError';
  }
}

/** An upload to, or download from, a presigned S3 URL failed (S3 answers in XML, not the contract's shape). */
export class TransferError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'TransferError';
  }
}

/**
 * The error a reply stands for. The contract's shape maps to its code's class; API Gateway's own
 * refusals (`{"message":"Forbidden"}` for IAM, `Unauthorized` for JWT, `Too Many Requests`) to the
 * nearest code, so a caller handles an unsigned request like any other refusal.
 */
export function errorOf(status: number, body: unknown): JobsApiError {
  const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error;
  if (error && typeof error.code === 'string' && Object.hasOwn(CLASSES, error.code)) {
    const Class = CLASSES[error.code as ErrorCode];
    const details = Array.isArray(error.details) ? (error.details as ErrorDetail[]) : [];
    return new Class(status, error.code as ErrorCode, String(error.message ?? error.code), details);
  }
  const message = String((body as { message?: unknown } | undefined)?.message ?? `HTTP ${status}`);
  if (status === 401) return new UnauthorizedError(status, 'UNAUTHORIZED', message);
  if (status === 403) return new ForbiddenError(status, 'FORBIDDEN', message);
  if (status === 429) return new JobsApiError(status, 'THROTTLED', message);
  return new JobsApiError(status, 'UNEXPECTED_RESPONSE', message);
}
