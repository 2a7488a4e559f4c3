import { randomBytes } from 'node:crypto';
import * as z from 'zod';
import { backoffDelay } from './backoff.js';
import {
  appendable,
  appendedBefore,
  type BatchJob,
  type BatchOutput,
  type BatchPart,
  type BatchState,
  type ChunkRow,
  chunkCount,
  chunkOfLine,
  chunksInTally,
  failedRows,
  finalOutcome,
  invalidRowOutcome,
  linesOfChunk,
  type RowCounts,
  type RowOutcome,
  type RowStatus,
  readChunkReply,
  sumTallies,
  type Tally,
  tallyCount,
  tallyOfChunk,
  totalRows,
} from './batch.js';
import { UNBORN_JOB_GRACE_MS, type Verdict } from './delivery.js';
import {
  AssemblyLostError,
  IdempotencyMismatchError,
  InputChangedError,
  InputMissingError,
  InputUnreadableError,
  InvalidStateError,
  NotFoundError,
  PayloadTooLargeError,
  UnknownProcessorError,
  ValidationError,
} from './errors.js';
import { jobIdForKey, newJobId, requestHash } from './ids.js';
import { depthMessage, nestsDeeperThan } from './json-depth.js';
import { isTerminal, type TaskError } from './model.js';
import { type Caller, visibleTo } from './owners.js';
import {
  type AnyJob,
  type AssemblingFiles,
  type BatchFiles,
  type Clock,
  type JobStore,
  type ProcessorInvoker,
  processorJobView,
  type RowCursor,
  type TallyStore,
  type WorkQueue,
} from './ports.js';
import type { ProcessorRegistry } from './processors.js';
import type { ChunkMessage, SubmitBatch } from './schemas.js';
import { badCursor, type Cursors } from './search.js';

export interface BatchDeps {
  store: JobStore;
  tallies: TallyStore;
  files: BatchFiles;
  queue: WorkQueue;
  invoker: ProcessorInvoker;
  processors: ProcessorRegistry;
  clock: Clock;
  /** Signs the rows route's cursors (tamper-evident, bound to their query). */
  cursors: Cursors;
  leaseMarginSeconds?: number;
  /** A chunk still running after this long gets its message hidden for the processor's timeout. */
  leaseAfterMs?: number;
  /** Chunk messages one plan step sends before it hands the rest to a step of its own. */
  planChunksPerStep?: number;
  /** Chunks whose outcomes one finalize step assembles before it hands the rest on. */
  finalizeChunksPerStep?: number;
  /** Where batch input files may come from, and how large they may be (see `InputPolicy`). */
  inputs?: Partial<InputPolicy>;
  log?: (level: 'info' | 'warn' | 'error', message: string, data?: Record<string, unknown>) => void;
}

/**
 * Which objects a batch may read as its input. A caller names a bucket and key, and the worker
 * reads it with a role that can read far more (every job's outputs live in the same bucket): so the
 * engine, not IAM alone, decides. The stack's own bucket is readable only under `ownPrefix` (where a
 * deployment lets services drop input files) or as the job's own upload; any other bucket must be
 * listed by the deployment.
 */
export interface InputPolicy {
  /** Buckets besides the stack's own that inputs may name (`batchInputBuckets`, `BATCH_INPUT_BUCKETS`). */
  buckets: string[];
  /** The one prefix of the stack's own bucket callers may name (`BATCH_INPUT_PREFIX`); '' for none. */
  ownPrefix: string;
  /** The largest input file a batch takes (`BATCH_INPUT_MAX_BYTES`), uploads included. */
  maxBytes: number;
}

export const DEFAULT_INPUT_POLICY: InputPolicy = {
  buckets: [],
  ownPrefix: 'incoming/',
  // S3's largest single PUT, and so the largest presigned upload.
  maxBytes: 5 * 1024 ** 3,
};

/** What the worker does with a batch message: delete it, or bring it back after a delay. */
export type BatchVerdict = Exclude<Verdict, { kind: 'keep' }>;

export interface BatchDelivery {
  messageId: string;
  /** SQS's ApproximateReceiveCount: a chunk that crashed comes back with a higher count. */
  receiveCount: number;
  sentAt?: number;
}

/** Chunk rows above this many bytes go to S3 instead of riding in the message (SQS's limit is 256 KiB). */
const MAX_ROWS_IN_MESSAGE = 200_000;
/** How long an upload URL and an output's download URL stay valid. */
const UPLOAD_URL_SECONDS = 3600;
const DOWNLOAD_URL_SECONDS = 3600;
/** What the planner gathers before sending (10 messages per SQS request): memory stays flat. */
const PLAN_SEND_MESSAGES = 100;
const PLAN_SEND_BYTES = 2 * 1024 * 1024;
/**
 * A plan step stops sending by this many chunk messages (and when its time runs short) and leaves
 * the rest to the next step: a huge file is planned in slices that each finish well inside the
 * worker's timeout, and a worker that dies mid-plan costs a slice of duplicates, not the whole plan.
 */
const PLAN_CHUNKS_PER_STEP = 10_000;
/**
 * Chunk files one finalize step reads into the outputs (eight at a time) before it stores where the
 * assembly stands and hands the rest to the next step: on S3, ~2,000 small reads take seconds,
 * so a batch of any size is assembled in steps that each finish well inside the worker's timeout.
 */
const FINALIZE_CHUNKS_PER_STEP = 2000;
/** Chunk outcome files the rows route reads per page at most (then it answers with a cursor). */
const ROWS_PAGE_CHUNKS = 20;
/** Where a page of rows goes on: this line. */
const rowsCursor = z.strictObject({ l: z.number().int().min(1) });
/** SQS holds back a new message for at most 15 minutes. */
const MAX_SEND_DELAY_SECONDS = 900;
const MAX_CONFLICTS = 50;
/** Chunk files the finalizer reads ahead of the one it is writing out. */
const ASSEMBLY_READ_AHEAD = 8;

export interface PreparedBatch {
  kind: 'batch';
  job: BatchJob;
  /** Inline rows: sent as chunk messages at once, or stored as the first part. */
  rows: unknown[];
  direct: boolean;
  file?: { bucket: string; key: string };
}

export interface RowsPage {
  items: RowOutcome[];
  nextCursor: string | null;
}

function token(): string {
  return randomBytes(6).toString('base64url');
}

/**
 * The use cases of batches: submit, append, release, plan, run a chunk, finalize, abort, read.
 * See `batch.ts` for the rules that make every row count exactly once.
 */
export class BatchEngine {
  private readonly leaseMargin: number;
  private readonly inputs: InputPolicy;

  constructor(private readonly deps: BatchDeps) {
    this.leaseMargin = deps.leaseMarginSeconds ?? 10;
    this.inputs = { ...DEFAULT_INPUT_POLICY, ...deps.inputs };
  }

