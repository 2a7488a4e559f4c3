import type { BatchJob, BatchOutput, BatchPart, ChunkCommit, RowOutcome, Tally } from './batches/model.js';
import type { Job, TaskError } from './model.js';
import type { Processor } from './processors.js';
import type { WorkMessage } from './schemas.js';

/** A job of either kind, as stored. */
export type AnyJob = Job | BatchJob;

/**
 * What the engine needs from the outside world. `shared/aws/` implements these on DynamoDB, SQS,
 * S3, Lambda and HTTP; tests may implement them in memory.
 */

export interface JobStore {
  /** Writes a new job unless its id exists; then returns the existing job instead. */
  create(job: AnyJob): Promise<{ created: true } | { created: false; existing: AnyJob }>;
  /** A strongly consistent read of a job of tasks; `undefined` for unknown, expired or batch jobs. */
  get(id: string): Promise<Job | undefined>;
  /** A strongly consistent read of a job of either kind. */
  read(id: string): Promise<AnyJob | undefined>;
  /** An eventually consistent read (half the price): may miss a job written a moment ago. */
  peek(id: string): Promise<AnyJob | undefined>;
  /** Writes `job` only if the stored version is still `expectedVersion`; false when another write won. */
  replace(job: AnyJob, expectedVersion: number): Promise<boolean>;
  /**
   * Deletes a job only while its stored version is still `version`: the undo of a submission whose
   * first messages could not be sent. False when it is gone or has changed since.
   */
  discard(id: string, version: number): Promise<boolean>;
  /** Unfinished jobs (and batches whose outputs are not assembled yet) created before `createdBefore`. */
  activeJobs(createdBefore: Date): AsyncIterable<{ id: string; kind: AnyJob['kind'] }>;
}

/**
 * Deletes what is past its retention, where the database has no TTL of its own (the local
 * emulators); in AWS, DynamoDB's TTL does it for free. Reads treat such items as gone already.
 */
export interface ExpiredItems {
  /** Deletes every item expired by `now`; returns how many. */
  purgeExpired(now: Date): Promise<number>;
}

export interface WorkQueue {
  /** Sends messages, batched by the adapter; `delaySeconds` (≤ 900) holds them back. */
  send(messages: WorkMessage[], options?: { delaySeconds?: number }): Promise<void>;
}

/** The commit records of a batch's chunks: one small item per group of chunks. */
export interface TallyStore {
  /**
   * Records chunk `chunk` as committed with `commit`, unless it already is or its tally was closed
   * by an abort; counters move in the same write. Returns the tally after the write.
   */
  commit(
    jobId: string,
    chunk: number,
    commit: ChunkCommit,
  ): Promise<{ committed: true; tally: Tally } | { committed: false }>;
  read(jobId: string, group: number): Promise<Tally | undefined>;
  /** Every tally of a job, in group order. */
  all(jobId: string): Promise<Tally[]>;
  /** Closes groups `0 … groups-1`: no chunk of them can commit any more (abort). */
  close(jobId: string, groups: number): Promise<void>;
}

/**
 * An output file part-way through assembly, as one finalize step hands it to the next: the parts
 * uploaded so far and the bytes not yet sent (less than a part). Plain JSON, stored between steps.
 */
export interface AssemblingFile {
  key: string;
  contentType: string;
  uploadId?: string;
  parts: { n: number; etag: string }[];
  bytes: number;
  lines: number;
  tail: string;
}
export type AssemblingFiles = Record<string, AssemblingFile>;

/**
 * Where a row starts in a batch's input: its part, the byte its record starts at, and that byte's
 * line of the file. Reading can resume there without reading what comes before.
 */
export interface RowCursor {
  part: number;
  byte: number;
  fileLine: number;
}

/** One row of a batch's input: its value, or why it could not be read; and where it starts. */
export interface InputRow {
  input?: unknown;
  invalid?: string;
  at: RowCursor;
}

