import { describe, expect, it } from 'vitest';
import { type BatchJob, CHUNKS_PER_TALLY, MAX_APPENDS } from '../../../../shared/core/batches/model.js';
import {
  appendable,
  appendedBefore,
  chunkCount,
  chunkOfLine,
  chunksInTally,
  decodeCommit,
  encodeCommit,
  finalOutcome,
  linesOfChunk,
  readChunkReply,
} from '../../../../shared/core/batches/rules.js';

const given = [1, 2, 3].map((line) => ({ line, input: { line } }));
const deep = (depth: number): unknown => JSON.parse(`${'['.repeat(depth)}${']'.repeat(depth)}`);

describe('chunks are found by arithmetic', () => {
  it('numbers lines into chunks and back', () => {
    expect(chunkCount(2500, 100)).toBe(25);
    expect(chunkCount(2501, 100)).toBe(26);
    expect(chunkOfLine(1, 100)).toBe(0);
    expect(chunkOfLine(100, 100)).toBe(0);
    expect(chunkOfLine(101, 100)).toBe(1);
    expect(linesOfChunk(25, 100, 2501)).toEqual({ first: 2501, last: 2501 });
    expect(chunksInTally(0, 10)).toBe(10);
    expect(chunksInTally(1, CHUNKS_PER_TALLY + 5)).toBe(5);
    expect(decodeCommit(encodeCommit({ token: 'ab-_9', succeeded: 97, failed: 3 }))).toEqual({
      token: 'ab-_9',
      succeeded: 97,
      failed: 3,
    });
  });

  it('fails a batch past maxFailedRows, saying so', () => {
    expect(finalOutcome({ maxFailedRows: 0 }, { succeeded: 9, failed: 1, aborted: 0 }, 10)).toEqual({
      status: 'FAILED',
      error: { kind: 'error', code: 'TOO_MANY_FAILED_ROWS', message: '1 row failed; maxFailedRows is 0' },
    });
    expect(finalOutcome({ maxFailedRows: 1 }, { succeeded: 9, failed: 1, aborted: 0 }, 10)).toEqual({
      status: 'SUCCEEDED',
    });
  });

  it('never ends a batch SUCCEEDED without rows, or with rows its outcomes do not account for', () => {
    expect(finalOutcome({ maxFailedRows: 5 }, { succeeded: 0, failed: 0, aborted: 0 }, 0)).toMatchObject({
      status: 'FAILED',
      error: { code: 'EMPTY_INPUT' },
    });
    expect(finalOutcome({ maxFailedRows: 5 }, { succeeded: 9, failed: 0, aborted: 0 }, 10)).toMatchObject({
      status: 'FAILED',
      error: { code: 'ROWS_UNACCOUNTED' },
    });
    expect(finalOutcome({ maxFailedRows: 5 }, { succeeded: 9, failed: 0, aborted: 1 }, 10)).toMatchObject({
      status: 'FAILED',
      error: { code: 'ROWS_UNACCOUNTED' },
    });
  });
});