  private log(level: 'info' | 'warn' | 'error', message: string, data?: Record<string, unknown>) {
    this.deps.log?.(level, message, data);
  }

  // ─── Submit, append, release ─────────────────────────────────────────────────────────────────

  /** Builds a batch job from a validated request, writing nothing. */
  prepare(request: SubmitBatch, owner: string, key: string | undefined): PreparedBatch {
    const { batch } = request;
    const refusal = this.deps.processors.refusal(batch.processor, 'chunks');
    if (refusal !== undefined) {
      throw new UnknownProcessorError(
        this.deps.processors.get(batch.processor)
          ? `Not a batch processor: ${refusal}`
          : `Unknown processor: ${batch.processor}`,
        [{ path: 'batch.processor', message: refusal }],
      );
    }
    if (batch.input?.bucket !== undefined && batch.input.key !== undefined) {
      this.checkInputName(batch.input.bucket, batch.input.key);
    }
    const { idempotencyKey: _, ...fields } = request;
    const hash = requestHash(fields);
    const now = this.deps.clock.now();
    const at = now.toISOString();
    const id = key !== undefined ? jobIdForKey(owner, key) : newJobId(now);
    const rows = batch.rows ?? [];
    const file = batch.input?.bucket !== undefined && batch.input.key !== undefined;
    const direct = rows.length > 0 && !file && !batch.upload && !batch.hold;
    const parts: BatchPart[] = [];
    // Stored under a key derived from the request, so a replay writes the very same object.
    // Inline rows are stored even when they go straight out as chunk messages: should those be lost
    // (a local restart; a queue purged by hand), the sweeper plans the batch again from this part.
    if (rows.length > 0)
      parts.push({ kind: 'rows', key: `inputs/${id}/rows-0-${hash.slice(0, 16)}.jsonl`, rows: rows.length });
    if (file) {
      parts.push({ kind: 'file', bucket: batch.input!.bucket!, key: batch.input!.key!, format: batch.input!.format });
    }
    const state: BatchState = {
      processor: batch.processor,
      chunkSize: batch.chunkSize,
      maxFailedRows: batch.maxFailedRows,
      context: batch.context,
      parts,
      rows: rows.length,
      ...(direct ? { plan: { rows: rows.length, chunks: chunkCount(rows.length, batch.chunkSize) } } : {}),
      ...(batch.upload ? { upload: { key: `inputs/${id}/upload`, format: batch.input?.format ?? 'jsonl' } } : {}),
    };
    const job: BatchJob = {
      id,
      owner,
      type: request.type,
      ...(request.name !== undefined ? { name: request.name } : {}),
      ...(request.meta !== undefined ? { meta: request.meta } : {}),
      kind: 'batch',
      status: batch.hold || batch.upload ? 'HELD' : direct ? 'RUNNING' : 'PENDING',
      createdAt: at,
      updatedAt: at,
      ...(direct ? { startedAt: at } : {}),
      ...(key !== undefined ? { idempotencyKey: key } : {}),
      requestHash: hash,
      version: 1,
      batch: state,
    };
    return {
      kind: 'batch',
      job,
      rows,
      direct,
      ...(file ? { file: { bucket: batch.input!.bucket!, key: batch.input!.key! } } : {}),
    };
  }

  /**
   * Makes a prepared batch real. As for tasks: what must follow the job (its chunk messages, or the
   * message that plans it) is sent first, then the job is written; a message that overtakes its
   * job is held a moment, and one whose job never appears is dropped.
   */
  async commit(prepared: PreparedBatch): Promise<{ job: AnyJob; created: boolean }> {
    const { job } = prepared;
    // A keyed replay (or mismatch) was answered by the job engine's look-up before this (see
    // Jobs.replays), so it stores no rows object and sends no chunk twice.
    if (prepared.file) {
      const head = await this.deps.files.head(prepared.file.bucket, prepared.file.key);
      if (head === undefined) {
        throw new ValidationError('The batch input file does not exist or cannot be read', [
          { path: 'batch.input.key', message: `no readable object s3://${prepared.file.bucket}/${prepared.file.key}` },
        ]);
      }
      this.checkInputSize(head.bytes, 'batch.input.key');
      // The batch runs the file as it is now; one replaced later fails the batch, not mixes rows.
      for (const part of job.batch.parts) if (part.kind === 'file' && head.etag) part.etag = head.etag;
    }
    const stored = job.batch.parts.find((part) => part.kind === 'rows');
    if (stored) await this.deps.files.putRows(stored.key, prepared.rows);
    if (prepared.direct) {
      await this.sendChunks(job, this.numbered(prepared.rows), new Set());
    } else if (job.status === 'PENDING') {
      await this.deps.queue.send([{ jobId: job.id, step: 'plan' }]);
    }
    const outcome = await this.deps.store.create(job);
    if (outcome.created) {
      this.log('info', 'batch submitted', { jobId: job.id, type: job.type, rows: job.batch.rows, status: job.status });
      return { job, created: true };
    }
    return this.replayed(outcome.existing, job);
  }

  /** A submission whose job exists already: the same request gets that job, another a mismatch. */
  private replayed(existing: AnyJob, job: BatchJob): { job: AnyJob; created: false } {
    if (existing.requestHash !== job.requestHash || existing.kind !== 'batch' || existing.owner !== job.owner) {
      throw new IdempotencyMismatchError('Idempotency key was already used with a different request');
    }
    return { job: existing, created: false };
  }

  /** Refuses an input file the policy does not let callers name (see `InputPolicy`). */
  private checkInputName(bucket: string, key: string): void {
    const own = bucket === this.deps.files.bucket;
    const { ownPrefix, buckets } = this.inputs;
    if (own && !(ownPrefix !== '' && key.startsWith(ownPrefix) && !key.slice(ownPrefix.length).includes('..'))) {
      throw new ValidationError('The batch input must be a file callers may name', [
        {
          path: 'batch.input.key',
          message:
            ownPrefix === ''
              ? "this deployment's own bucket takes no input files; upload with upload: true"
              : `in this deployment's own bucket, only keys under '${ownPrefix}' (or upload with upload: true)`,
        },
      ]);
    }
    if (!own && !buckets.includes(bucket)) {
      throw new ValidationError('The batch input bucket is not one this deployment reads from', [
        { path: 'batch.input.bucket', message: `'${bucket}' is not listed in batchInputBuckets` },
      ]);
    }
  }

  private checkInputSize(bytes: number, path: string): void {
    if (bytes > this.inputs.maxBytes) {
      throw new PayloadTooLargeError(`The batch input is ${bytes} bytes; the limit is ${this.inputs.maxBytes}`, [
        { path, message: `at most ${this.inputs.maxBytes} bytes` },
      ]);
    }
  }