/** A batch's files: inputs, per-chunk outcomes and the assembled outputs (S3). */
export interface BatchFiles {
  /** The bucket the system keeps its own files in. */
  readonly bucket: string;
  putJson(key: string, value: unknown): Promise<void>;
  getJson(key: string): Promise<unknown>;
  putRows(key: string, rows: readonly unknown[]): Promise<void>;
  /** Whether an object exists (and can be read). */
  exists(bucket: string, key: string): Promise<boolean>;
  /** The object's ETag and size, or undefined when it does not exist (or cannot be read). */
  head(bucket: string, key: string): Promise<{ etag: string; bytes: number } | undefined>;
  /**
   * Every row of the parts in order: its value, or why it could not be read. Throws
   * `InputMissingError`, or `InputChangedError` for a file that is no longer the `etag` it names.
   */
  rows(parts: readonly BatchPart[], from?: RowCursor): AsyncIterable<InputRow>;
  putOutcomes(key: string, outcomes: readonly RowOutcome[]): Promise<void>;
  getOutcomes(key: string): Promise<RowOutcome[]>;
  /**
   * Streams row outcomes (in line order) into `results`, `errors` and one file per output name,
   * continuing `files` (what earlier finalize steps assembled); returns what to carry to the next.
   */
  assemble(prefix: string, outcomes: AsyncIterable<RowOutcome>, files: AssemblingFiles): Promise<AssemblingFiles>;
  /** Ends the files: their last bytes go up and each becomes one object. Throws `AssemblyLostError`. */
  completeAssembly(files: AssemblingFiles): Promise<Record<string, BatchOutput>>;
  uploadUrl(key: string, expiresSeconds: number): Promise<string>;
  downloadUrl(key: string, expiresSeconds: number): Promise<string>;
}

/** The `job` part of what a processor receives (API.md). */
export interface ProcessorJobView {
  id: string;
  type: string;
  name?: string;
  meta?: Record<string, unknown>;
}

/** What a processor is told about the job it works for (either kind). */
export function processorJobView(job: ProcessorJobView): ProcessorJobView {
  return {
    id: job.id,
    type: job.type,
    ...(job.name !== undefined ? { name: job.name } : {}),
    ...(job.meta !== undefined ? { meta: job.meta } : {}),
  };
}

export interface TaskRequest {
  job: ProcessorJobView;
  task: { id: string; name?: string; processor: string; attempt: number; input: unknown };
}

export interface ChunkRequest {
  job: ProcessorJobView;
  chunk: { index: number; attempt: number; context: Record<string, unknown>; rows: { line: number; input: unknown }[] };
}

/** A processor's raw answer to a chunk: its reply body, or why there is none. */
export type ChunkCall = { status: 'reply'; reply: unknown } | { status: 'error'; error: TaskError; retryable: boolean };

/** A processor's own log entries, as it sent them with its reply. */
export type OutcomeLog = { level: 'info' | 'warn' | 'error'; message: string; data?: Record<string, unknown> }[];

/** What a task's processor call came to, as the invoker classified its reply. */
export type AttemptOutcome =
  | { status: 'ok'; result: unknown; log?: OutcomeLog }
  | { status: 'error'; error: TaskError; retryable: boolean; log?: OutcomeLog };

export interface ProcessorInvoker {
  /** Calls the processor and classifies its answer; never throws for processor failures. */
  invoke(processor: Processor, request: TaskRequest, signal: AbortSignal): Promise<AttemptOutcome>;
  /** Calls the processor with a batch chunk; never throws for processor failures. */
  invokeChunk(processor: Processor, request: ChunkRequest, signal: AbortSignal): Promise<ChunkCall>;
}

/**
 * Large task inputs and results live in S3; the task keeps a reference (`inputRef`, `resultRef`)
 * that only the store writes. API users only ever see values.
 */
export interface PayloadStore {
  /** The value behind one of job `jobId`'s references. */
  load(ref: string, jobId: string): Promise<unknown>;
}

/** A task's input as the processor gets it: inline, or read back from where the store put it. */
export function taskInput(payloads: PayloadStore, jobId: string, task: { input: unknown; inputRef?: string }) {
  return task.inputRef !== undefined ? payloads.load(task.inputRef, jobId) : Promise.resolve(task.input);
}

/** A task's result as callers see it (null until there is one). */
export function taskResult(payloads: PayloadStore, jobId: string, task: { result?: unknown; resultRef?: string }) {
  return task.resultRef !== undefined ? payloads.load(task.resultRef, jobId) : Promise.resolve(task.result ?? null);
}

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