describe('a chunk reply is read against the rows it was given', () => {
  it('settles ok and error rows and keeps retry rows while attempts remain', () => {
    const round = readChunkReply(
      {
        rows: [
          { line: 2, status: 'error', error: { code: 'BAD', message: 'no' }, messages: ['why'] },
          { line: 1, status: 'ok', result: { a: 1 }, outputs: { out: 'x' } },
          { line: 3, status: 'retry' },
        ],
      },
      given,
      1,
      3,
    );
    expect(round).toEqual({
      kind: 'replied',
      settled: [
        { line: 2, status: 'FAILED', error: { kind: 'error', code: 'BAD', message: 'no' }, messages: ['why'] },
        { line: 1, status: 'SUCCEEDED', result: { a: 1 }, outputs: { out: 'x' } },
      ],
      retry: [{ line: 3, input: { line: 3 } }],
    });
  });

  it('fails a row still asking to retry on the last attempt', () => {
    const round = readChunkReply(
      {
        rows: [
          { line: 1, status: 'ok' },
          { line: 2, status: 'ok' },
          { line: 3, status: 'retry' },
        ],
      },
      given,
      3,
      3,
    );
    expect(round.kind === 'replied' && round.settled[2]).toMatchObject({
      line: 3,
      status: 'FAILED',
      error: { code: 'RETRIES_EXHAUSTED' },
    });
  });

  const crashes: [string, unknown][] = [
    [
      'a missing line',
      {
        rows: [
          { line: 1, status: 'ok' },
          { line: 2, status: 'ok' },
        ],
      },
    ],
    ['a line it was not given', { rows: [1, 2, 3, 4].map((line) => ({ line, status: 'ok' })) }],
    ['a line twice', { rows: [1, 2, 2].map((line) => ({ line, status: 'ok' })) }],
    ['no rows array', { status: 'ok' }],
    ['an unknown status', { rows: [1, 2, 3].map((line) => ({ line, status: 'done' })) }],
    [
      'an output with a line break',
      { rows: [1, 2, 3].map((line) => ({ line, status: 'ok', outputs: { o: 'a\nb' } })) },
    ],
    ['an output named results', { rows: [1, 2, 3].map((line) => ({ line, status: 'ok', outputs: { results: 'a' } })) }],
    [
      'a result nested 65 deep',
      { rows: [1, 2, 3].map((line) => ({ line, status: 'ok', result: line === 2 ? deep(65) : null })) },
    ],
    [
      'a message nested 100,000 deep',
      { rows: [1, 2, 3].map((line) => ({ line, status: 'ok', messages: line === 3 ? ['m', deep(100_000)] : [] })) },
    ],
  ];
  for (const [what, reply] of crashes) {
    it(`treats ${what} as a crash (the chunk is retried whole)`, () => {
      expect(readChunkReply(reply, given, 1, 3).kind).toBe('crash');
    });
  }
});

describe('appends to a held batch', () => {
  const held = (parts: BatchJob['batch']['parts'], status: BatchJob['status'] = 'HELD'): BatchJob => ({
    id: 'j',
    owner: 'o',
    type: 't',
    kind: 'batch',
    status,
    createdAt: '',
    updatedAt: '',
    requestHash: 'h',
    version: 1,
    batch: { processor: 'p', chunkSize: 10, maxFailedRows: 0, context: {}, parts, rows: 0 },
  });
  const part = (rows: number, append?: { key: string; rows: string }) => ({
    kind: 'rows' as const,
    key: 'k',
    rows,
    ...(append ? { append } : {}),
  });

  it('answers a keyed retry with the rows the batch held right after it, not what came later', () => {
    const job = held([
      part(3),
      { kind: 'file', bucket: 'b', key: 'f', format: 'csv' },
      part(2, { key: 'a', rows: 'r1' }),
      part(5, { key: 'b', rows: 'r2' }),
    ]);
    expect(appendedBefore(job, { key: 'a', rows: 'r1' })).toEqual({ appended: 2, totalRows: 5 });
    expect(appendedBefore(job, { key: 'b', rows: 'r2' })).toEqual({ appended: 5, totalRows: 10 });
    expect(appendedBefore(job, { key: 'c', rows: 'r1' })).toBeUndefined();
    expect(() => appendedBefore(job, { key: 'a', rows: 'other' })).toThrow(/other rows/);
  });

  it('takes rows only while HELD and up to the append limit, then points to a file upload', () => {
    expect(() => appendable(held([]))).not.toThrow();
    expect(() => appendable(held([], 'PENDING'))).toThrow(/only be appended while HELD/);
    const parts = Array.from({ length: MAX_APPENDS }, () => part(1));
    expect(() => appendable(held(parts.slice(1)))).not.toThrow();
    expect(() => appendable(held(parts))).toThrow(
      /holds 1000 parts of rows \(inline rows and appends\); send more rows as one file upload/,
    );
  });
});