  async get(id: string): Promise<BatchJob> {
    const job = await this.deps.store.read(id);
    if (!job) throw new NotFoundError(`No job ${id}`);
    if (job.kind !== 'batch') throw new InvalidStateError(`Job ${id} is not a batch`);
    return job;
  }

  /** A batch `caller` may see; a foreign one is a missing one. */
  async read(id: string, caller: Caller): Promise<BatchJob> {
    const job = visibleTo(caller, id, await this.deps.store.read(id));
    if (job.kind !== 'batch') throw new InvalidStateError(`Job ${id} is not a batch`);
    return job;
  }

  /**
   * Appends rows to a HELD batch: the rows are stored, then the job records them as its next part.
   * With an idempotency key the append happens once: a retry (even one that arrives after the
   * release) gets the first answer, the same key with other rows a mismatch.
   */
  async append(
    id: string,
    caller: Caller,
    rows: unknown[],
    key?: string,
  ): Promise<{ appended: number; totalRows: number }> {
    const tag =
      key === undefined ? undefined : { key: requestHash(key).slice(0, 16), rows: requestHash(rows).slice(0, 16) };
    const first = await this.read(id, caller);
    const earlier = tag && appendedBefore(first, tag);
    if (earlier) return earlier;
    appendable(first);
    // A keyed append's rows go under a key of their own, so a retry racing it writes the same object.
    const file = tag
      ? `inputs/${id}/rows-a${tag.key}-${tag.rows}.jsonl`
      : `inputs/${id}/rows-${first.batch.parts.length}-${token()}.jsonl`;
    await this.deps.files.putRows(file, rows);
    let raced: { appended: number; totalRows: number } | undefined;
    const job = await this.update(id, (current) => {
      raced = tag && appendedBefore(current, tag);
      if (raced) return undefined;
      appendable(current);
      const next = this.next(current);
      next.batch.parts.push({ kind: 'rows', key: file, rows: rows.length, ...(tag ? { append: tag } : {}) });
      next.batch.rows += rows.length;
      return next;
    }).catch((error) => (error instanceof NoChange && raced ? undefined : Promise.reject(error)));
    if (!job) return raced!;
    this.log('info', 'batch rows appended', { jobId: id, appended: rows.length, totalRows: job.batch.rows });
    return { appended: rows.length, totalRows: job.batch.rows };
  }

  /** Starts a HELD batch: its rows (and uploaded file) are planned into chunks by the worker. */
  async release(id: string, caller: Caller): Promise<BatchJob> {
    const first = await this.read(id, caller);
    if (first.status !== 'HELD')
      throw new InvalidStateError(`Job ${id} is ${first.status}; only a HELD batch can be released`);
    const upload = first.batch.upload;
    const head = upload && (await this.deps.files.head(this.deps.files.bucket, upload.key));
    if (upload && head === undefined) {
      throw new InvalidStateError(`Job ${id}: nothing was uploaded yet; PUT the file to the upload URL first`);
    }
    // A presigned PUT cannot bound its body, so the upload is measured here, before anything reads it.
    if (head) this.checkInputSize(head.bytes, 'upload');
    const etag = head ? head.etag : undefined;
    await this.deps.queue.send([{ jobId: id, step: 'plan' }]);
    const job = await this.update(id, (current) => {
      if (current.status !== 'HELD') {
        throw new InvalidStateError(`Job ${id} is ${current.status}; only a HELD batch can be released`);
      }
      const next = this.next(current);
      next.status = 'PENDING';
      if (upload && !next.batch.parts.some((p) => p.kind === 'file' && p.key === upload.key)) {
        next.batch.parts.push({
          kind: 'file',
          bucket: this.deps.files.bucket,
          key: upload.key,
          format: upload.format,
          ...(etag ? { etag } : {}),
        });
      }
      return next;
    });
    this.log('info', 'batch released', { jobId: id });
    return job;
  }

  // ─── Plan: rows → chunk messages ───────────────────────────────────────────────────────────────

  /**
   * Splits a batch into chunks. Two passes over the input: the first counts its rows and writes the
   * plan (so every chunk message knows how many chunks there are, and an abort knows which tallies
   * to close); the second sends the chunk messages, skipping chunks already committed. Running it
   * again (a redelivery, the sweeper) is safe: a chunk commits once however often it is sent.
   */
  async plan(
    jobId: string,
    delivery: Pick<BatchDelivery, 'sentAt'>,
    slice: { from?: number; deadline?: number; resume?: PlanResume } = {},
  ): Promise<BatchVerdict> {
    const job = await this.deps.store.read(jobId);
    if (job?.kind !== 'batch' || job.status === 'HELD') return this.unborn(jobId, delivery, 'plan');
    if (isTerminal(job.status) && !job.batch.outputs) {
      await this.deps.queue.send([{ jobId, step: 'finalize' }]);
      return { kind: 'done' };
    }
    if (isTerminal(job.status) || job.batch.abortRequestedAt) return { kind: 'done' };
    let planned = job;
    if (!job.batch.plan) {
      let rows: number;
      try {
        rows = await this.countRows(job.batch.parts);
      } catch (error) {
        if (await this.failedByInput(jobId, error)) return { kind: 'done' };
        throw error;
      }
      const written = await this.update(jobId, (current) => {
        if (isTerminal(current.status) || current.batch.abortRequestedAt || current.batch.plan) return undefined;
        const next = this.next(current);
        next.batch.plan = { rows, chunks: chunkCount(rows, current.batch.chunkSize) };
        next.status = 'RUNNING';
        next.startedAt ??= next.updatedAt;
        return next;
      }).catch((error) => (error instanceof NoChange ? undefined : Promise.reject(error)));
      if (!written) return { kind: 'done' };
      planned = written;
      this.log('info', 'batch planned', { jobId, ...planned.batch.plan });
    }
    const plan = planned.batch.plan!;
    if (plan.chunks === 0) {
      await this.deps.queue.send([{ jobId, step: 'finalize' }]);
      return { kind: 'done' };
    }
    const committed = new Set<number>();
    for (const tally of await this.deps.tallies.all(jobId))
      for (const chunk of tally.commits.keys()) committed.add(chunk);
    if (committed.size === plan.chunks) {
      await this.deps.queue.send([{ jobId, step: 'finalize' }]);
      return { kind: 'done' };
    }
    const from = slice.from ?? 0;
    const stop = {
      atChunk: from + (this.deps.planChunksPerStep ?? PLAN_CHUNKS_PER_STEP),
      ...(slice.deadline !== undefined ? { deadline: slice.deadline } : {}),
    };
    // The step before says where this slice starts in the input, so nothing before it is read
    // again (the file is pinned by its ETag, so the position still holds).
    const resume = slice.resume?.line === from * planned.batch.chunkSize + 1 ? slice.resume : undefined;
    let rest: PlanResume | undefined;
    try {
      rest = await this.sendChunks(planned, this.readNumbered(planned.batch.parts, resume), committed, { from, stop });
    } catch (error) {
      if (await this.failedByInput(jobId, error)) return { kind: 'done' };
      throw error;
    }
    // Sent only once this slice's messages are out: a step that dies is redelivered and resends its
    // slice (duplicates are harmless), so no chunk is ever left unsent.
    if (rest !== undefined) {
      const next = chunkOfLine(rest.line, planned.batch.chunkSize);
      await this.deps.queue.send([{ jobId, step: 'plan', from: next, resume: rest }]);
      this.log('info', 'batch plan continues in a next step', { jobId, from: next, chunks: plan.chunks });
    }
    return { kind: 'done' };
  }

