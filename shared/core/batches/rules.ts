import { IdempotencyMismatchError, InvalidStateError } from '../errors.js';
import type { TaskError } from '../model.js';
import { chunkReplySchema } from '../processor-replies.js';
import {
  type BatchJob,
  type BatchState,
  CHUNKS_PER_TALLY,
  type ChunkCommit,
  type ChunkRow,
  MAX_APPENDS,
  type RowCounts,
  type RowOutcome,
  type Tally,
} from './model.js';

/**
 * The rules of batches that need no I/O (see `model.ts` for why they make every row count once):
 * which lines a chunk holds and which tally counts it, what a processor's chunk reply means, and
 * how a batch that ran to its end ends.
 */

/** Refuses an append the job cannot take. */
export function appendable(job: BatchJob): void {
  if (job.status !== 'HELD') {
    throw new InvalidStateError(`Job ${job.id} is ${job.status}; rows can only be appended while HELD`);
  }
  if (job.batch.parts.length >= MAX_APPENDS) {
    throw new InvalidStateError(
      `Job ${job.id} holds ${MAX_APPENDS} parts of rows (inline rows and appends); send more rows as one file upload`,
    );
  }
}

/** Refuses to release a batch that is not HELD (released already, or never held). */
export function releasable(job: BatchJob): void {
  if (job.status !== 'HELD') {
    throw new InvalidStateError(`Job ${job.id} is ${job.status}; only a HELD batch can be released`);
  }
}

/**
 * The answer a keyed append already got, if it was applied: the rows it added and the rows the
 * batch then held (its inline and appended rows up to it — a file's rows are counted when planned).
 */
export function appendedBefore(
  job: BatchJob,
  tag: { key: string; rows: string },
): { appended: number; totalRows: number } | undefined {
  let totalRows = 0;
  for (const part of job.batch.parts) {
    if (part.kind !== 'rows') continue;
    totalRows += part.rows;
    if (part.append?.key !== tag.key) continue;
    if (part.append.rows !== tag.rows) {
      throw new IdempotencyMismatchError('Idempotency key was already used to append other rows');
    }
    return { appended: part.rows, totalRows };
  }
  return undefined;
}

export function chunkCount(rows: number, chunkSize: number): number {
  return Math.ceil(rows / chunkSize);
}

export function chunkOfLine(line: number, chunkSize: number): number {
  return Math.floor((line - 1) / chunkSize);
}

/** First and last line (inclusive) of chunk `index`. */
export function linesOfChunk(index: number, chunkSize: number, rows: number): { first: number; last: number } {
  return { first: index * chunkSize + 1, last: Math.min((index + 1) * chunkSize, rows) };
}

export function tallyOfChunk(index: number): number {
  return Math.floor(index / CHUNKS_PER_TALLY);
}

export function tallyCount(chunks: number): number {
  return Math.ceil(chunks / CHUNKS_PER_TALLY);
}

/** How many chunks tally `group` holds when complete. */
export function chunksInTally(group: number, chunks: number): number {
  return Math.max(0, Math.min(CHUNKS_PER_TALLY, chunks - group * CHUNKS_PER_TALLY));
}

export function encodeCommit(commit: ChunkCommit): string {
  return `${commit.token}:${commit.succeeded}:${commit.failed}`;
}

export function decodeCommit(value: string): ChunkCommit {
  const [token = '', succeeded = '0', failed = '0'] = value.split(':');
  return { token, succeeded: Number(succeeded), failed: Number(failed) };
}

export function sumTallies(tallies: Iterable<Tally>): { chunks: number; succeeded: number; failed: number } {
  let chunks = 0;
  let succeeded = 0;
  let failed = 0;
  for (const tally of tallies) {
    for (const commit of tally.commits.values()) {
      chunks++;
      succeeded += commit.succeeded;
      failed += commit.failed;
    }
  }
  return { chunks, succeeded, failed };
}

export type ChunkRound =
  | { kind: 'crash'; error: TaskError }
  | {
      kind: 'replied';
      /** Rows settled this round. */
      settled: RowOutcome[];
      /** Rows the processor asked to run again (and may: attempts remain). */
      retry: ChunkRow[];
    };

/**
 * Reads a processor's chunk reply against the rows it was given. A reply that misses rows, adds
 * lines it was not given or repeats one is a crash (the chunk is retried whole), as an
 * unreadable reply is.
 */
