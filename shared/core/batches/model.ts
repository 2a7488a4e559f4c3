import type { JobStatus, TaskError } from '../model.js';

/**
 * Batches: many rows, run in chunks. Their vocabulary lives here; the rules that need no I/O in
 * `rules.ts`, the state changes in `transitions.ts`, and the use cases in the rooms beside them.
 *
 * - Lines are numbered 1.. in submission order and chunk `i` is always lines
 *   `i*chunkSize+1 … (i+1)*chunkSize`, so a row's chunk (and a chunk's rows) follow from the plan
 *   alone: nothing per row or per chunk has to be stored to find them.
 * - A chunk commits exactly once: its outcome file goes to S3 under a key unique to the attempt,
 *   then one conditional write records that key in the chunk's *tally* (one small item per group
 *   of chunks). The tally write is the commit; anything that loses it (a duplicate, a zombie) is
 *   simply not counted. Counters are bumped in that same write: once per chunk, never per row.
 * - A job item is written a handful of times per batch (create, plan, finalize), never per chunk.
 */

export const ROW_STATUSES = ['PENDING', 'SUCCEEDED', 'FAILED', 'ABORTED'] as const;
export type RowStatus = (typeof ROW_STATUSES)[number];

export type InputFormat = 'jsonl' | 'csv';

/** Where a batch's rows come from, in line order: inline/appended rows (stored by us) or a file. */
export type BatchPart =
  | {
      kind: 'rows';
      key: string;
      rows: number;
      /** An append sent with an idempotency key: hashes of the key and of its rows, to know a retry. */
      append?: { key: string; rows: string };
    }
  | {
      kind: 'file';
      bucket: string;
      key: string;
      format: InputFormat;
      /** The object as the batch took it (at submit, or release for an upload): reads insist on it. */
      etag?: string;
    };

export interface BatchOutput {
  key: string;
  bytes: number;
  lines: number;
}

export interface RowCounts {
  succeeded: number;
  failed: number;
  aborted: number;
}

export interface BatchState {
  processor: string;
  chunkSize: number;
  maxFailedRows: number;
  context: Record<string, unknown>;
  parts: BatchPart[];
  /** Rows known so far (inline + appended); a file's rows are known once planned. */
  rows: number;
  /** Set once every chunk of the batch is known (and before any chunk message is sent). */
  plan?: { rows: number; chunks: number };
  /** With `upload: true`: where the uploaded file goes, and its format. */
  upload?: { key: string; format: InputFormat };
  /** The abort was asked for (the tallies may still be closing). */
  abortRequestedAt?: string;
  /** Final row counts, written when the job ends. */
  counts?: RowCounts;
  /** Written by the finalizer: the assembled files. */
  outputs?: Record<string, BatchOutput>;
  /** Why the batch could not run at all (its input file vanished, say). */
  error?: TaskError;
}

export interface BatchJob {
  id: string;
  owner: string;
  type: string;
  name?: string;
  meta?: Record<string, unknown>;
  kind: 'batch';
  status: JobStatus;
  createdAt: string;
  updatedAt: string;
  startedAt?: string;
  endedAt?: string;
  idempotencyKey?: string;
  requestHash: string;
  version: number;
  batch: BatchState;
}

/** Chunks per tally item: ≤ ~1 KB, so a tally write costs one write unit. */
export const CHUNKS_PER_TALLY = 48;

export const MAX_CHUNK_SIZE = 1000;
/**
 * Parts of rows a held batch takes (its inline rows and each append). Each is a part of the job item
 * (~150 bytes), so this keeps the item far inside DynamoDB's 400 KB; more rows go in a file upload.
 */
export const MAX_APPENDS = 1000;
export const MAX_CONTEXT_BYTES = 32 * 1024;
/** Output names a row may emit; `results` and `errors` are the batch's own. */
export const RESERVED_OUTPUTS = ['results', 'errors'] as const;

/** What a tally records per committed chunk: the attempt whose file counts, and its row counts. */
export interface ChunkCommit {
  token: string;
  succeeded: number;
  failed: number;
}

/** A group of chunks' commits, as one tally item holds them. */
export interface Tally {
  group: number;
  commits: Map<number, ChunkCommit>;
  closed: boolean;
  firstAt?: string;
  lastAt?: string;
}

/** One row as a chunk carries it: its input, or why it could not be read (a ragged CSV line). */
export interface ChunkRow {
  line: number;
  input?: unknown;
  invalid?: string;
}

/** A row's outcome, as it is stored (one JSON line per row) and shown by the rows route. */
export interface RowOutcome {
  line: number;
  status: RowStatus;
  result?: unknown;
  messages?: unknown[];
  error?: TaskError;
  outputs?: Record<string, string>;
}