  private async *numbered(rows: unknown[]): AsyncIterable<PlannedRow> {
    let line = 0;
    for (const input of rows) yield { row: { line: ++line, input } };
  }

  /** The input's rows numbered in line order, from the start or from where a slice resumes. */
  private async *readNumbered(parts: BatchPart[], resume?: PlanResume): AsyncIterable<PlannedRow> {
    let line = resume ? resume.line - 1 : 0;
    const from = resume && { part: resume.part, byte: resume.byte, fileLine: resume.fileLine };
    for await (const { input, invalid, at } of this.deps.files.rows(parts, from)) {
      line++;
      // A file's row is checked like an inline one: nested too deep, no chunk message could carry it.
      // A row's number (`line`) counts rows; its file's lines may run ahead (a header, blank lines).
      const refused = invalid ?? (nestsDeeperThan(input) ? `the row ${depthMessage()}` : undefined);
      const why = refused && `row ${line} (file line ${at.fileLine}): ${refused}`;
      yield { row: why !== undefined ? { line, invalid: why } : { line, input }, at };
    }
  }

  /**
   * Groups rows into chunk messages and sends them, a bounded number in flight (memory stays flat).
   * Chunks before `from` are read past; at `stop` (a chunk, or a time) it returns the first chunk
   * it did not send.
   */
  private async sendChunks(
    job: BatchJob,
    rows: AsyncIterable<PlannedRow>,
    skip: Set<number>,
    slice: { from: number; stop?: { atChunk: number; deadline?: number } } = { from: 0 },
  ): Promise<PlanResume | undefined> {
    const { chunkSize } = job.batch;
    const chunks = job.batch.plan!.chunks;
    let pending: ChunkMessage[] = [];
    let pendingBytes = 0;
    let current: ChunkRow[] = [];
    const flush = async (force: boolean) => {
      if (pending.length >= PLAN_SEND_MESSAGES || pendingBytes >= PLAN_SEND_BYTES || (force && pending.length > 0)) {
        const out = pending;
        pending = [];
        pendingBytes = 0;
        await this.deps.queue.send(out);
      }
    };
    const close = async () => {
      if (current.length === 0) return;
      const index = chunkOfLine(current[0]!.line, chunkSize);
      const rowsOfChunk = current;
      current = [];
      if (index < slice.from || skip.has(index)) return;
      const message: ChunkMessage = {
        jobId: job.id,
        chunk: index,
        chunks,
        request: requestTag(job),
        attempt: 1,
        rows: rowsOfChunk,
      };
      const bytes = Buffer.byteLength(JSON.stringify(rowsOfChunk));
      pendingBytes += Math.min(bytes, MAX_ROWS_IN_MESSAGE);
      if (bytes > MAX_ROWS_IN_MESSAGE) {
        const key = `inputs/${job.id}/chunks/${index}.json`;
        await this.deps.files.putJson(key, rowsOfChunk);
        delete message.rows;
        message.rowsKey = key;
      }
      pending.push(message);
      await flush(false);
    };
    const { stop } = slice;
    let rest: PlanResume | undefined;
    for await (const { row, at } of rows) {
      if (stop && at && current.length === 0 && (row.line - 1) % chunkSize === 0) {
        const index = chunkOfLine(row.line, chunkSize);
        if (
          index >= stop.atChunk ||
          (stop.deadline !== undefined && this.deps.clock.now().getTime() >= stop.deadline)
        ) {
          // Every step sends at least its first chunk, so a slow read still moves the plan on.
          if (index > slice.from) {
            rest = { line: row.line, ...at };
            break;
          }
        }
      }
      current.push(row);
      if (current.length === chunkSize) await close();
    }
    await close();
    await flush(true);
    return rest;
  }

  // ─── Run one chunk ─────────────────────────────────────────────────────────────────────────────