export function readChunkReply(
  reply: unknown,
  given: readonly ChunkRow[],
  attempt: number,
  maxAttempts: number,
): ChunkRound {
  const parsed = chunkReplySchema.safeParse(reply);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    return {
      kind: 'crash',
      error: {
        kind: 'crash',
        message: `chunk reply does not match the contract${first ? ` (${first.path.join('.')}: ${first.message})` : ''}`,
      },
    };
  }
  const byLine = new Map(given.map((row) => [row.line, row]));
  const seen = new Set<number>();
  for (const row of parsed.data.rows) {
    if (!byLine.has(row.line)) {
      return {
        kind: 'crash',
        error: { kind: 'crash', message: `chunk reply has line ${row.line}, which it was not given` },
      };
    }
    if (seen.has(row.line)) {
      return { kind: 'crash', error: { kind: 'crash', message: `chunk reply has line ${row.line} twice` } };
    }
    seen.add(row.line);
  }
  if (seen.size !== given.length) {
    const missing = given.filter((row) => !seen.has(row.line)).map((row) => row.line);
    return {
      kind: 'crash',
      error: { kind: 'crash', message: `chunk reply misses ${missing.length} line(s), first ${missing[0]}` },
    };
  }
  const settled: RowOutcome[] = [];
  const retry: ChunkRow[] = [];
  for (const row of parsed.data.rows) {
    const extras = {
      ...(row.messages !== undefined ? { messages: row.messages } : {}),
      ...(row.outputs !== undefined && Object.keys(row.outputs).length > 0 ? { outputs: row.outputs } : {}),
    };
    if (row.status === 'ok') {
      settled.push({ line: row.line, status: 'SUCCEEDED', result: row.result ?? null, ...extras });
    } else if (row.status === 'retry' && attempt < maxAttempts) {
      retry.push(byLine.get(row.line) as ChunkRow);
    } else {
      const exhausted = row.status === 'retry';
      settled.push({
        line: row.line,
        status: 'FAILED',
        error: {
          kind: 'error',
          ...(row.error?.code !== undefined
            ? { code: row.error.code }
            : exhausted
              ? { code: 'RETRIES_EXHAUSTED' }
              : {}),
          message: (
            row.error?.message ?? (exhausted ? `still asked to retry after ${attempt} attempts` : 'row failed')
          ).slice(0, 1024),
        },
        ...(row.messages !== undefined ? { messages: row.messages } : {}),
      });
    }
  }
  return { kind: 'replied', settled, retry };
}

/** Rows that never reached the processor (unreadable input) fail with the reason. */
export function invalidRowOutcome(row: ChunkRow): RowOutcome {
  return {
    line: row.line,
    status: 'FAILED',
    error: { kind: 'error', code: 'BAD_ROW', message: row.invalid ?? 'unreadable row' },
  };
}

/** Every row of a chunk ends FAILED with the same error (crashes exhausted, poison, unknown processor). */
export function failedRows(rows: readonly ChunkRow[], error: TaskError): RowOutcome[] {
  return rows.map((row) =>
    row.invalid !== undefined ? invalidRowOutcome(row) : { line: row.line, status: 'FAILED', error },
  );
}

/**
 * How a batch that ran to its end ends: FAILED, saying why, when its input held no rows, when
 * its outcomes do not account for every row (a bug, never a success), or when more rows failed
 * than it tolerates.
 */
export function finalOutcome(
  batch: Pick<BatchState, 'maxFailedRows'>,
  counts: RowCounts,
  rows: number,
): { status: 'SUCCEEDED' } | { status: 'FAILED'; error: TaskError } {
  const failed = (code: string, message: string) => ({
    status: 'FAILED' as const,
    error: { kind: 'error' as const, code, message },
  });
  if (rows === 0) return failed('EMPTY_INPUT', "the batch's input holds no rows");
  const accounted = counts.succeeded + counts.failed + counts.aborted;
  if (accounted !== rows || counts.aborted > 0) {
    return failed(
      'ROWS_UNACCOUNTED',
      `${rows} rows planned; outcomes for ${counts.succeeded} succeeded, ${counts.failed} failed, ${counts.aborted} not run`,
    );
  }
  if (counts.failed > batch.maxFailedRows) {
    const rowsFailed = `${counts.failed} row${counts.failed === 1 ? '' : 's'} failed`;
    return failed('TOO_MANY_FAILED_ROWS', `${rowsFailed}; maxFailedRows is ${batch.maxFailedRows}`);
  }
  return { status: 'SUCCEEDED' };
}

/** Rows the batch has (or will have, once planned). */
export function totalRows(batch: BatchState): number {
  return batch.plan?.rows ?? batch.rows;
}

/** Every chunk's commit, by chunk index. */
export function commitMap(tallies: Iterable<Tally>): Map<number, ChunkCommit> {
  const commits = new Map<number, ChunkCommit>();
  for (const tally of tallies) for (const [chunk, commit] of tally.commits) commits.set(chunk, commit);
  return commits;
}

const ABORTED_ROW: TaskError = { kind: 'aborted', message: 'job aborted before this row ran' };

/** A row that never ran because its batch ended (aborted or failed) before its chunk committed. */
export function abortedRow(line: number): RowOutcome {
  return { line, status: 'ABORTED', error: ABORTED_ROW };
}

/** The request a chunk message belongs to: the start of its job's request hash. */
export function requestTag(job: Pick<BatchJob, 'requestHash'>): string {
  return job.requestHash.slice(0, 16);
}
