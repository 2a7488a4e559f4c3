import { describe, expect, it } from 'vitest';
import type { BatchJob } from '../../../../shared/core/batches/model.js';
import {
  aborted,
  abortRequested,
  appended,
  failed,
  finalized,
  newBatch,
  planned,
  released,
} from '../../../../shared/core/batches/transitions.js';
import { InvalidStateError } from '../../../../shared/core/errors.js';
import { parseOrThrow, submitBatchSchema } from '../../../../shared/core/schemas.js';

const t0 = new Date('2026-05-01T10:00:00Z');
const at = (s: number) => new Date(t0.getTime() + s * 1000);
const who = { id: 'b', owner: 'o', requestHash: 'h'.repeat(64) };
const rowsPart = (key: string, rows: number) => ({ kind: 'rows' as const, key, rows });

function submit(batch: Record<string, unknown>, upload?: BatchJob['batch']['upload']): BatchJob {
  const request = parseOrThrow(submitBatchSchema, { type: 't', batch: { processor: 'rows', ...batch } }, 'Job');
  const parts = request.batch.rows ? [rowsPart('inputs/b/rows-0', request.batch.rows.length)] : [];
  return newBatch(request, who, parts, upload, t0);
}

const held = () => submit({ rows: [1, 2, 3], chunkSize: 2, hold: true });
const running = () => planned(submit({ input: { bucket: 'in-bucket', key: 'in.jsonl' }, chunkSize: 2 }), 5, at(1))!;
const ended = (status: 'SUCCEEDED' | 'FAILED' | 'ABORTED'): BatchJob => ({ ...running(), status });

describe('a new batch', () => {
  it('goes straight out with its plan when it has only inline rows', () => {
    const job = submit({ rows: [1, 2, 3], chunkSize: 2 });
    expect(job.status).toBe('RUNNING');
    expect(job.startedAt).toBe(t0.toISOString());
    expect(job.batch.plan).toEqual({ rows: 3, chunks: 2 });
    expect(job.version).toBe(1);
  });

  it('waits for the planner when it names a file, and is HELD when held or uploaded', () => {
    expect(submit({ input: { bucket: 'in-bucket', key: 'in.jsonl' } }).status).toBe('PENDING');
    expect(held().status).toBe('HELD');
    const upload = submit({ upload: true }, { key: 'inputs/b/upload', format: 'csv' });
    expect(upload.status).toBe('HELD');
    expect(upload.batch.upload).toEqual({ key: 'inputs/b/upload', format: 'csv' });
    expect(upload.batch.plan).toBeUndefined();
  });
});

describe('appending and releasing', () => {
  it('appends a part to a HELD batch as its next version, leaving the old one as it was', () => {
    const job = held();
    const next = appended(job, rowsPart('inputs/b/rows-1', 4), at(1));
    expect(next.batch.rows).toBe(7);
    expect(next.batch.parts.map((p) => p.key)).toEqual(['inputs/b/rows-0', 'inputs/b/rows-1']);
    expect(next).toMatchObject({ version: 2, updatedAt: at(1).toISOString() });
    expect(job.batch.parts).toHaveLength(1);
  });

  it('refuses an append once the batch is released', () => {
    const job = released(held(), undefined, at(1));
    expect(() => appended(job, rowsPart('inputs/b/rows-1', 1), at(2))).toThrow(InvalidStateError);
  });

  it('releases only from HELD', () => {
    const job = released(held(), undefined, at(1));
    expect(job.status).toBe('PENDING');
    expect(() => released(job, undefined, at(2))).toThrow(InvalidStateError);
    expect(() => released(running(), undefined, at(2))).toThrow(InvalidStateError);
    expect(() => released(ended('ABORTED'), undefined, at(2))).toThrow(InvalidStateError);
  });

  it('takes the uploaded file as its last part once', () => {
    const upload = {
      kind: 'file' as const,
      bucket: 'own',
      key: 'inputs/b/upload',
      format: 'jsonl' as const,
      etag: 'e',
    };
    const job = submit({ upload: true }, { key: upload.key, format: 'jsonl' });
    expect(released(job, upload, at(1)).batch.parts).toEqual([upload]);
    const again = { ...job, batch: { ...job.batch, parts: [upload] } };
    expect(released(again, upload, at(1)).batch.parts).toEqual([upload]);
  });
});