  async runChunk(
    message: ChunkMessage,
    delivery: BatchDelivery,
    hooks: { onLease?: (seconds: number) => Promise<void>; signal?: AbortSignal } = {},
  ): Promise<BatchVerdict> {
    const { jobId, chunk } = message;
    const job = await this.deps.store.read(jobId);
    if (job?.kind !== 'batch') {
      // Sent just before its job is written, it may have overtaken the write. It comes back as a
      // fresh copy rather than a redelivery: a chunk's receive count is its attempt count.
      const firstSentAt = message.firstSentAt ?? delivery.sentAt;
      const verdict = this.unborn(jobId, firstSentAt !== undefined ? { sentAt: firstSentAt } : {}, `chunk ${chunk}`);
      if (verdict.kind === 'retry') {
        await this.deps.queue.send([{ ...message, ...(firstSentAt !== undefined ? { firstSentAt } : {}) }], {
          delaySeconds: verdict.delaySeconds,
        });
      }
      return { kind: 'done' };
    }
    if (message.request !== requestTag(job)) return this.foreign(message);
    // Aborted: the chunk's rows count as ABORTED; nothing new starts.
    if (isTerminal(job.status) || job.batch.abortRequestedAt) return { kind: 'done' };
    const group = tallyOfChunk(chunk);
    const tally = await this.deps.tallies.read(jobId, group);
    if (tally?.commits.has(chunk)) {
      // Committed already (a duplicate, or a redelivery after a crash): make sure the batch moves on.
      await this.afterCommit(jobId, message.chunks, tally);
      return { kind: 'done' };
    }
    if (tally?.closed) return { kind: 'done' };

    const rows = await this.chunkRows(message);
    const invalid = rows.filter((row) => row.invalid !== undefined).map(invalidRowOutcome);
    const valid = rows.filter((row) => row.invalid === undefined);
    const processor = this.deps.processors.get(job.batch.processor);
    if (!processor) {
      const error: TaskError = {
        kind: 'crash',
        code: 'UNKNOWN_PROCESSOR',
        message: `processor '${job.batch.processor}' is not registered with the worker`,
      };
      return this.commitChunk(job, message, [...invalid, ...failedRows(valid, error)]);
    }
    const attempt = message.attempt + Math.max(0, delivery.receiveCount - 1);
    let settled: RowOutcome[] = [];
    let retry: ChunkRow[] = [];
    if (valid.length > 0) {
      const timer = setTimeout(() => {
        hooks.onLease?.(processor.timeoutSeconds + this.leaseMargin).catch(() => undefined);
      }, this.deps.leaseAfterMs ?? 1000);
      const deadline = AbortSignal.timeout(processor.timeoutSeconds * 1000);
      const signal = hooks.signal ? AbortSignal.any([deadline, hooks.signal]) : deadline;
      let call: Awaited<ReturnType<ProcessorInvoker['invokeChunk']>>;
      try {
        call = await this.deps.invoker.invokeChunk(
          processor,
          {
            job: processorJobView(job),
            chunk: {
              index: chunk,
              attempt,
              context: job.batch.context,
              rows: valid.map((row) => ({ line: row.line, input: row.input ?? null })),
            },
          },
          signal,
        );
      } catch (error) {
        call = { status: 'error', error: { kind: 'crash', message: String(error) }, retryable: true };
      } finally {
        clearTimeout(timer);
      }
      if (deadline.aborted && call.status === 'error' && call.retryable) {
        call = {
          status: 'error',
          error: { kind: 'timeout', message: `no reply within ${processor.timeoutSeconds} s` },
          retryable: true,
        };
      }
      const round =
        call.status === 'reply'
          ? readChunkReply(call.reply, valid, attempt, processor.maxAttempts)
          : { kind: 'crash' as const, error: call.error, retryable: call.retryable };
      if (round.kind === 'crash') {
        const retryable = 'retryable' in round ? round.retryable : true;
        if (retryable && attempt < processor.maxAttempts) {
          const delaySeconds = Math.max(1, backoffDelay(processor.backoff, attempt));
          this.log('warn', 'chunk crashed; retrying', { jobId, chunk, attempt, error: round.error, delaySeconds });
          return { kind: 'retry', delaySeconds };
        }
        this.log('warn', 'chunk failed for good', { jobId, chunk, attempt, error: round.error });
        settled = failedRows(valid, round.error);
      } else {
        settled = round.settled;
        retry = round.retry;
      }
    }
    if (retry.length > 0) {
      // Rows the processor asked to run again: this round's outcomes are kept in a file and the
      // rows go out again as a smaller chunk message after the processor's backoff.
      const partial = `outputs/${jobId}/chunks/${chunk}/${token()}.r${attempt}.jsonl`;
      await this.deps.files.putOutcomes(partial, [...invalid, ...settled]);
      const delaySeconds = Math.min(MAX_SEND_DELAY_SECONDS, backoffDelay(processor.backoff, attempt));
      await this.deps.queue.send(
        [
          {
            jobId,
            chunk,
            chunks: message.chunks,
            request: message.request,
            attempt: attempt + 1,
            rows: retry,
            carry: [...(message.carry ?? []), partial],
          },
        ],
        { delaySeconds },
      );
      this.log('info', 'chunk rows to retry', { jobId, chunk, attempt, rows: retry.length, delaySeconds });
      return { kind: 'done' };
    }
    return this.commitChunk(job, message, [...invalid, ...settled]);
  }

  /**
   * The one write that counts a chunk: its outcomes go to a file unique to this attempt, then the
   * tally records that file (unless another attempt got there first, or an abort closed it).
   */
  private async commitChunk(job: BatchJob, message: ChunkMessage, outcomes: RowOutcome[]): Promise<BatchVerdict> {
    const earlier = (await Promise.all((message.carry ?? []).map((key) => this.deps.files.getOutcomes(key)))).flat();
    const all = [...earlier, ...outcomes].sort((a, b) => a.line - b.line);
    const commit = {
      token: token(),
      succeeded: all.filter((row) => row.status === 'SUCCEEDED').length,
      failed: all.filter((row) => row.status === 'FAILED').length,
    };
    await this.deps.files.putOutcomes(chunkKey(job.id, message.chunk, commit.token), all);
    const result = await this.deps.tallies.commit(job.id, message.chunk, commit);
    if (!result.committed) {
      this.log('info', 'chunk outcome not counted: committed by another attempt or closed by an abort', {
        jobId: job.id,
        chunk: message.chunk,
      });
      return { kind: 'done' };
    }
    this.log('info', 'chunk done', {
      jobId: job.id,
      chunk: message.chunk,
      succeeded: commit.succeeded,
      failed: commit.failed,
    });
    await this.afterCommit(job.id, message.chunks, result.tally);
    return { kind: 'done' };
  }

  /** When a chunk's group is complete, check the whole batch; the last one sends the finalize step. */
  private async afterCommit(jobId: string, chunks: number, tally: Tally): Promise<void> {
    if (tally.commits.size < chunksInTally(tally.group, chunks)) return;
    const all = await this.deps.tallies.all(jobId);
    if (sumTallies(all).chunks === chunks) await this.deps.queue.send([{ jobId, step: 'finalize' }]);
  }

  /** A chunk's message was dead-lettered: its rows fail as `poison`, so the batch can end. */
  async poisonChunk(message: ChunkMessage): Promise<void> {
    const job = await this.deps.store.read(message.jobId);
    if (job?.kind !== 'batch' || isTerminal(job.status) || job.batch.abortRequestedAt) return;
    if (message.request !== requestTag(job)) {
      this.foreign(message);
      return;
    }
    const tally = await this.deps.tallies.read(job.id, tallyOfChunk(message.chunk));
    if (tally?.commits.has(message.chunk)) {
      await this.afterCommit(job.id, message.chunks, tally);
      return;
    }
    const rows = await this.chunkRows(message);
    this.log('warn', 'chunk failed: poison', { jobId: job.id, chunk: message.chunk });
    await this.commitChunk(
      job,
      message,
      failedRows(rows, { kind: 'poison', message: 'the chunk message kept failing and was dead-lettered' }),
    );
  }

  /** A plan or finalize step that kept failing: the batch fails rather than wait forever. */
  async poisonStep(jobId: string, step: 'plan' | 'finalize'): Promise<void> {
    if (step === 'plan') {
      await this.failBatch(jobId, { kind: 'poison', message: 'planning the batch kept failing' });
    } else {
      this.log('error', 'finalizing a batch kept failing; the sweeper will try again', { jobId });
    }
  }

  // ─── Finalize and abort ──────────────────────────────────────────────────────────────────────

