/**
 * @serverless-jobs/processor: write serverless-jobs processors as typed functions. See README.md.
 */

export type { ChunkRequest, ProcessorJobView, TaskRequest } from '../../../shared/core/ports.js';
export { ContractError, DeadlineError, JobAbortedError, ProcessorError } from './errors.js';
export { fetchHandler, nodeListener } from './http.js';
export type { Jsonable, JsonPrimitive, JsonValue } from './json.js';
export type { Log, LogData, LogEntry, LogLevel } from './log.js';
export {
  type ChunkReply,
  defineRowProcessor,
  type RowContext,
  type RowOutputs,
  type RowProcessor,
  type RowProcessorOptions,
  type RowReply,
} from './rows.js';
export {
  type CancelOnAbort,
  DEFAULT_DEADLINE_MARGIN_MS,
  type DeadlineContext,
} from './signal.js';
export {
  DEFAULT_MAX_BYTES,
  DEFAULT_TOLERANCE_SECONDS,
  type ReadOptions,
  type Verification,
  type VerifiedRequest,
  type VerifyOptions,
  verifyFetchRequest,
  verifyNodeRequest,
  verifySignature,
} from './signature.js';
export {
  defineTaskProcessor,
  type RunOptions,
  type TaskContext,
  type TaskProcessor,
  type TaskProcessorOptions,
  type TaskReply,
} from './task.js';