describe('planning', () => {
  it('writes the plan once and starts the batch', () => {
    const job = submit({ input: { bucket: 'in-bucket', key: 'in.jsonl' }, chunkSize: 2 });
    const next = planned(job, 5, at(1))!;
    expect(next).toMatchObject({ status: 'RUNNING', startedAt: at(1).toISOString(), version: 2 });
    expect(next.batch.plan).toEqual({ rows: 5, chunks: 3 });
    expect(planned(next, 7, at(2))).toBeUndefined();
  });

  it('plans nothing for a batch that is ending or ended', () => {
    const job = submit({ input: { bucket: 'in-bucket', key: 'in.jsonl' } });
    expect(planned(abortRequested(job, at(1))!, 5, at(2))).toBeUndefined();
    expect(planned({ ...job, status: 'FAILED' }, 5, at(2))).toBeUndefined();
  });
});

describe('aborting', () => {
  it('writes the intent once', () => {
    const job = abortRequested(running(), at(2))!;
    expect(job.batch.abortRequestedAt).toBe(at(2).toISOString());
    expect(job.status).toBe('RUNNING');
    expect(abortRequested(job, at(3))).toBeUndefined();
    expect(abortRequested(ended('ABORTED'), at(3))).toBeUndefined();
  });

  it('refuses a batch that ended otherwise', () => {
    expect(() => abortRequested(ended('SUCCEEDED'), at(3))).toThrow(InvalidStateError);
    expect(() => abortRequested(ended('FAILED'), at(3))).toThrow(InvalidStateError);
  });

  it('ends ABORTED, counting every row that did not commit as aborted', () => {
    const job = aborted(abortRequested(running(), at(2))!, { succeeded: 2, failed: 1 }, at(3))!;
    expect(job).toMatchObject({ status: 'ABORTED', endedAt: at(3).toISOString() });
    expect(job.batch.counts).toEqual({ succeeded: 2, failed: 1, aborted: 2 });
    expect(aborted(job, { succeeded: 5, failed: 0 }, at(4))).toBeUndefined();
  });
});

describe('failing', () => {
  it('ends an unfinished batch FAILED with its reason, and leaves an ended one alone', () => {
    const error = { kind: 'error' as const, code: 'INPUT_MISSING', message: 'gone' };
    const job = failed(running(), error, at(2))!;
    expect(job).toMatchObject({ status: 'FAILED', endedAt: at(2).toISOString() });
    expect(job.batch.error).toEqual(error);
    expect(failed(job, { kind: 'poison', message: 'again' }, at(3))).toBeUndefined();
    expect(failed(ended('SUCCEEDED'), error, at(3))).toBeUndefined();
  });
});

describe('finalizing', () => {
  const outputs = { results: { key: 'outputs/b/results.jsonl', bytes: 10, lines: 5 } };

  it('sets the outputs and counts, and ends a running batch by them', () => {
    const job = finalized(running(), { outputs, counts: { succeeded: 5, failed: 0, aborted: 0 }, rows: 5 }, at(4))!;
    expect(job).toMatchObject({ status: 'SUCCEEDED', endedAt: at(4).toISOString() });
    expect(job.batch.outputs).toEqual(outputs);
    expect(job.batch.counts).toEqual({ succeeded: 5, failed: 0, aborted: 0 });
  });

  it('fails a batch with more failed rows than it tolerates', () => {
    const job = finalized(running(), { outputs, counts: { succeeded: 3, failed: 2, aborted: 0 }, rows: 5 }, at(4))!;
    expect(job.status).toBe('FAILED');
    expect(job.batch.error?.code).toBe('TOO_MANY_FAILED_ROWS');
  });

  it('never changes a terminal status, and records the plan of a batch that ended unplanned', () => {
    const unplanned = {
      ...submit({ input: { bucket: 'in-bucket', key: 'in.jsonl' }, chunkSize: 2 }),
      status: 'ABORTED' as const,
    };
    const counts = { succeeded: 0, failed: 0, aborted: 3 };
    const job = finalized(unplanned, { outputs, counts, rows: 3 }, at(4))!;
    expect(job.status).toBe('ABORTED');
    expect(job.endedAt).toBeUndefined();
    expect(job.batch.plan).toEqual({ rows: 3, chunks: 2 });
    expect(job.batch.counts).toEqual(counts);
  });

  it('writes the outputs once', () => {
    const counts = { succeeded: 5, failed: 0, aborted: 0 };
    const job = finalized(running(), { outputs, counts, rows: 5 }, at(4))!;
    expect(finalized(job, { outputs: {}, counts, rows: 5 }, at(5))).toBeUndefined();
  });
});