  /**
   * Assembles the outputs once every chunk is committed (or the batch was aborted or failed) and
   * ends the job. Safe to run twice: the files are rebuilt from the same commits, and the job write
   * is conditional.
   */
  async finalize(jobId: string, slice: { from?: number } = {}): Promise<BatchVerdict> {
    let job = await this.deps.store.read(jobId);
    if (job?.kind !== 'batch' || job.batch.outputs) return { kind: 'done' };
    if (!isTerminal(job.status) && job.batch.abortRequestedAt) job = await this.completeAbort(job);
    // Read once: every chunk is committed, or the tallies are closed (abort) or unused (failed).
    const tallies = await this.deps.tallies.all(jobId);
    if (!isTerminal(job.status)) {
      const plan = job.batch.plan;
      if (!plan || sumTallies(tallies).chunks < plan.chunks) {
        this.log('warn', 'finalize step before the last chunk: ignored', { jobId });
        return { kind: 'done' };
      }
    }
    // Aborted or failed before it was planned: its rows are counted (all ABORTED) now; a file that
    // is gone (or cannot be read into rows) has none.
    const rows = job.batch.plan?.rows ?? (await this.countRows(job.batch.parts, { missingIsEmpty: true }));
    const chunks = chunkCount(rows, job.batch.chunkSize);
    const from = slice.from ?? 0;
    const carried = from === 0 ? EMPTY_ASSEMBLY : await this.assemblyAt(jobId, from);
    if (!carried) return this.restartAssembly(jobId, 'its state is gone');
    const to = Math.min(chunks, from + (this.deps.finalizeChunksPerStep ?? FINALIZE_CHUNKS_PER_STEP));
    const counts: RowCounts = { ...carried.counts };
    let outputs: Record<string, BatchOutput>;
    try {
      const files = await this.deps.files.assemble(
        `outputs/${jobId}/`,
        this.outcomes(job, rows, tallies, counts, from, to),
        carried.files,
      );
      if (to < chunks) {
        // Where the assembly stands, then the step that goes on from it. A step run twice writes
        // the same parts; its twin's state is whole too, so either one the next step reads is sound.
        await this.deps.files.putJson(assemblyKey(jobId, to), { counts, files } satisfies Assembly);
        await this.deps.queue.send([{ jobId, step: 'finalize', from: to }]);
        return { kind: 'done' };
      }
      outputs = await this.deps.files.completeAssembly(files);
    } catch (error) {
      if (error instanceof AssemblyLostError) return this.restartAssembly(jobId, error.message);
      throw error;
    }
    const finished = await this.update(jobId, (current) => {
      if (current.batch.outputs) return undefined;
      const next = this.next(current);
      next.batch.outputs = outputs;
      next.batch.counts = counts;
      next.batch.plan ??= { rows, chunks };
      if (!isTerminal(next.status)) {
        const outcome = finalOutcome(next.batch, counts, rows);
        next.status = outcome.status;
        if (outcome.status === 'FAILED') next.batch.error = outcome.error;
        next.endedAt = next.updatedAt;
        next.startedAt ??= next.updatedAt;
      }
      return next;
    }).catch((error) => (error instanceof NoChange ? undefined : Promise.reject(error)));
    if (finished) {
      this.log(finished.status === 'SUCCEEDED' ? 'info' : 'warn', `batch ${finished.status.toLowerCase()}`, {
        jobId,
        ...counts,
      });
    }
    return { kind: 'done' };
  }

  /**
   * Abort. The finalize step is sent first (it completes an abort whose caller died half way), then
   * the intent is written (no chunk starts after it), then every tally is closed (no chunk commits
   * after it) and the job ends ABORTED with the rows of uncommitted chunks counted ABORTED.
   */
  async abort(id: string, caller: Caller, read?: BatchJob): Promise<{ job: BatchJob; changed: boolean }> {
    // `read`: the job as the caller just read it for `caller` (the facade routes on it).
    const first = read ?? (await this.read(id, caller));
    if (first.status === 'ABORTED') return { job: first, changed: false };
    if (isTerminal(first.status)) {
      throw new InvalidStateError(`Job ${id} is ${first.status}; only unfinished jobs can be aborted`);
    }
    await this.deps.queue.send([{ jobId: id, step: 'finalize' }]);
    const intent = await this.update(id, (current) => {
      if (current.status === 'ABORTED' || current.batch.abortRequestedAt) return undefined;
      if (isTerminal(current.status)) {
        throw new InvalidStateError(`Job ${id} is ${current.status}; only unfinished jobs can be aborted`);
      }
      const next = this.next(current);
      next.batch.abortRequestedAt = next.updatedAt;
      return next;
    }).catch((error) => (error instanceof NoChange ? this.get(id) : Promise.reject(error)));
    if (intent.status === 'ABORTED') return { job: intent, changed: false };
    const job = await this.completeAbort(intent);
    this.log('info', 'batch aborted', { jobId: id, ...job.batch.counts });
    return { job, changed: true };
  }

  private async completeAbort(job: BatchJob): Promise<BatchJob> {
    if (job.batch.plan) await this.deps.tallies.close(job.id, tallyCount(job.batch.plan.chunks));
    const { succeeded, failed } = sumTallies(await this.deps.tallies.all(job.id));
    return this.update(job.id, (current) => {
      if (isTerminal(current.status)) return undefined;
      const next = this.next(current);
      next.status = 'ABORTED';
      next.endedAt = next.updatedAt;
      next.batch.counts = { succeeded, failed, aborted: Math.max(0, totalRows(current.batch) - succeeded - failed) };
      return next;
    }).catch((error) => (error instanceof NoChange ? this.get(job.id) : Promise.reject(error)));
  }

  /** A batch whose input file vanished or was replaced cannot run (on): it fails, saying why. */
  private async failedByInput(jobId: string, error: unknown): Promise<boolean> {
    const code =
      error instanceof InputMissingError
        ? 'INPUT_MISSING'
        : error instanceof InputChangedError
          ? 'INPUT_CHANGED'
          : error instanceof InputUnreadableError
            ? error.code
            : null;
    if (!code) return false;
    await this.failBatch(jobId, { kind: 'error', code, message: (error as Error).message });
    return true;
  }

