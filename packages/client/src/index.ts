export {
  type EventsOptions,
  isSettled,
  JobsClient,
  type JobsClientOptions,
  type RowsOptions,
  type SubmitOptions,
  type WaitOptions,
} from './client.js';
export {
  type ClientErrorCode,
  ForbiddenError,
  IdempotencyMismatchError,
  InternalError,
  InvalidStateError,
  JobsApiError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  TransferError,
  UnauthorizedError,
  UnknownProcessorError,
  UnsupportedMediaTypeError,
  ValidationError,
  WaitTimeoutError,
} from './errors.js';
export type { Auth, AwsCredentials, RetryOptions } from './http.js';
export type { Uploadable, UploadData, UploadOptions, UploadProgress } from './transfer.js';
export type * from './types.js';
