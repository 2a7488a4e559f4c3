/**
 * One error type per failure a caller can act on. The core throws these; each entry point maps
 * them to its own reply (HTTP status, dead-letter reason…). Anything else is a bug.
 */

export const ERROR_CODES = [
  'VALIDATION_FAILED',
  'UNKNOWN_PROCESSOR',
  'NOT_FOUND',
  'METHOD_NOT_ALLOWED',
  'IDEMPOTENCY_MISMATCH',
  'INVALID_STATE',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ErrorDetail {
  path: string;
  message: string;
}

export abstract class JobsError extends Error {
  abstract readonly code: ErrorCode;
  constructor(
    message: string,
    readonly details: ErrorDetail[] = [],
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class ValidationError extends JobsError {
  readonly code = 'VALIDATION_FAILED';
}

export class UnknownProcessorError extends JobsError {
  readonly code = 'UNKNOWN_PROCESSOR';
}

export class NotFoundError extends JobsError {
  readonly code = 'NOT_FOUND';
}

/** A known path asked with a method none of its routes takes; `allow` lists the ones they do. */
export class MethodNotAllowedError extends JobsError {
  readonly code = 'METHOD_NOT_ALLOWED';
  constructor(
    method: string,
    path: string,
    readonly allow: string[],
  ) {
    super(`${method} is not allowed on ${path} (allowed: ${allow.join(', ')})`);
  }
}

export class IdempotencyMismatchError extends JobsError {
  readonly code = 'IDEMPOTENCY_MISMATCH';
}

export class InvalidStateError extends JobsError {
  readonly code = 'INVALID_STATE';
}

export class UnauthorizedError extends JobsError {
  readonly code = 'UNAUTHORIZED';
}

export class ForbiddenError extends JobsError {
  readonly code = 'FORBIDDEN';
}

export class PayloadTooLargeError extends JobsError {
  readonly code = 'PAYLOAD_TOO_LARGE';
}

export class UnsupportedMediaTypeError extends JobsError {
  readonly code = 'UNSUPPORTED_MEDIA_TYPE';
}

/** A batch's input file is gone or unreadable (not a caller's fault at submit time, so not a 4xx). */
export class InputMissingError extends Error {
  constructor(
    readonly bucket: string,
    readonly key: string,
  ) {
    super(`input s3://${bucket}/${key} does not exist or cannot be read`);
    this.name = 'InputMissingError';
  }
}

/** A batch's input file was replaced after the batch took it: its rows are no longer the ones counted. */
export class InputChangedError extends Error {
  constructor(
    readonly bucket: string,
    readonly key: string,
  ) {
    super(`input s3://${bucket}/${key} changed after the batch was submitted or released`);
    this.name = 'InputChangedError';
  }
}

/**
 * A batch's input file cannot be read into rows at all (a CSV header that cannot be read): the batch
 * fails with `code`, rather than run none of its rows or rows under the wrong names.
 */
export class InputUnreadableError extends Error {
  constructor(
    readonly bucket: string,
    readonly key: string,
    readonly code: 'BAD_HEADER',
    reason: string,
  ) {
    super(`input s3://${bucket}/${key}: ${reason}`);
    this.name = 'InputUnreadableError';
  }
}

/** An output upload carried between finalize steps is gone (completed by a twin step, or expired). */
export class AssemblyLostError extends Error {
  constructor(readonly key: string) {
    super(`the multipart upload of ${key} no longer exists`);
    this.name = 'AssemblyLostError';
  }
}