  /**
   * Ends a batch that cannot run (on) as FAILED, then sends the finalize step — after the write, or
   * the finalizer would find the batch still running and ignore it. A crash in between leaves the
   * plan message that got here to be redelivered, and the plan step re-sends finalize for a batch
   * that has ended without its outputs.
   */
  private async failBatch(jobId: string, error: TaskError): Promise<void> {
    // Chunks already sent (an earlier slice of the plan) may commit no more: what did not finish
    // counts as ABORTED, as after an abort.
    const job = await this.deps.store.read(jobId);
    if (job?.kind === 'batch' && job.batch.plan)
      await this.deps.tallies.close(jobId, tallyCount(job.batch.plan.chunks));
    await this.update(jobId, (current) => {
      if (isTerminal(current.status)) return undefined;
      const next = this.next(current);
      next.status = 'FAILED';
      next.endedAt = next.updatedAt;
      next.batch.error = error;
      return next;
    }).catch((e) => (e instanceof NoChange ? undefined : Promise.reject(e)));
    await this.deps.queue.send([{ jobId, step: 'finalize' }]);
    this.log('warn', 'batch failed', { jobId, error });
  }

  // ─── Read ──────────────────────────────────────────────────────────────────────────────────────

  /** The job as API.md shows a batch. */
  async view(job: BatchJob, extra: { upload?: boolean } = {}) {
    const { batch } = job;
    const total = totalRows(batch);
    const sum = sumTallies(await this.deps.tallies.all(job.id));
    // Final counts once the job has ended; until then, what the tallies say so far.
    const counts: RowCounts = batch.counts ?? { succeeded: sum.succeeded, failed: sum.failed, aborted: 0 };
    const done = sum.chunks;
    const pending = Math.max(0, total - counts.succeeded - counts.failed - counts.aborted);
    const outputs: Record<string, { url: string; key: string; bytes: number; lines: number }> = {};
    for (const [name, output] of Object.entries(batch.outputs ?? {})) {
      outputs[name] = { url: await this.deps.files.downloadUrl(output.key, DOWNLOAD_URL_SECONDS), ...output };
    }
    const now = this.deps.clock.now();
    return {
      id: job.id,
      owner: job.owner,
      type: job.type,
      name: job.name ?? null,
      meta: job.meta ?? {},
      kind: 'batch' as const,
      status: job.status,
      createdAt: job.createdAt,
      updatedAt: job.updatedAt,
      startedAt: job.startedAt ?? null,
      endedAt: job.endedAt ?? null,
      counts: { total, pending, running: 0, ...counts },
      progress: total === 0 ? (isTerminal(job.status) ? 1 : 0) : Math.round(((total - pending) / total) * 100) / 100,
      ...(job.idempotencyKey !== undefined ? { idempotencyKey: job.idempotencyKey } : {}),
      error: batch.error ?? null,
      batch: {
        processor: batch.processor,
        chunkSize: batch.chunkSize,
        maxFailedRows: batch.maxFailedRows,
        context: batch.context,
        chunks: { total: batch.plan?.chunks ?? chunkCount(total, batch.chunkSize), done },
        outputs,
        /** Outputs are assembled: `outputs` is complete. */
        finalized: batch.outputs !== undefined,
        ...(batch.abortRequestedAt ? { abortRequestedAt: batch.abortRequestedAt } : {}),
        ...(extra.upload && batch.upload && job.status === 'HELD'
          ? {
              upload: {
                url: await this.deps.files.uploadUrl(batch.upload.key, UPLOAD_URL_SECONDS),
                method: 'PUT',
                format: batch.upload.format,
                expiresAt: new Date(now.getTime() + UPLOAD_URL_SECONDS * 1000).toISOString(),
              },
            }
          : {}),
      },
    };
  }

  /**
   * Pages through row outcomes in line order. A page reads at most a few chunk files, so it may
   * hold fewer than `limit` rows and still have a `nextCursor`: keep reading until it is null.
   * Chunks not committed yet show their rows PENDING (ABORTED once the batch ended without them).
   */
  async rows(
    id: string,
    caller: Caller,
    query: { status?: RowStatus; limit: number; cursor?: string },
  ): Promise<RowsPage> {
    const job = await this.read(id, caller);
    const fingerprint = `rows|${id}|${query.status ?? ''}`;
    const { chunkSize } = job.batch;
    const total = totalRows(job.batch);
    const from = query.cursor ? (await this.deps.cursors.open(query.cursor, fingerprint, rowsCursor)).l : 1;
    // Rows are only ever added, so a cursor this job issued never points past its last row.
    if (query.cursor && from > total) throw badCursor(`the cursor is past this job's ${total} rows`);
    const commits = commitMap(await this.deps.tallies.all(id));
    const unfinished: RowStatus = isTerminal(job.status) ? 'ABORTED' : 'PENDING';
    const items: RowOutcome[] = [];
    const page = async (next: number | null): Promise<RowsPage> => ({
      items,
      nextCursor: next === null ? null : await this.deps.cursors.seal({ l: next }, fingerprint),
    });
    let filesRead = 0;
    for (let index = chunkOfLine(from, chunkSize); index < chunkCount(total, chunkSize); index++) {
      const { first, last } = linesOfChunk(index, chunkSize, total);
      const start = Math.max(first, from);
      const commit = commits.get(index);
      let found: RowOutcome[];
      if (!commit) {
        if (query.status !== undefined && query.status !== unfinished) continue;
        found = [];
        for (let line = start; line <= last && found.length <= query.limit - items.length; line++) {
          found.push(
            unfinished === 'ABORTED' ? { line, status: unfinished, error: ABORTED_ROW } : { line, status: unfinished },
          );
        }
      } else {
        if (query.status === 'PENDING' || query.status === 'ABORTED') continue;
        if (query.status === 'SUCCEEDED' && commit.succeeded === 0) continue;
        if (query.status === 'FAILED' && commit.failed === 0) continue;
        if (filesRead === ROWS_PAGE_CHUNKS) return page(start);
        filesRead++;
        found = (await this.deps.files.getOutcomes(chunkKey(id, index, commit.token))).filter(
          (row) => row.line >= start && (query.status === undefined || row.status === query.status),
        );
      }
      for (const row of found) {
        if (items.length === query.limit) return page(row.line);
        items.push(row);
      }
    }
    return page(null);
  }

  /**
   * Every row's outcome in line order, for the finalizer; counts them on the way. Chunk files are
   * fetched a few ahead of the one being written out, so a large batch waits on S3 once per
   * window rather than once per chunk (memory: the window's files).
   */
  private async *outcomes(
    job: BatchJob,
    total: number,
    tallies: Tally[],
    counts: RowCounts,
    from: number,
    to: number,
  ): AsyncIterable<RowOutcome> {
    const { chunkSize } = job.batch;
    const commits = commitMap(tallies);
    const fetches = new Map<number, Promise<RowOutcome[]>>();
    let fetched = from;
    for (let index = from; index < to; index++) {
      for (; fetched < Math.min(index + ASSEMBLY_READ_AHEAD, to); fetched++) {
        const commit = commits.get(fetched);
        if (!commit) continue;
        const file = this.deps.files.getOutcomes(chunkKey(job.id, fetched, commit.token));
        // Awaited in turn below; a failure while an earlier file is awaited must not go unhandled.
        file.catch(() => undefined);
        fetches.set(fetched, file);
      }
      const file = fetches.get(index);
      if (file) {
        fetches.delete(index);
        for (const row of await file) {
          if (row.status === 'SUCCEEDED') counts.succeeded++;
          else counts.failed++;
          yield row;
        }
        continue;
      }
      const { first, last } = linesOfChunk(index, chunkSize, total);
      for (let line = first; line <= last; line++) {
        counts.aborted++;
        yield { line, status: 'ABORTED', error: ABORTED_ROW };
      }
    }
  }

  /** Where the assembly stood when the step before handed on at chunk `from`; undefined if gone. */
  private async assemblyAt(jobId: string, from: number): Promise<Assembly | undefined> {
    try {
      return (await this.deps.files.getJson(assemblyKey(jobId, from))) as Assembly;
    } catch (error) {
      if (error instanceof InputMissingError) return undefined;
      throw error;
    }
  }

  /** Assembles the outputs again from the first chunk: the files are rebuilt from the same commits. */
  private async restartAssembly(jobId: string, why: string): Promise<BatchVerdict> {
    this.log('warn', 'batch assembly starts over', { jobId, why });
    await this.deps.queue.send([{ jobId, step: 'finalize' }]);
    return { kind: 'done' };
  }

  /** A batch's tallies (for its events). */
  tallies(id: string): Promise<Tally[]> {
    return this.deps.tallies.all(id);
  }

  // ─── Plumbing ────────────────────────────────────────────────────────────────────────────────

  /** The rows a chunk message carries, or names in S3 when they were too large to carry. */
  private async chunkRows(message: ChunkMessage): Promise<ChunkRow[]> {
    return message.rows ?? ((await this.deps.files.getJson(message.rowsKey!)) as ChunkRow[]);
  }

  /**
   * Rows the parts hold, read through once (streamed). Throws when the input is gone, changed or
   * unreadable, unless told that such an input holds no rows.
   */
  private async countRows(parts: BatchPart[], options: { missingIsEmpty?: boolean } = {}): Promise<number> {
    let rows = 0;
    try {
      for await (const _ of this.deps.files.rows(parts)) rows++;
    } catch (error) {
      const gone =
        error instanceof InputMissingError ||
        error instanceof InputChangedError ||
        error instanceof InputUnreadableError;
      if (!(options.missingIsEmpty && gone)) throw error;
    }
    return rows;
  }

  /** A chunk of a request that lost its idempotency key to another: dropped, never run. */
  private foreign(message: ChunkMessage): BatchVerdict {
    this.log('warn', 'chunk of a refused request dropped (its idempotency key belongs to another request)', {
      jobId: message.jobId,
      chunk: message.chunk,
    });
    return { kind: 'done' };
  }

  /** A step or chunk whose job is not there (yet): held while young, dropped when old. */
  private unborn(jobId: string, delivery: { sentAt?: number }, what: string): BatchVerdict {
    const age =
      delivery.sentAt === undefined ? Number.POSITIVE_INFINITY : this.deps.clock.now().getTime() - delivery.sentAt;
    if (age < UNBORN_JOB_GRACE_MS) return { kind: 'retry', delaySeconds: 2 };
    this.log('warn', `${what} message for an unknown or unreleased batch dropped`, { jobId });
    return { kind: 'done' };
  }

  private next(job: BatchJob): BatchJob {
    const copy = structuredClone(job);
    copy.version = job.version + 1;
    copy.updatedAt = this.deps.clock.now().toISOString();
    return copy;
  }

  /** Read → change → conditional write, again on conflict. `change` returns undefined for "nothing to do". */
  private async update(id: string, change: (job: BatchJob) => BatchJob | undefined): Promise<BatchJob> {
    for (let conflicts = 0; conflicts < MAX_CONFLICTS; conflicts++) {
      const current = await this.get(id);
      const next = change(current);
      if (!next) throw new NoChange();
      if (await this.deps.store.replace(next, current.version)) return next;
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(1000, 10 * 2 ** conflicts)));
    }
    throw new Error(`Job ${id}: too many concurrent writes`);
  }

  /** The sweeper's pass over one batch: re-sends the step a lost message would have taken. */
  async sweepOne(id: string, graceSeconds: number): Promise<boolean> {
    const job = await this.deps.store.read(id);
    if (job?.kind !== 'batch' || job.status === 'HELD' || job.batch.outputs) return false;
    const idleMs = this.deps.clock.now().getTime() - Date.parse(job.updatedAt);
    if (isTerminal(job.status) || job.batch.abortRequestedAt) {
      await this.deps.queue.send([{ jobId: id, step: 'finalize' }]);
      return true;
    }
    if (idleMs < graceSeconds * 1000) return false;
    const plan = job.batch.plan;
    if (plan && sumTallies(await this.deps.tallies.all(id)).chunks === plan.chunks) {
      await this.deps.queue.send([{ jobId: id, step: 'finalize' }]);
      return true;
    }
    if (!plan || job.batch.parts.length > 0) {
      // Planning again re-sends every chunk not committed (a duplicate commits nothing twice).
      await this.deps.queue.send([{ jobId: id, step: 'plan' }]);
      return true;
    }
    return false;
  }
}

const ABORTED_ROW: TaskError = { kind: 'aborted', message: 'job aborted before this row ran' };

/** A row on its way into a chunk message, with where it starts in the input (read from a file). */
interface PlannedRow {
  row: ChunkRow;
  at?: RowCursor;
}

/** Where a plan's next slice starts: its first row's line, and that row's place in the input. */
type PlanResume = RowCursor & { line: number };

/** What one finalize step hands the next: the counts so far and the output files part-way. */
interface Assembly {
  counts: RowCounts;
  files: AssemblingFiles;
}

const EMPTY_ASSEMBLY: Assembly = { counts: { succeeded: 0, failed: 0, aborted: 0 }, files: {} };

function assemblyKey(jobId: string, from: number): string {
  return `outputs/${jobId}/assembly/${from}.json`;
}

/** Thrown by an `update` change that finds nothing to do. */
class NoChange extends Error {}

/** The request a chunk message belongs to: the start of its job's request hash. */
function requestTag(job: BatchJob): string {
  return job.requestHash.slice(0, 16);
}

function chunkKey(jobId: string, chunk: number, commitToken: string): string {
  return `outputs/${jobId}/chunks/${chunk}/${commitToken}.jsonl`;
}

function commitMap(tallies: Tally[]) {
  const commits = new Map<number, { token: string; succeeded: number; failed: number }>();
  for (const tally of tallies) for (const [chunk, commit] of tally.commits) commits.set(chunk, commit);
  return commits;
}
